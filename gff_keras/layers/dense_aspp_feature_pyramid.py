import keras
from keras import ops

from gff_keras.layers.fused_batch_normalization import FusedBatchNormalization
from gff_keras.layers.resizing import resize_like


@keras.saving.register_keras_serializable(package="gff_keras")
class DenseASPPFeaturePyramid(keras.layers.Layer):
    """The dense feature pyramid of the GFF authors' released code.

    Their reading of the paper's eq. 6: every level is first resized to the
    finest level's size; a DenseASPP-style block runs per level from the
    coarsest down, and each block reads the outputs of all blocks above it
    and its own fused level,

        y_L = H_L(X~_L),  y_k = H_k([y_L, ..., y_{k+1}, X~_k]),

    where each `H_k` is pre-activated (BatchNorm-ReLU, 1x1 convolution to
    `bottleneck_filters` with bias, BatchNorm-ReLU, dilated 3x3 convolution
    to `filters` with bias), with dilation rates growing down the pyramid
    (3, 6, 9 in their code). Unlike `DenseFeaturePyramid` no block reads the
    context feature; the input keeps `DenseFeaturePyramid`'s form so a head
    can take either.

    Args:
        filters: int, output channels of each block. Defaults to `128`.
        bottleneck_filters: int, channels of each block's 1x1 convolution.
            Defaults to `128`.
        dilation_rates: one dilation rate per level, in the order the blocks
            run (coarsest level first). Defaults to `(3, 6, 9)`.
        epsilon: BatchNorm epsilon. Defaults to `1e-5` (PyTorch's).
        momentum: BatchNorm momentum. Defaults to `0.9` (PyTorch's 0.1).
        align_corners: bool, resize with PyTorch's `align_corners=True`
            sampling, as the authors' code does. Defaults to `False`.
        **kwargs: base layer arguments.

    Raises:
        ValueError: when built, if `dilation_rates` does not have one rate
            per level or the input is not `[context, level_1, ...]`.

    Call arguments:
        inputs: list `[context, X~_1, ..., X~_L]`, finest level first; the
            context is not read.

    Returns:
        List `[y_1, ..., y_L]`, finest first, each at the finest level's
        size with `filters` channels.

    Example:

    >>> pyramid = DenseASPPFeaturePyramid(filters=8, dilation_rates=(2, 4))
    >>> context = keras.ops.ones((1, 8, 8, 32))
    >>> levels = [keras.ops.ones((1, 16, 16, 4)), keras.ops.ones((1, 8, 8, 4))]
    >>> [tuple(y.shape) for y in pyramid([context] + levels)]
    [(1, 16, 16, 8), (1, 16, 16, 8)]

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020;
        Yang et al., "DenseASPP for Semantic Segmentation in Street Scenes",
        CVPR 2018.
    """

    def __init__(
        self,
        filters=128,
        bottleneck_filters=128,
        dilation_rates=(3, 6, 9),
        epsilon=1e-5,
        momentum=0.9,
        align_corners=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.bottleneck_filters = bottleneck_filters
        self.dilation_rates = tuple(dilation_rates)
        self.epsilon = epsilon
        self.momentum = momentum
        self.align_corners = align_corners

    def _batch_norm(self, name):
        return FusedBatchNormalization(
            epsilon=self.epsilon,
            momentum=self.momentum,
            synchronized=True,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) < 2
            or not all(len(shape) == 4 for shape in input_shape)
        ):
            raise ValueError(
                "`DenseASPPFeaturePyramid` expects a list [context, level_1, "
                f"..., level_L] of rank-4 maps; received {input_shape}."
            )
        level_shapes = [tuple(shape) for shape in input_shape[1:]]
        if len(self.dilation_rates) != len(level_shapes):
            raise ValueError(
                f"`dilation_rates` needs one rate per level "
                f"({len(level_shapes)}); received {self.dilation_rates}."
            )
        finest = level_shapes[0][:3]
        blocks = [None] * len(level_shapes)
        above = 0
        for order, level in enumerate(reversed(range(len(level_shapes)))):
            channels = above + level_shapes[level][-1]
            # BatchNorm, 1x1 convolution, BatchNorm, dilated 3x3 one.
            block = [
                self._batch_norm(f"block{level}_norm1"),
                keras.layers.Conv2D(
                    self.bottleneck_filters,
                    1,
                    dtype=self.dtype_policy,
                    name=f"block{level}_conv1",
                ),
                self._batch_norm(f"block{level}_norm2"),
                keras.layers.Conv2D(
                    self.filters,
                    3,
                    padding="same",
                    dilation_rate=self.dilation_rates[order],
                    dtype=self.dtype_policy,
                    name=f"block{level}_conv2",
                ),
            ]
            widths = (channels, channels, self.bottleneck_filters) + (
                self.bottleneck_filters,
            )
            for layer, width in zip(block, widths):
                layer.build(finest + (width,))
            blocks[level] = block
            above += self.filters
        # Assigned once complete: Keras tracks a list's layers on assignment.
        self.blocks = blocks
        self.built = True

    def _block(self, block, x, training):
        norm1, conv1, norm2, conv2 = block
        x = conv1(ops.relu(norm1(x, training=training)))
        return conv2(ops.relu(norm2(x, training=training)))

    def call(self, inputs, training=None):
        levels = inputs[1:]
        finest = levels[0]
        above = []
        outputs = [None] * len(levels)
        for level in reversed(range(len(levels))):
            x = resize_like(levels[level], finest, self.align_corners)
            y = self._block(
                self.blocks[level],
                ops.concatenate(above + [x], axis=-1),
                training,
            )
            outputs[level] = y
            above.append(y)
        return outputs

    def compute_output_shape(self, input_shape):
        finest = tuple(input_shape[1][:3])
        return [finest + (self.filters,) for _ in input_shape[1:]]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "bottleneck_filters": self.bottleneck_filters,
                "dilation_rates": self.dilation_rates,
                "epsilon": self.epsilon,
                "momentum": self.momentum,
                "align_corners": self.align_corners,
            }
        )
        return config
