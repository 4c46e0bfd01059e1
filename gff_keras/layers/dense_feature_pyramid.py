import keras
from keras import ops

from gff_keras.layers.conv_bn_relu import ConvBNReLU
from gff_keras.layers.resizing import resize_like


@keras.saving.register_keras_serializable(package="gff_keras")
class DenseFeaturePyramid(keras.layers.Layer):
    """Dense Feature Pyramid (paper eq. 6).

    A top-down pyramid that starts from the context feature `y0` (the PPM
    output) and connects densely: the block of level `k` sees `y0`, the
    outputs of every level above it and the fused feature of its own level,

        y_k = H_k([y0, y_L, ..., y_{k+1}, X~_k]),

    all resized bilinearly to level `k`'s size. Each `H_k` is a single
    `ConvBNReLU` ("a single convolution layer" in the paper). High-level
    context is so reused by every lower level.

    Args:
        filters: int, output channels of each `H_k`. Defaults to `256`.
        kernel_size: int, kernel of each `H_k`. Defaults to `1`; see
            `docs/decisions.md` for the cost of `3`.
        dilation_rates: `None` or one dilation rate per level, in the order
            the blocks run (coarsest level first), e.g. `(3, 6, 9)` for the
            authors' code's DenseASPP-style blocks with `kernel_size=3`.
            Defaults to `None` (no dilation).
        **kwargs: base layer arguments.

    Raises:
        ValueError: when built, if `dilation_rates` does not have one rate
            per level.

    Call arguments:
        inputs: list `[y0, X~_1, ..., X~_L]`: the context feature followed
            by the fused levels, finest first (the order `GatedFullyFusion`
            returns).

    Returns:
        List `[y_1, ..., y_L]`, finest first, each at its level's size with
        `filters` channels.

    Example:

    >>> dfp = DenseFeaturePyramid(filters=16)
    >>> context = keras.ops.ones((1, 8, 8, 32))
    >>> levels = [keras.ops.ones((1, 16, 16, 8)), keras.ops.ones((1, 8, 8, 8))]
    >>> [tuple(y.shape) for y in dfp([context] + levels)]
    [(1, 16, 16, 16), (1, 8, 8, 16)]

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020.
    """

    def __init__(
        self, filters=256, kernel_size=1, dilation_rates=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.dilation_rates = (
            None if dilation_rates is None else tuple(dilation_rates)
        )

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) < 2
            or not all(
                isinstance(s, (list, tuple)) and len(s) == 4
                for s in input_shape
            )
        ):
            raise ValueError(
                "`DenseFeaturePyramid` expects a list [context, level_1, ..., "
                "level_L] of rank-4 feature maps; received shapes "
                f"{input_shape}."
            )
        context_shape, *level_shapes = input_shape
        rates = self.dilation_rates or (1,) * len(level_shapes)
        if len(rates) != len(level_shapes):
            raise ValueError(
                f"`dilation_rates` needs one rate per level "
                f"({len(level_shapes)}); received {self.dilation_rates}."
            )
        in_channels = context_shape[-1]
        blocks = [None] * len(level_shapes)
        for order, level in enumerate(reversed(range(len(level_shapes)))):
            shape = level_shapes[level]
            block = ConvBNReLU(
                self.filters,
                self.kernel_size,
                dilation_rate=rates[order],
                dtype=self.dtype_policy,
                name=f"block{level}",
            )
            block.build(tuple(shape[:3]) + (in_channels + shape[-1],))
            blocks[level] = block
            in_channels += self.filters
        # Assigned once complete: Keras tracks a list's layers on assignment.
        self.blocks = blocks
        self.built = True

    def call(self, inputs, training=None):
        context, *levels = inputs
        above = [context]
        outputs = [None] * len(levels)
        for level in reversed(range(len(levels))):
            x = levels[level]
            dense_input = [resize_like(y, x) for y in above] + [x]
            y = self.blocks[level](
                ops.concatenate(dense_input, axis=-1), training=training
            )
            outputs[level] = y
            above.append(y)
        return outputs

    def compute_output_shape(self, input_shape):
        return [tuple(shape[:3]) + (self.filters,) for shape in input_shape[1:]]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "dilation_rates": self.dilation_rates,
            }
        )
        return config
