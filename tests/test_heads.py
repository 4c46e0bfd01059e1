"""Every head: config round trip, unknown sizes, save/load, a train step."""

import json

import keras
import numpy as np
import pytest

from gff_keras import heads
from gff_keras import layers

CONTEXT_CHANNELS = 12
LEVEL_CHANNELS = (4, 6, 8)
# A finest level and two at a quarter of its size, like res2 and res4/res5.
SIZES = ((16, 20), (4, 5), (4, 5))

HEADS = {
    "ContextHead": (lambda: heads.ContextHead(3), 0),
    "FusionHeadGFF": (
        lambda: heads.FusionHead(
            3,
            fusion=layers.GatedFullyFusion(return_gates=True),
            pyramid=layers.DenseFeaturePyramid(8),
            channels=8,
        ),
        3,
    ),
    "FusionHeadRawGatesContext": (
        lambda: heads.FusionHead(
            3,
            fusion=layers.GatedFullyFusion(
                gate_input="raw", order="sequential", return_gates=True
            ),
            channels=8,
            fuse_context=True,
        ),
        2,
    ),
    "FusionHeadFPN": (
        lambda: heads.FusionHead(3, fusion=layers.FPNFusion(), channels=8),
        3,
    ),
    "FusionHeadOutputStride": (
        lambda: heads.FusionHead(
            3,
            fusion=layers.AddFusion(),
            channels=8,
            level_resolution="output_stride",
        ),
        3,
    ),
    "DeepLabV3PlusHead": (
        lambda: heads.DeepLabV3PlusHead(3, low_level_channels=4, channels=8),
        1,
    ),
    "AuthorsGFFHead": (
        lambda: heads.AuthorsGFFHead(
            3,
            levels=None,
            channels=8,
            context_channels=10,
            classifier_channels=6,
        ),
        2,
    ),
}


def head_model(factory, levels):
    inputs = [keras.Input((None, None, CONTEXT_CHANNELS))] + [
        keras.Input((None, None, c)) for c in LEVEL_CHANNELS[:levels]
    ]
    outputs = factory()(inputs)
    return keras.Model(inputs, outputs)


def head_inputs(levels, scale=1, seed=0):
    rng = np.random.default_rng(seed)
    context = (SIZES[-1][0] * scale, SIZES[-1][1] * scale)
    shapes = [context + (CONTEXT_CHANNELS,)] + [
        (h * scale, w * scale, c)
        for (h, w), c in zip(SIZES[:levels], LEVEL_CHANNELS)
    ]
    return [rng.normal(size=(2, *s)).astype("float32") for s in shapes]


@pytest.mark.parametrize("name", list(HEADS))
def test_head_contract(name, tmp_path):
    factory, levels = HEADS[name]
    head = factory()
    config = head.get_config()
    rebuilt = type(head).from_config(config)
    assert json.dumps(rebuilt.get_config(), sort_keys=True) == json.dumps(
        config, sort_keys=True
    )
    model = head_model(factory, levels)
    for scale in (1, 2):  # nothing may depend on the first size
        inputs = head_inputs(levels, scale)
        outputs = model(inputs)
        logits = np.asarray(outputs["logits"])
        finest = inputs[1] if levels else inputs[0]
        if name == "FusionHeadOutputStride":
            finest = inputs[0]
        assert logits.shape == finest.shape[:3] + (3,)
        assert np.all(np.isfinite(logits))
    path = tmp_path / "head.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    for a, b in zip(
        keras.tree.flatten(loaded(inputs)), keras.tree.flatten(outputs)
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    # A training step moves the weights.
    trainer = keras.Model(model.inputs, model(model.inputs)["logits"])
    before = [np.array(w) for w in trainer.trainable_weights]
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    trainer.fit(inputs, np.zeros_like(logits), verbose=0)
    after = [np.array(w) for w in trainer.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_fcn_head_contract(tmp_path):
    head = heads.FCNHead(3, channels=8, dropout=0.2)
    assert heads.FCNHead.from_config(head.get_config()).get_config() == (
        head.get_config()
    )
    inputs = keras.Input((None, None, 5))
    model = keras.Model(inputs, head(inputs))
    x = np.random.default_rng(0).normal(size=(1, 7, 9, 5)).astype("float32")
    assert model(x).shape == (1, 7, 9, 3)
    model.save(tmp_path / "fcn.keras")
    loaded = keras.models.load_model(tmp_path / "fcn.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_heads_name_the_levels_they_read():
    names = ("res2", "res3", "res4", "res5")
    assert heads.ContextHead(3).feature_levels(names) == ()
    assert heads.FusionHead(3).feature_levels(names) == names
    assert heads.FusionHead(3, levels=("res2", "res5")).feature_levels(
        names
    ) == ("res2", "res5")
    assert heads.DeepLabV3PlusHead(3).feature_levels(names) == ("res2",)
    assert heads.AuthorsGFFHead(3, levels=("res3", "res5")).feature_levels(
        names
    ) == ("res3", "res5")
    with pytest.raises(ValueError, match="levels"):
        heads.FusionHead(3, levels=("mod2",)).feature_levels(names)
    with pytest.raises(ValueError, match="low_level"):
        heads.DeepLabV3PlusHead(3, low_level="mod2").feature_levels(names)
    with pytest.raises(ValueError, match="fuse_context"):
        heads.FusionHead(3, fusion=layers.FPNFusion(), fuse_context=True)
    with pytest.raises(ValueError, match="level_resolution"):
        heads.FusionHead(3, level_resolution="finest")
