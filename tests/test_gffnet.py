"""GFFNet: structure, parameter counts, training, saving.

Training on two replicas against one: tests/test_distributed_training.py.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from gff_keras import GFFNet
from gff_keras.backbones import DilatedResNet
from gff_keras.training import SegmentationLoss
from tests.tolerances import assert_network_close

NUM_CLASSES = 4
# A small configuration for everything that is not about the real sizes.
SMALL = dict(backbone="resnet18", context_channels=32)


def small_model(**overrides):
    arguments = {**SMALL, **overrides}
    if arguments.get("fusion") != "none" or arguments.get("dfp", True):
        arguments.setdefault("fused_channels", 16)
    return GFFNet(NUM_CLASSES, **arguments)


def fixed_batch(height=65, width=97, batch=2, ignore=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(batch, height, width, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=(batch, height, width))
    if ignore:
        labels[:, :5] = 255
    return images, labels.astype("int32")


# Paper Table 3 (ResNet-101, 150 classes, no auxiliary head) in millions,
# and the tolerance the project promises.
TABLE_3 = {
    ("none", False): (65.6, 0.02),
    ("gff", False): (69.7, 0.10),
    ("gff", True): (70.5, 0.10),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "fusion,dfp", list(TABLE_3), ids=["pspnet", "gff", "gff_dfp"]
)
def test_parameter_counts_against_table_3(fusion, dfp):
    model = GFFNet(150, backbone="resnet101", fusion=fusion, dfp=dfp)
    paper, tolerance = TABLE_3[(fusion, dfp)]
    params = model.parameter_count() / 1e6
    assert abs(params - paper) / paper <= tolerance, params
    # The auxiliary head is excluded from the count but exists for training.
    assert model.parameter_count(include_aux_head=True) > (
        model.parameter_count() + 2_000_000
    )


VARIANTS = [
    (fusion, dfp)
    for fusion in ("none", "concat", "add", "fpn", "gated_fpn", "gff")
    for dfp in (False, True)
]


@pytest.mark.parametrize(
    "fusion,dfp", VARIANTS, ids=[f"{f}-dfp{int(d)}" for f, d in VARIANTS]
)
def test_every_variant_builds_runs_and_learns(fusion, dfp):
    # Output stride 32: the fusions meet four different resolutions, and
    # an eager step costs a fraction of one at stride 8.
    model = small_model(fusion=fusion, dfp=dfp, output_stride=32)
    images, labels = fixed_batch()
    logits = model(images, training=False)
    assert logits.shape == (2, 65, 97, NUM_CLASSES)
    assert logits.dtype == "float32"
    # Eager steps keep 12 variants fast; graph-mode fit is tested below.
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9), run_eagerly=True
    )
    history = model.fit(
        images, labels, epochs=4, batch_size=2, verbose=0, shuffle=False
    )
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses


@pytest.mark.slow
def test_compiled_fit_and_predict():
    """The notebook path: compile(optimizer) with no loss, fit, predict."""
    model = small_model(output_stride=32)
    images, labels = fixed_batch()
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    history = model.fit(dataset.repeat(4), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    predictions = model.predict(images, verbose=0)
    assert predictions.shape == (2, 65, 97, NUM_CLASSES)


def test_training_call_adds_weighted_auxiliary_loss():
    model = small_model(dropout=0.0)
    images, labels = fixed_batch()
    model.compile(optimizer="sgd")
    logits, aux_logits = model(images, training=True)
    assert logits.shape == aux_logits.shape == (2, 65, 97, NUM_CLASSES)
    assert not isinstance(model(images, training=False), (tuple, list))
    loss_fn = SegmentationLoss()
    expected = float(loss_fn(labels, logits)) + 0.4 * float(
        loss_fn(labels, aux_logits)
    )
    loss = model.compute_loss(
        x=images, y=labels, y_pred=(logits, aux_logits), training=True
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_without_aux_head_training_returns_logits_only():
    model = small_model(aux_head=False)
    images, _ = fixed_batch()
    assert model(images, training=True).shape == (2, 65, 97, NUM_CLASSES)
    assert model.aux_head is None


def test_pspnet_baseline_structure():
    model = small_model(fusion="none", dfp=False)
    assert type(model.head).__name__ == "ContextHead"
    assert model.head.classifier.kernel.shape == (1, 1, 32, 4)


def test_gff_dfp_head_structure():
    model = small_model(fusion="gff", dfp=True)
    head = model.head
    assert model.head_levels == ("res2", "res3", "res4", "res5")
    assert [reducer.filters for reducer in head.reducers] == [16] * 4
    for refiners in head.refiners:
        for refine in refiners:
            assert refine.kernel_size == 3 and refine.filters == 16
    # Classifier sees the PPM output and the four pyramid levels.
    assert head.classifier.kernel.shape == (1, 1, 32 + 4 * 16, 4)
    images, _ = fixed_batch()
    logits, gates = model.gate_maps(images)
    assert [tuple(g.shape[1:3]) for g in gates] == [(17, 25)] + [(9, 13)] * 3
    for gate in gates:
        assert 0.0 <= float(np.min(gate)) and float(np.max(gate)) <= 1.0


def test_gate_maps_require_gated_fusion():
    with pytest.raises(ValueError, match="no gates"):
        small_model(fusion="add").gate_maps(np.zeros((1, 32, 32, 3)))


def test_output_stride_resolution_option_is_cheaper_and_same_params():
    native = small_model(level_resolution="native")
    common = small_model(level_resolution="output_stride")
    assert native.parameter_count() == common.parameter_count()
    images, _ = fixed_batch()
    assert common(images).shape == (2, 65, 97, NUM_CLASSES)
    _, gates = common.gate_maps(images)
    assert [tuple(g.shape[1:3]) for g in gates] == [(9, 13)] * 4


@pytest.mark.parametrize(
    "kwargs,strides",
    [
        (dict(output_stride=8), (4, 8, 8, 8)),
        (dict(output_stride=16, gate_channels=16), (4, 8, 16, 16)),
        (dict(level_resolution="output_stride"), (8, 8, 8, 8)),
    ],
    ids=["os8", "os16_gate16", "output_stride_resolution"],
)
def test_grouped_fusion_keeps_logits(kwargs, strides):
    """The grouped GFF is a faster computation of the same model."""
    grouped = small_model(**kwargs)
    reference = small_model(fusion_implementation="reference", **kwargs)
    assert grouped.head.fusion.implementation == "grouped"
    assert grouped.head.fusion.level_strides == strides
    reference.set_weights(grouped.get_weights())
    # Odd sizes: the levels' sizes are rounded up at every stride-2 step.
    images, _ = fixed_batch(height=75, width=53, batch=1)
    assert_network_close(
        grouped(images, training=False), reference(images, training=False)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(fusion="gff", dfp=True),
        dict(fusion="gated_fpn", dfp=False, gate_channels=16),
        dict(backbone=DilatedResNet(depth=18, stem="deep", name="backbone")),
    ],
    ids=["gff_dfp", "gated_fpn", "backbone_instance"],
)
def test_keras_save_and_safe_load_reproduce_outputs(kwargs, tmp_path):
    model = small_model(**kwargs)
    images, labels = fixed_batch()
    model.compile(optimizer=keras.optimizers.SGD(0.01), run_eagerly=True)
    model.fit(images, labels, epochs=1, verbose=0)  # move BN statistics
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, GFFNet)
    # Through JSON, as the file stores it: tuples come back as lists.
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(
        json.dumps(model.get_config())
    )
    assert_network_close(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0)
    )
    # The auxiliary head was saved too.
    for a, b in zip(loaded.aux_head.weights, model.aux_head.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_backbone_weights_argument(tmp_path):
    source = DilatedResNet(depth=18, output_stride=32)
    path = tmp_path / "resnet18.weights.h5"
    source.save_weights(path)
    model = small_model(backbone_weights=str(path))
    np.testing.assert_array_equal(
        np.asarray(model.backbone.get_layer("conv1_conv").kernel),
        np.asarray(source.get_layer("conv1_conv").kernel),
    )
    assert "backbone_weights" not in model.get_config()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(fusion="sum"), "fusion"),
        (dict(backbone="vgg16"), "backbone"),
        (dict(level_resolution="half"), "level_resolution"),
        (dict(fusion_order="random"), "order"),
        (dict(fusion_implementation="fast"), "implementation"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_model(**kwargs)
