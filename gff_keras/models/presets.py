"""Named GFFNet architectures: the paper's rows, ready to build.

`GFFNet.from_preset(name, num_classes=...)` builds one. A preset is a
composition of parts: the `GFFNet` arguments that name them and set their
options, or, for parts the options cannot describe, a function of
`num_classes` returning their configs (`part`), which `GFFNet` builds. It
fixes the architecture only (no weights are downloaded; pass
`backbone_weights="imagenet"` for ImageNet backbones where keras.applications
has them). Paper numbers are Cityscapes mIoU.
"""

from gff_keras.backbones.wider_resnet38 import WiderResNet38
from gff_keras.heads.authors_gff_head import AuthorsGFFHead
from gff_keras.layers.atrous_spatial_pyramid_pooling import (
    AtrousSpatialPyramidPooling,
)


def part(cls, **config) -> dict:
    """A part as its serialized config, to be built by `GFFNet`.

    Configs, not instances: a preset can be read (and a config checked)
    without building a 141M-parameter network.
    """
    return {
        "module": cls.__module__,
        "class_name": cls.__name__,
        "config": config,
        "registered_name": f"gff_keras>{cls.__name__}",
    }


def _authors_gffnet(num_classes):
    """The authors' released `DeepWV3PlusGFFNet` (lxtGH/DecoupleSegNets)."""
    return {
        # The ASPP reads the raw mod7: their network has no `bn_out`.
        "backbone": part(
            WiderResNet38, output_stride=8, bn_out=False, name="backbone"
        ),
        # Their ASPP: image pooling first, no projection inside the module
        # (the head's 3x3 `bot_aspp` projects the 1280 channels).
        "context": part(
            AtrousSpatialPyramidPooling,
            filters=256,
            rates=(12, 24, 36),
            projection=False,
            image_pooling_first=True,
            name="aspp",
        ),
        "head": part(
            AuthorsGFFHead,
            num_classes=num_classes,
            levels=("mod2", "mod5"),
            name="head",
        ),
        "aux_head": False,
    }


PRESETS = {
    "pspnet_resnet18": {
        "description": "PSPNet on a dilated ResNet-18.",
        "paper": "Table 4, Cityscapes val: 73.0",
        "arguments": {"backbone": "resnet18", "fusion": "none", "dfp": False},
    },
    "gffnet_resnet18": {
        "description": "PSPNet + GFF + DFP on a dilated ResNet-18.",
        "paper": "Table 4, Cityscapes val: 78.9",
        "arguments": {"backbone": "resnet18", "fusion": "gff", "dfp": True},
    },
    "pspnet_resnet50": {
        "description": "PSPNet on a dilated ResNet-50.",
        "paper": "not reported",
        "arguments": {"backbone": "resnet50", "fusion": "none", "dfp": False},
    },
    "gffnet_resnet50": {
        "description": "PSPNet + GFF + DFP on a dilated ResNet-50.",
        "paper": "Table 9, Pascal Context: 51.0",
        "arguments": {"backbone": "resnet50", "fusion": "gff", "dfp": True},
    },
    "pspnet_resnet101": {
        "description": "PSPNet on a dilated ResNet-101 (the baseline).",
        "paper": "Table 1, Cityscapes val: 78.6",
        "arguments": {
            "backbone": "resnet101",
            "fusion": "none",
            "dfp": False,
        },
    },
    "gffnet_resnet101": {
        "description": "PSPNet + GFF + DFP on a dilated ResNet-101.",
        "paper": "Table 2, Cityscapes val: 81.2",
        "arguments": {"backbone": "resnet101", "fusion": "gff", "dfp": True},
    },
    "denseaspp_densenet121": {
        "description": "DenseASPP on a dilated DenseNet-121.",
        "paper": "Table 4, Cityscapes val: 78.9",
        "arguments": {
            "backbone": "densenet121",
            "context": "dense_aspp",
            "fusion": "none",
            "dfp": False,
            "aux_head": False,
        },
    },
    "denseaspp_gff_densenet121": {
        "description": "DenseASPP + GFF on a dilated DenseNet-121.",
        "paper": "Table 4, Cityscapes val: 80.1",
        "arguments": {
            "backbone": "densenet121",
            "context": "dense_aspp",
            "fusion": "gff",
            "dfp": False,
            "aux_head": False,
        },
    },
    "denseaspp_gff_dfp_densenet121": {
        "description": "DenseASPP + GFF + DFP on a dilated DenseNet-121.",
        "paper": "Table 4, Cityscapes val: 80.9",
        "arguments": {
            "backbone": "densenet121",
            "context": "dense_aspp",
            "fusion": "gff",
            "dfp": True,
            "aux_head": False,
        },
    },
    "deeplabv3plus_wrn38": {
        "description": (
            "DeepLabV3+ (ASPP, decoder on mod2) on a dilated Wider-ResNet-38."
        ),
        "paper": "not reported for this backbone",
        "arguments": {
            "backbone": "wider_resnet38",
            "context": "aspp",
            "head": "deeplabv3plus",
            "decoder_level": "mod2",
            "aux_head": False,
        },
    },
    "deeplabv3plus_gff_dfp_wrn38": {
        "description": (
            "DeepLabV3+ + GFF + DFP on a dilated Wider-ResNet-38: the "
            "authors' released DeepWV3PlusGFFNet, layer for layer."
        ),
        "paper": "Table 8, Cityscapes test: 83.3",
        "arguments": _authors_gffnet,
    },
}


def preset_arguments(name: str, num_classes: int | None = None) -> dict:
    """The `GFFNet` arguments of a preset (a new dict, new part instances).

    Args:
        name: a key of `PRESETS`.
        num_classes: int, for presets that build their head themselves.

    Returns:
        The arguments, without `num_classes`.

    Raises:
        ValueError: for an unknown preset, listing the known ones.
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset {name!r}; presets: {', '.join(PRESETS)}."
        )
    arguments = PRESETS[name]["arguments"]
    if callable(arguments):
        return arguments(num_classes)
    return dict(arguments)
