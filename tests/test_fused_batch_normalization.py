"""FusedBatchNormalization against keras.layers.BatchNormalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gff_keras.layers import FusedBatchNormalization


def paired_layers(shape, **kwargs):
    """A Keras and a fused layer with the same non-trivial weights."""
    layers = []
    for layer_class in (
        keras.layers.BatchNormalization,
        FusedBatchNormalization,
    ):
        layer = layer_class(momentum=0.9, epsilon=1e-5, **kwargs)
        layer.build(shape)
        channels = shape[-1]
        if layer.scale:
            layer.gamma.assign(np.linspace(0.5, 1.5, channels))
        if layer.center:
            layer.beta.assign(np.linspace(-1.0, 1.0, channels))
        layer.moving_mean.assign(np.linspace(-0.2, 0.3, channels))
        layer.moving_variance.assign(np.linspace(0.8, 1.3, channels))
        layers.append(layer)
    return layers


def train_step(layer, x, upstream):
    """Output, gradients (input and weights) and moving statistics."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    grads = tape.gradient(loss, [x, *layer.trainable_variables])
    return [
        np.asarray(y, "float32"),
        *[np.asarray(g) for g in grads],
        layer.moving_mean.numpy(),
        layer.moving_variance.numpy(),
    ]


@pytest.mark.parametrize(
    "shape", [(2, 5, 7, 6), (3, 16, 16, 32), (2, 1, 1, 4), (1, 1, 1, 4)]
)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_training_matches_keras_batch_normalization(shape, affine):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, shape).astype("float32"))
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    keras_layer, fused_layer = paired_layers(shape, scale=affine, center=affine)
    expected = train_step(keras_layer, x, upstream)
    actual = train_step(fused_layer, x, upstream)
    names = ["output", "input grad", *(["gamma", "beta"] if affine else [])]
    names += ["moving mean", "moving variance"]
    for name, a, e in zip(names, actual, expected):
        # One element per channel: the normalized value is 0 / sqrt(eps),
        # so rounding of the mean is amplified by 1 / sqrt(eps).
        atol = 1e-4 if shape[:3] == (1, 1, 1) and name == "output" else 1e-5
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=atol, err_msg=name)
    # The moving variance averages the biased batch variance.
    biased = np.var(np.asarray(x), axis=(0, 1, 2))
    np.testing.assert_allclose(
        actual[-1], 0.9 * np.linspace(0.8, 1.3, shape[-1]) + 0.1 * biased,
        rtol=1e-5,
    )  # fmt: skip


def test_inference_uses_the_moving_statistics():
    shape = (2, 4, 4, 3)
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    keras_layer, fused_layer = paired_layers(shape)
    expected = (x - fused_layer.moving_mean.numpy()) / np.sqrt(
        fused_layer.moving_variance.numpy() + 1e-5
    ) * fused_layer.gamma.numpy() + fused_layer.beta.numpy()
    np.testing.assert_allclose(
        fused_layer(x, training=False), expected, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        fused_layer(x, training=False), keras_layer(x, training=False)
    )


def test_mixed_precision_keeps_statistics_in_float32():
    shape = (2, 6, 6, 8)
    x = tf.constant(
        np.random.default_rng(2).normal(1.0, 2.0, shape), "bfloat16"
    )
    upstream = tf.ones(shape)
    keras_layer, fused_layer = (
        layer_class(dtype="mixed_bfloat16")
        for layer_class in (
            keras.layers.BatchNormalization,
            FusedBatchNormalization,
        )
    )
    expected = train_step(keras_layer, x, upstream)
    actual = train_step(fused_layer, x, upstream)
    assert fused_layer(x, training=True).dtype == "bfloat16"
    assert fused_layer.moving_variance.dtype == "float32"
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-2, atol=1e-2)


def test_two_replicas_synchronize_the_batch_statistics(two_replicas):
    """Under a 2-replica strategy each replica normalizes with the moments
    of the global batch (synchronized BatchNorm), not its own half."""
    strategy = two_replicas
    rng = np.random.default_rng(3)
    # The two halves have different means, so per-replica statistics
    # would give a different output.
    x = np.concatenate(
        [
            rng.normal(-2.0, 1.0, (2, 4, 4, 3)),
            rng.normal(3.0, 2.0, (2, 4, 4, 3)),
        ]
    ).astype("float32")
    with strategy.scope():
        layer = FusedBatchNormalization(synchronized=True, momentum=0.5)
        layer.build(x.shape)

    @tf.function
    def step(batch):
        return layer(batch, training=True)

    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(4)
    )
    outputs = strategy.run(step, args=(next(iter(dataset)),))
    y = np.concatenate(
        [t.numpy() for t in strategy.experimental_local_results(outputs)]
    )
    mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(
        y, (x - mean) / np.sqrt(variance + 1e-3), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * mean, rtol=1e-5)


def test_config_round_trip_and_saving(tmp_path):
    inputs = keras.Input((8, 8, 4))
    outputs = FusedBatchNormalization(
        momentum=0.8, epsilon=1e-4, synchronized=True, name="bn"
    )(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("bn").moving_mean.assign([0.1, 0.2, 0.3, 0.4])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    layer = loaded.get_layer("bn")
    assert isinstance(layer, FusedBatchNormalization)
    assert (layer.momentum, layer.epsilon, layer.synchronized) == (
        0.8,
        1e-4,
        True,
    )
    x = np.random.default_rng(4).normal(size=(1, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x))


def test_one_replica_training_runs_the_fused_kernel():
    layer = FusedBatchNormalization(synchronized=True)
    layer.build((2, 4, 4, 3))

    def op_types(training):
        function = tf.function(lambda x: layer(x, training=training))
        graph = function.get_concrete_function(
            tf.TensorSpec((2, 4, 4, 3))
        ).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in op_types(training=True)
    assert "FusedBatchNormV3" not in op_types(training=False)


def test_float64_layers_keep_the_keras_path():
    layer = FusedBatchNormalization(dtype="float64")
    layer.build((2, 4, 4, 3))
    function = tf.function(lambda x: layer(x, training=True))
    graph = function.get_concrete_function(
        tf.TensorSpec((2, 4, 4, 3), tf.float64)
    ).graph
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}
    x = np.random.default_rng(5).normal(size=(2, 4, 4, 3))
    y = layer(x, training=True)
    assert y.dtype == "float64"
    expected = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-3)
    np.testing.assert_allclose(y, expected, rtol=1e-9, atol=1e-9)
