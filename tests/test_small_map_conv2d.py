"""SmallMapConv2D: Conv2D's function; on small maps in training its input
gradient is a convolution, checked against TensorFlow's own gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gff_keras.layers import SmallMapConv2D


def pair(kernel_size=3, channels=6, filters=5, **kwargs):
    options = {"padding": "same", "use_bias": True, **kwargs}
    fast = SmallMapConv2D(filters, kernel_size, **options)
    reference = keras.layers.Conv2D(filters, kernel_size, **options)
    shape = (None, None, None, channels)
    fast.build(shape)
    reference.build(shape)
    rng = np.random.default_rng(kernel_size)
    weights = [rng.normal(size=w.shape).astype("float32") for w in fast.weights]
    fast.set_weights(weights)
    reference.set_weights(weights)
    return fast, reference


def output_and_gradients(layer, inputs):
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        output = layer(inputs, training=True)
        # A loss whose gradient differs at every output position.
        weights = tf.reshape(
            tf.sin(0.37 * tf.range(tf.size(output), dtype=output.dtype)),
            tf.shape(output),
        )
        loss = tf.reduce_sum(output * weights)
    return [output, *tape.gradient(loss, [inputs, *layer.trainable_weights])]


def input_gradient_ops(layer, shape):
    """The op types of the traced gradient of `layer` on inputs of `shape`."""

    @tf.function
    def gradient(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs, training=True))
        return tape.gradient(loss, inputs)

    graph = gradient.get_concrete_function(tf.TensorSpec(shape)).graph
    return {op.type for op in graph.get_operations()}


# Maps of 1x1 to 8x8 (odd and uneven sizes), kernels of 1, 3 and 5, with a
# bias and an activation.
@pytest.mark.parametrize(
    "size,kernel_size,activation",
    [((2, 2), 3, None), ((5, 7), 3, "relu"), ((8, 8), 5, None),
     ((1, 1), 3, None), ((3, 8), 1, "relu")],
)  # fmt: skip
def test_training_output_and_gradients_equal_conv2d(
    size, kernel_size, activation
):
    fast, reference = pair(kernel_size, activation=activation)
    inputs = tf.constant(
        np.random.default_rng(0).normal(size=(2, *size, 6)), tf.float32
    )
    assert fast._runs_with_fast_gradient(inputs.shape)
    for ours, theirs in zip(
        output_and_gradients(fast, inputs),
        output_and_gradients(reference, inputs),
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


def test_small_maps_train_without_tensorflows_input_gradient_kernel():
    # The slow kernel is the point: it must not be in the training graph
    # on small maps, and larger maps keep TensorFlow's own gradient.
    fast, _ = pair(channels=4)
    small = input_gradient_ops(fast, (2, 8, 6, 4))
    assert "Conv2DBackpropInput" not in small
    assert "Conv2DBackpropFilter" in small
    assert "Conv2DBackpropInput" in input_gradient_ops(fast, (2, 9, 6, 4))
    assert "Conv2DBackpropInput" in input_gradient_ops(fast, (2, 4, 32, 4))
    # Unknown sizes (a model built for any image size) keep it too.
    assert "Conv2DBackpropInput" in input_gradient_ops(fast, (2, None, None, 4))


@pytest.mark.parametrize(
    "options",
    [{"strides": 2}, {"dilation_rate": 2}, {"padding": "valid"},
     {"kernel_size": 2}, {"groups": 2}],
)  # fmt: skip
def test_other_settings_run_the_usual_conv2d(options):
    options = {"kernel_size": 3, **options}
    fast, reference = pair(channels=4, filters=4, **options)
    inputs = tf.constant(
        np.random.default_rng(1).normal(size=(2, 6, 6, 4)), tf.float32
    )
    assert not fast._runs_with_fast_gradient(inputs.shape)
    for ours, theirs in zip(
        output_and_gradients(fast, inputs),
        output_and_gradients(reference, inputs),
    ):
        np.testing.assert_array_equal(ours, theirs)


def test_inference_is_conv2d_and_the_layer_saves_and_loads(tmp_path):
    fast, reference = pair()
    inputs = np.random.default_rng(2).normal(size=(1, 4, 4, 6))
    np.testing.assert_array_equal(
        fast(inputs, training=False), reference(inputs, training=False)
    )
    config = fast.get_config()
    assert config == {**reference.get_config(), "name": fast.name}
    model = keras.Sequential([keras.Input((4, 4, 6)), fast])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.layers[0]) is SmallMapConv2D
    np.testing.assert_array_equal(loaded(inputs), model(inputs))


def test_mixed_precision_trains_on_small_maps():
    fast, reference = pair(channels=3, filters=4, dtype="mixed_float16")
    inputs = tf.constant(
        np.random.default_rng(3).normal(size=(2, 4, 4, 3)), tf.float32
    )
    ours = output_and_gradients(fast, inputs)
    theirs = output_and_gradients(reference, inputs)
    assert ours[0].dtype == tf.float16
    assert [g.dtype for g in ours[1:]] == [tf.float32] * 3
    # Both in float16: equal up to its rounding of sums of 27 products.
    for mine, expected in zip(ours, theirs):
        scale = float(np.max(np.abs(expected)))
        np.testing.assert_allclose(mine, expected, rtol=0, atol=0.02 * scale)


def test_a_channels_first_default_does_not_reach_a_channels_last_layer():
    fast, reference = pair()
    inputs = tf.constant(
        np.random.default_rng(4).normal(size=(2, 3, 5, 6)), tf.float32
    )
    expected = output_and_gradients(reference, inputs)
    keras.config.set_image_data_format("channels_first")
    try:
        ours = output_and_gradients(fast, inputs)
    finally:
        keras.config.set_image_data_format("channels_last")
    for mine, theirs in zip(ours, expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-4)
