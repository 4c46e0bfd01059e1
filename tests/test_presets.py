"""Every preset builds, predicts at odd sizes and trains one step."""

import keras
import numpy as np
import pytest

from gff_keras import GFFNet
from gff_keras.models import PRESETS
from gff_keras.models.presets import preset_arguments


def test_from_preset_overrides_and_errors():
    model = GFFNet.from_preset(
        "gffnet_resnet18", num_classes=3, output_stride=32, name="mine"
    )
    assert (model.backbone.output_stride, model.name) == (32, "mine")
    assert type(model.head.fusion).__name__ == "GatedFullyFusion"
    with pytest.raises(ValueError, match="Unknown preset 'gffnet'.*presets:"):
        GFFNet.from_preset("gffnet", num_classes=3)
    # An override must apply to the preset's parts.
    with pytest.raises(ValueError, match="fusion_order"):
        GFFNet.from_preset("pspnet_resnet18", num_classes=3, fusion_order="x")


# Parameters (auxiliary head excluded) of every preset, at Cityscapes' 19 or
# ADE20K's 150 classes: as version 0.1 built them (docs/benchmarks.md), and
# the authors' network's (their state dict's shapes).
PRESET_PARAMETERS = {
    "pspnet_resnet18": (19, 16_173_843),
    "gffnet_resnet18": (19, 22_346_519),
    "pspnet_resnet50": (150, 46_685_334),
    "gffnet_resnet50": (150, 53_729_434),
    "pspnet_resnet101": (150, 65_703_574),
    "gffnet_resnet101": (150, 72_747_674),
    "denseaspp_densenet121": (19, 8_087_251),
    "denseaspp_gff_densenet121": (19, 13_553_367),
    "denseaspp_gff_dfp_densenet121": (19, 15_587_031),
    "deeplabv3plus_wrn38": (19, 137_112_755),
    "deeplabv3plus_gff_dfp_wrn38": (19, 141_103_808),
}


def test_every_preset_has_its_parameter_count():
    assert sorted(PRESET_PARAMETERS) == sorted(PRESETS)


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_parameters_prediction_and_training_step(preset):
    num_classes, parameters = PRESET_PARAMETERS[preset]
    # The presets as they are: on 33x35 crops the dilated layers (ASPP
    # rates up to 36) train as tap sums (DilatedConv2D).
    model = GFFNet(
        num_classes, name=preset, **preset_arguments(preset, num_classes)
    )
    assert model.name == preset
    assert model.parameter_count() == parameters
    # Eager: tracing eleven large graphs would dominate the test time.
    model.compile(optimizer=keras.optimizers.SGD(0.01), run_eagerly=True)
    images = np.random.default_rng(0).normal(size=(1, 37, 29, 3))
    logits = model.predict(images.astype("float32"), verbose=0)
    assert logits.shape == (1, 37, 29, num_classes)
    assert np.all(np.isfinite(logits))

    labels = np.random.default_rng(1).integers(0, num_classes, (2, 33, 35))
    history = model.fit(
        np.random.default_rng(2).normal(size=(2, 33, 35, 3)).astype("float32"),
        labels.astype("int32"),
        batch_size=2,
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.slow
def test_table_1_gff_without_dfp_parameter_count_is_unchanged():
    model = GFFNet(150, backbone="resnet101", fusion="gff", dfp=False)
    assert model.parameter_count() == 71_565_978


@pytest.mark.parametrize(
    "arguments,message",
    [
        (dict(context="psp"), "context"),
        (dict(backbone="vgg16"), "backbone"),
        (dict(levels=("res2", "mod5")), "levels"),
        (dict(fusion="fpn", fuse_context=True), "fuse_context"),
        (dict(fusion="gff", decoder_level="res2"), "decoder_level"),
        (dict(levels=("res5", "res2")), "finest feature to the coarsest"),
        (dict(context_rates=(6, 12)), "context_rates"),
        (dict(context="dense_aspp", context_channels=64), "context_channels"),
        (dict(fusion="none", dfp=False, levels=("res2",)), "levels"),
        (dict(fusion="none", dfp=False, fuse_context=True), "fuse_context"),
        (dict(dfp=False, dfp_dilation_rates=(1, 2)), "dfp_dilation_rates"),
        (dict(backbone="densenet121", stem="deep"), "stem"),
    ],
)
def test_bad_composition_raises(arguments, message):
    with pytest.raises(ValueError, match=message):
        GFFNet(num_classes=3, **{"backbone": "resnet18", **arguments})
