import keras
import tensorflow as tf
from keras import ops

# Maps at most this many pixels high and wide are small (in training).
SMALL_MAP_SIZE = 8


@keras.saving.register_keras_serializable(package="gff_keras")
class SmallMapConv2D(keras.layers.Conv2D):
    """A `Conv2D` whose undilated convolution trains fast on small maps.

    On CPU, TensorFlow's gradient of a convolution with respect to its
    input (`Conv2DBackpropInput`, oneDNN) is very slow on small feature
    maps with wide filters: forward and both gradients of a 3x3,
    512-channel convolution on 2x2 maps of a batch of 4 take 65 ms, its
    forward pass a few (one thread, AMD EPYC without AVX-512). That is
    where a ResNet's last stage sits when it trains at output stride 32 on
    small crops. For stride 1, `"same"` padding and an odd kernel, the
    input gradient is itself a convolution: the output gradient convolved
    with the kernel flipped in space, its input and output channels
    swapped. In training on maps at most `SMALL_MAP_SIZE` high and wide,
    this layer computes the input gradient that way and the kernel
    gradient with TensorFlow's own kernel: the same step takes 18 ms
    (`docs/benchmarks.md`). The forward pass, weights, config and outputs
    are those of `Conv2D`; gradients differ only by float32 rounding.

    Other settings (strides, dilation, `"valid"` padding, even kernels,
    `channels_first`, groups), larger maps and inference run the usual
    `Conv2D`.

    Args:
        **kwargs: `keras.layers.Conv2D` arguments.

    Example:

    >>> layer = SmallMapConv2D(8, 3, padding="same")
    >>> layer(keras.ops.ones((2, 4, 4, 4)), training=True).shape
    (2, 4, 4, 8)
    """

    def call(self, inputs, training=None):
        if not (training and self._runs_with_fast_gradient(inputs.shape)):
            return super().call(inputs)
        # The kernel's value as a tensor: a variable read inside would make
        # the custom gradient return the variable's gradient separately.
        kernel = ops.copy(self.kernel)
        outputs = _convolution_with_fast_input_gradient(inputs, kernel)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def _runs_with_fast_gradient(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        return (
            height is not None
            and width is not None
            and max(height, width) <= SMALL_MAP_SIZE
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.padding == "same"
            and self.data_format == "channels_last"
            and self.groups == 1
            and all(size % 2 == 1 for size in self.kernel_size)
        )


@keras.ops.custom_gradient
def _convolution_with_fast_input_gradient(inputs, kernel):
    outputs = ops.conv(
        inputs, kernel, strides=1, padding="same", data_format="channels_last"
    )

    def gradient(*args, upstream=None):
        output_gradient = args[0] if upstream is None else upstream
        flipped = ops.transpose(ops.flip(kernel, (0, 1)), (0, 1, 3, 2))
        input_gradient = ops.conv(
            output_gradient,
            flipped,
            strides=1,
            padding="same",
            data_format="channels_last",
        )
        # TF API: Keras has no op for a convolution's kernel gradient.
        kernel_gradient = tf.raw_ops.Conv2DBackpropFilter(
            input=inputs,
            filter_sizes=ops.shape(kernel),
            out_backprop=output_gradient,
            strides=[1, 1, 1, 1],
            padding="SAME",
        )
        return input_gradient, kernel_gradient

    return outputs, gradient
