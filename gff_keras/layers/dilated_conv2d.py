import keras
from keras import ops

from gff_keras.keras_internals import op_determinism_enabled

# Maps at most this many times the dilation rate are small (in training).
SMALL_MAP_RATES = 4


@keras.saving.register_keras_serializable(package="gff_keras")
class DilatedConv2D(keras.layers.Conv2D):
    """A `Conv2D` whose dilated convolution trains fast on small maps.

    TensorFlow runs a dilated convolution as an ordinary one over
    space-to-batch blocks; on CPU its gradient becomes very slow when the
    feature map is not much larger than the dilation (1.6 s against 0.13 s
    for a 3x3, rate-4, 512-channel convolution on 8x8 maps of a batch of 8,
    AMD EPYC), which is where training on small crops puts a dilated
    ResNet's last stages. In training, this layer computes the same
    convolution as a sum over the kernel taps of matrix products with
    shifted windows of the zero-padded input, skipping the taps that only
    ever see padding (maps smaller than the dilation), and its gradients
    the same way: the input gradient as the tap sum of the output gradient
    with the kernel mirrored, the kernel gradient of each tap as one
    matrix product of its window with the output gradient. Inference runs
    the usual `Conv2D` (what exports and frozen graphs hold). Weights,
    config and output are those of `Conv2D`; results and gradients differ
    only by float32 rounding.

    Other settings (strides, `"valid"` padding, even kernels,
    `channels_first`, no dilation) and runs under op determinism
    (`tf.config.experimental.enable_op_determinism()`, a config's
    `runtime.deterministic`) always run the usual `Conv2D`.

    Args:
        **kwargs: `keras.layers.Conv2D` arguments.

    Example:

    >>> layer = DilatedConv2D(8, 3, dilation_rate=4, padding="same")
    >>> layer(keras.ops.ones((2, 8, 8, 4)), training=True).shape
    (2, 8, 8, 8)
    """

    def call(self, inputs, training=None):
        taps = training and self._runs_as_taps(inputs.shape)
        # Seeded runs must repeat exactly: a full test-suite run saw the
        # tap sum's last bits vary between two runs of one seed under
        # load; TensorFlow's own kernel never did.
        if not taps or op_determinism_enabled():
            return super().call(inputs)
        outputs = self._tap_convolution(inputs, self.kernel)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def _runs_as_taps(self, input_shape=None):
        if input_shape is not None:
            height, width = input_shape[1], input_shape[2]
            # Measured: on larger maps TensorFlow's own kernel is as fast
            # or faster (a 32x32 map at rate 2 takes half the time).
            if height is None or width is None:
                return False
            if min(height, width) > SMALL_MAP_RATES * max(self.dilation_rate):
                return False
        return (
            max(self.dilation_rate) > 1
            and tuple(self.strides) == (1, 1)
            and self.padding == "same"
            and self.data_format == "channels_last"
            and self.groups == 1
            and all(size % 2 == 1 for size in self.kernel_size)
        )

    def _tap_convolution(self, inputs, kernel):
        (kernel_h, kernel_w), (rate_h, rate_w) = (
            self.kernel_size,
            self.dilation_rate,
        )
        pad_h, pad_w = rate_h * (kernel_h // 2), rate_w * (kernel_w // 2)
        static_h, static_w = inputs.shape[1], inputs.shape[2]
        # A tap this far from the centre reads only padding.
        taps = [
            (row, column)
            for row in range(kernel_h)
            if static_h is None or abs(row * rate_h - pad_h) < static_h
            for column in range(kernel_w)
            if static_w is None or abs(column * rate_w - pad_w) < static_w
        ]
        paddings = [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]]
        # The output and both gradients have the input's size.
        height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]

        def windows(padded, offsets):
            # Each tap's shifted view of a zero-padded tensor.
            for top, left in offsets:
                yield padded[:, top : top + height, left : left + width, :]

        def tap_sum(padded, offsets, matrices):
            terms = (
                ops.tensordot(window, matrix, axes=1)
                for window, matrix in zip(windows(padded, offsets), matrices)
            )
            outputs = next(terms)
            for term in terms:
                outputs = ops.add(outputs, term)
            return outputs

        offsets = [(row * rate_h, column * rate_w) for row, column in taps]
        # Stride 1 and "same" padding: the input gradient is the convolution
        # of the output gradient with the kernel mirrored in space.
        mirrored_offsets = [
            ((kernel_h - 1 - row) * rate_h, (kernel_w - 1 - column) * rate_w)
            for row, column in taps
        ]

        # The gradients are tap sums too: the automatic ones place every
        # window's gradient into a zero tensor of the padded size
        # (StridedSliceGrad), half of a small-crop training step on CPU.
        @ops.custom_gradient
        def convolve(inputs, kernel):
            padded_inputs = ops.pad(inputs, paddings)
            matrices = [kernel[row, column] for row, column in taps]
            outputs = tap_sum(padded_inputs, offsets, matrices)

            def gradient(*args, upstream=None):
                output_gradient = args[0] if upstream is None else upstream
                input_gradient = tap_sum(
                    ops.pad(output_gradient, paddings),
                    mirrored_offsets,
                    [ops.transpose(matrix) for matrix in matrices],
                )
                tap_gradients = {
                    tap: ops.tensordot(
                        window, output_gradient, axes=[[0, 1, 2], [0, 1, 2]]
                    )
                    for tap, window in zip(
                        taps, windows(padded_inputs, offsets)
                    )
                }
                # Taps that read only padding have a zero gradient.
                zeros = ops.zeros_like(matrices[0])
                kernel_gradient = ops.reshape(
                    ops.stack(
                        [
                            tap_gradients.get((row, column), zeros)
                            for row in range(kernel_h)
                            for column in range(kernel_w)
                        ]
                    ),
                    ops.shape(kernel),
                )
                return input_gradient, kernel_gradient

            return outputs, gradient

        # The kernel's value as a tensor: a variable read inside would make
        # the custom gradient return the variable's gradient separately.
        return convolve(inputs, ops.copy(kernel))
