"""DilatedConv2D: Conv2D's function, computed as shifted matrix products in
training, checked against Keras' own Conv2D and a numpy convolution."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gff_keras.layers import DilatedConv2D
from tests.tolerances import assert_network_close


def numpy_dilated_convolution(inputs, kernel, bias, rate):
    """'same' zero padding, stride 1, by definition."""
    kh, kw, _, filters = kernel.shape
    batch, height, width, _ = inputs.shape
    pad_h, pad_w = rate * (kh // 2), rate * (kw // 2)
    padded = np.pad(inputs, [(0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)])
    outputs = np.zeros((batch, height, width, filters)) + bias
    for i in range(kh):
        for j in range(kw):
            window = padded[
                :, i * rate : i * rate + height, j * rate : j * rate + width
            ]
            outputs += window @ kernel[i, j]
    return outputs


def pair(rate, kernel_size=3, channels=6, filters=5, **kwargs):
    options = dict(padding="same", dilation_rate=rate, use_bias=True, **kwargs)
    fast = DilatedConv2D(filters, kernel_size, **options)
    reference = keras.layers.Conv2D(filters, kernel_size, **options)
    shape = (None, None, None, channels)
    fast.build(shape)
    reference.build(shape)
    rng = np.random.default_rng(rate)
    weights = [rng.normal(size=w.shape).astype("float32") for w in fast.weights]
    fast.set_weights(weights)
    reference.set_weights(weights)
    return fast, reference, weights


# Maps larger than, equal to and smaller than the dilation (taps that read
# only padding are skipped), odd sizes, a 5x5 kernel.
@pytest.mark.parametrize(
    "rate,size,kernel_size",
    [(2, (7, 8), 3), (4, (8, 8), 3), (6, (5, 7), 3), (18, (2, 3), 3),
     (3, (10, 6), 5)],
)  # fmt: skip
def test_training_output_and_gradients_equal_conv2d(rate, size, kernel_size):
    fast, reference, (kernel, bias) = pair(rate, kernel_size)
    inputs = tf.constant(
        np.random.default_rng(0).normal(size=(2, *size, 6)), tf.float32
    )
    assert fast._runs_as_taps(inputs.shape)

    def output_and_gradients(forward, variables):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            output = forward()
            loss = tf.reduce_sum(output * tf.cos(output))
        gradients = tape.gradient(loss, [inputs, *variables])
        return output.numpy(), [g.numpy() for g in gradients]

    # The training path itself: a suite worker may have turned on op
    # determinism, under which the layer runs Conv2D.
    fast_output, fast_gradients = output_and_gradients(
        lambda: fast._tap_convolution(inputs, fast.kernel) + fast.bias,
        [fast.kernel, fast.bias],
    )
    reference_output, reference_gradients = output_and_gradients(
        lambda: reference(inputs, training=True), reference.weights
    )
    expected = numpy_dilated_convolution(inputs.numpy(), kernel, bias, rate)
    assert_network_close(fast_output, expected)
    assert_network_close(reference_output, expected)
    for fast_gradient, reference_gradient in zip(
        fast_gradients, reference_gradients
    ):
        assert_network_close(fast_gradient, reference_gradient)


def test_inference_and_other_settings_run_conv2d_itself():
    fast, reference, _ = pair(4)
    inputs = tf.constant(
        np.random.default_rng(1).normal(size=(1, 12, 12, 6)), tf.float32
    )
    np.testing.assert_array_equal(
        fast(inputs, training=False), reference(inputs, training=False)
    )
    for options in (dict(strides=2), dict(padding="valid")):
        layer = DilatedConv2D(4, 3, dilation_rate=1, **options)
        assert not layer._runs_as_taps()
    assert not DilatedConv2D(4, 2, dilation_rate=2)._runs_as_taps()
    # Larger maps (more than 4x the rate) and unknown sizes: Conv2D's
    # kernel, as fast or faster there.
    layer = DilatedConv2D(4, 3, dilation_rate=2, padding="same")
    assert layer._runs_as_taps((2, 8, 30, 6))
    assert not layer._runs_as_taps((2, 9, 30, 6))
    assert not layer._runs_as_taps((2, None, 8, 6))


def test_saved_and_reloaded_with_its_config(tmp_path):
    fast, _, _ = pair(2, activation="relu")
    inputs = keras.Input((None, None, 6))
    model = keras.Model(inputs, fast(inputs))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    layer = loaded.layers[-1]
    assert isinstance(layer, DilatedConv2D)
    assert layer.get_config() == fast.get_config()
    images = np.random.default_rng(2).normal(size=(1, 7, 9, 6))
    np.testing.assert_array_equal(
        loaded(images, training=True), model(images, training=True)
    )
