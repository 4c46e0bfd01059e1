"""The paper's experiments (Li et al., AAAI 2020), one config each.

Recipe ("Implementation Details"): SGD, weight decay 1e-4, initial learning
rate 1e-3 with poly decay (power 0.9), synchronized BatchNorm, auxiliary loss
0.4; Cityscapes: 864 crops, batch 8, 100K iterations; ADE20K, Pascal Context
and COCO-Stuff: 512 crops, batch 16, 150K iterations; scale [0.75, 2], flip,
colour jitter [-10, 10]. Cityscapes results use sliding-window inference.
"""

from experiments.registry import register
from gff_keras.models.presets import PRESETS
from gff_keras.models.presets import preset_arguments
from gff_keras.training.experiment_config import ExperimentConfig


def _paper_config(
    dataset,
    reference,
    miou,
    backbone="resnet101",
    fusion="gff",
    dfp=True,
    eval_mode=None,
):
    """The paper's recipe for `dataset`; the GFFNet preset on `backbone`
    with its fusion and pyramid set to `fusion` and `dfp`."""
    config = ExperimentConfig(paper_reference=reference, paper_miou=miou)
    config.model.preset = f"gffnet_{backbone}"
    if (fusion, dfp) != ("gff", True):
        config.model.fusion.type = fusion
        config.model.dfp.type = "dense" if dfp else "none"
    config.data.dataset = dataset
    if dataset == "cityscapes":
        config.data.crop_size = 864
        config.data.batch_size = 8
        config.schedule.steps = 100_000
        config.runtime.eval_mode = "slide"
        config.runtime.eval_crop_size = 864
        # Two thirds of the window, as mmsegmentation's Cityscapes configs.
        config.runtime.eval_stride = 576
    else:
        config.data.crop_size = 512
        config.data.batch_size = 16
        config.schedule.steps = 150_000
    if eval_mode is not None:
        config.runtime.eval_mode = eval_mode
    variant = "PSPNet" if fusion == "none" and not dfp else "GFFNet"
    config.description = (
        f"{variant} ({fusion=}, {dfp=}) on {backbone}, {dataset}: {reference}"
    )
    return config


@register("ade20k_gffnet_resnet101")
def ade20k_gffnet_resnet101():
    # Table 6 also reports pixel accuracy 82.01.
    return _paper_config("ade20k", "Table 6, ADE20K val", 45.33)


@register("pascal_context_gffnet_resnet101")
def pascal_context_gffnet_resnet101():
    return _paper_config("pascal_context", "Table 9, Pascal Context", 54.2)


@register("pascal_context_gffnet_resnet50")
def pascal_context_gffnet_resnet50():
    return _paper_config(
        "pascal_context", "Table 9, Pascal Context", 51.0, backbone="resnet50"
    )


@register("coco_stuff10k_gffnet_resnet101")
def coco_stuff10k_gffnet_resnet101():
    return _paper_config("coco_stuff10k", "Table 10, COCO-Stuff 10k", 39.2)


@register("coco_stuff164k_gffnet_resnet101")
def coco_stuff164k_gffnet_resnet101():
    # The paper trains on COCO-Stuff 10k only; same recipe, no paper number.
    return _paper_config("coco_stuff", "not in the paper (164k split)", None)


# Cityscapes val: Table 1 (fusion methods), Table 2 (+DFP, +MS), Table 4
# (ResNet-18). The paper initializes the Table 1 fusion ablations from its
# trained PSPNet: set model.init_from to that run's checkpoints/latest.keras.
_CITYSCAPES = {
    "cityscapes_pspnet_resnet101": ("Tables 1-3", 78.6, "resnet101", "none"),
    "cityscapes_concat_resnet101": ("Table 1", 78.8, "resnet101", "concat"),
    "cityscapes_add_resnet101": ("Table 1", 78.7, "resnet101", "add"),
    "cityscapes_fpn_resnet101": ("Table 1", 79.3, "resnet101", "fpn"),
    "cityscapes_gated_fpn_resnet101": (
        "Table 1",
        79.4,
        "resnet101",
        "gated_fpn",
    ),
    "cityscapes_gff_resnet101": ("Tables 1-2", 80.4, "resnet101", "gff"),
    "cityscapes_pspnet_resnet18": ("Table 4", 73.0, "resnet18", "none"),
    "cityscapes_gff_resnet18": ("Table 4", 76.6, "resnet18", "gff"),
}


def _register_cityscapes(name, reference, miou, backbone, fusion):
    register(name)(
        lambda: _paper_config(
            "cityscapes",
            f"{reference}, Cityscapes val",
            miou,
            backbone=backbone,
            fusion=fusion,
            dfp=False,
        )
    )


for _name, _row in _CITYSCAPES.items():
    _register_cityscapes(_name, *_row)


@register("cityscapes_gffnet_resnet101")
def cityscapes_gffnet_resnet101():
    return _paper_config("cityscapes", "Table 2 (+DFP), Cityscapes val", 81.2)


@register("cityscapes_gffnet_resnet101_ms")
def cityscapes_gffnet_resnet101_ms():
    return _paper_config(
        "cityscapes",
        "Table 2 (+DFP +MS), Cityscapes val",
        81.8,
        eval_mode="ms_flip",
    )


@register("cityscapes_gffnet_resnet18")
def cityscapes_gffnet_resnet18():
    return _paper_config(
        "cityscapes",
        "Table 4 (GFF+DFP), Cityscapes val",
        78.9,
        backbone="resnet18",
    )


# GFF beyond PSPNet: Table 4 (DenseASPP on DenseNet-121, Cityscapes val)
# and Table 8 (DeepLabV3+ on Wider-ResNet-38, Cityscapes test, fine data
# only). The architectures are `GFFNet` presets; the training recipe is the
# paper's Cityscapes one.
_PRESET_ROWS = {
    "cityscapes_denseaspp_densenet121": (
        "denseaspp_densenet121",
        "Table 4, Cityscapes val",
        78.9,
    ),
    "cityscapes_denseaspp_gff_densenet121": (
        "denseaspp_gff_densenet121",
        "Table 4, Cityscapes val",
        80.1,
    ),
    "cityscapes_denseaspp_gff_dfp_densenet121": (
        "denseaspp_gff_dfp_densenet121",
        "Table 4, Cityscapes val",
        80.9,
    ),
    "cityscapes_deeplabv3plus_wrn38": (
        "deeplabv3plus_wrn38",
        "baseline of Table 8 (no number for this backbone)",
        None,
    ),
    "cityscapes_deeplabv3plus_gff_dfp_wrn38": (
        "deeplabv3plus_gff_dfp_wrn38",
        "Table 8, Cityscapes test (fine data only)",
        83.3,
    ),
}


def _register_preset_row(name, preset, reference, miou):
    def factory():
        config = _paper_config("cityscapes", reference, miou)
        config.model.preset = preset
        if preset_arguments(preset).get("backbone") == "wider_resnet38":
            # keras.applications has no Wider-ResNet-38; the paper starts
            # from Mapillary-pretrained weights (pass them with init_from).
            config.model.backbone.weights = None
        config.description = f"{PRESETS[preset]['description']} {reference}"
        return config

    register(name)(factory)


for _name, _row in _PRESET_ROWS.items():
    _register_preset_row(_name, *_row)
