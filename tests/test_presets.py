"""Every preset builds, predicts at odd sizes and trains one step."""

import keras
import numpy as np
import pytest

from gff_keras import GFFNet
from gff_keras.models import PRESETS


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_builds_predicts_and_fits(preset):
    model = GFFNet.from_preset(preset, num_classes=5)
    for key, value in PRESETS[preset]["arguments"].items():
        assert model.get_config()[key] == value
    assert model.name == preset
    # Eager: tracing eleven large graphs would dominate the test time.
    model.compile(optimizer=keras.optimizers.SGD(0.01), run_eagerly=True)
    images = np.random.default_rng(0).normal(size=(1, 37, 29, 3))
    logits = model.predict(images.astype("float32"), verbose=0)
    assert logits.shape == (1, 37, 29, 5)
    assert np.all(np.isfinite(logits))

    labels = np.random.default_rng(1).integers(0, 5, (2, 33, 35))
    history = model.fit(
        np.random.default_rng(2).normal(size=(2, 33, 35, 3)).astype("float32"),
        labels.astype("int32"),
        batch_size=2,
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])


def test_from_preset_overrides_and_errors():
    model = GFFNet.from_preset(
        "gffnet_resnet18", num_classes=3, output_stride=32, name="mine"
    )
    assert (model.output_stride, model.name, model.fusion) == (
        32,
        "mine",
        "gff",
    )
    with pytest.raises(ValueError, match="Unknown preset 'gffnet'.*presets:"):
        GFFNet.from_preset("gffnet", num_classes=3)


def test_authors_code_preset_fuses_mod2_mod5_and_the_aspp_in_order():
    model = GFFNet.from_preset("deeplabv3plus_gff_dfp_wrn38", num_classes=19)
    # The figure recorded in docs/benchmarks.md (Cityscapes classes).
    assert model.parameter_count() == 138_709_587
    fusion = model.get_layer("fusion")
    assert fusion.order == "sequential"
    assert fusion.gate_channels == 128
    # mod2 (1/2), mod5 (1/8) and the ASPP output (1/8): three gates.
    assert [c.kernel.shape for c in fusion.gate_convs] == [(1, 1, 128, 128)] * 3
    assert fusion.level_strides == (2, 8, 8)
    dfp = model.get_layer("dense_feature_pyramid")
    assert [b.dilation_rate for b in dfp.blocks] == [9, 6, 3]
    assert model.get_layer("aspp").rates == (12, 24, 36)


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
