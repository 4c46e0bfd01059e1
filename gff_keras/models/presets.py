"""Named GFFNet architectures: the paper's rows, ready to build.

`GFFNet.from_preset(name, num_classes=...)` builds one. A preset fixes the
architecture only (no weights are downloaded; pass
`backbone_weights="imagenet"` for ImageNet backbones where
keras.applications has them). Paper numbers are Cityscapes mIoU.
"""

# The authors' released DeepLabV3+ code: gates of the feature width, levels
# fused in order (finest first), 128-channel levels, and DenseASPP-style
# dense feature pyramid blocks (3x3, dilations 3/6/9).
_AUTHORS_CODE_FUSION = {
    "fusion_order": "sequential",
    "gate_channels": 128,
    "fused_channels": 128,
    "dfp_kernel_size": 3,
    "dfp_dilation_rates": (3, 6, 9),
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
            "fusion": "none",
            "dfp": False,
            "aux_head": False,
            "decoder_level": "mod2",
        },
    },
    "deeplabv3plus_gff_dfp_wrn38": {
        "description": (
            "DeepLabV3+ + GFF + DFP on a dilated Wider-ResNet-38 as in the "
            "authors' code: mod2, mod5 and the ASPP output fused in order "
            "with 128-channel gates."
        ),
        "paper": "Table 8, Cityscapes test: 83.3",
        "arguments": {
            "backbone": "wider_resnet38",
            "context": "aspp",
            "fusion": "gff",
            "dfp": True,
            "aux_head": False,
            "levels": ("mod2", "mod5"),
            "fuse_context": True,
            **_AUTHORS_CODE_FUSION,
        },
    },
}


def preset_arguments(name: str) -> dict:
    """The `GFFNet` arguments of a preset (a copy).

    Raises:
        ValueError: for an unknown preset, listing the known ones.
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset {name!r}; presets: {', '.join(PRESETS)}."
        )
    return dict(PRESETS[name]["arguments"])
