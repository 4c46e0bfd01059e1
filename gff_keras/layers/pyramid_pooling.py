import keras
from keras import ops

from gff_keras.layers.conv_bn_relu import ConvBNReLU
from gff_keras.layers.resizing import resize_like


def adaptive_average_pool(inputs, bins):
    """Averages an NHWC map over a `bins x bins` grid of adaptive cells.

    Cell `i` along an axis of length `n` covers `[floor(i * n / bins),
    ceil((i + 1) * n / bins))`, the definition of PyTorch's
    `AdaptiveAvgPool2d` that PSPNet uses, so cells overlap when `n` is not a
    multiple of `bins`. The average is two small matrix products, which works
    for sizes known only at run time.

    Args:
        inputs: `[batch, height, width, channels]` tensor.
        bins: int, cells per side.

    Returns:
        `[batch, bins, bins, channels]` tensor.
    """

    def pooling_matrix(length):
        positions = ops.arange(length)
        cells = ops.arange(bins)
        start = (cells * length) // bins
        end = ((cells + 1) * length + bins - 1) // bins
        inside = ops.logical_and(
            ops.greater_equal(positions[None, :], start[:, None]),
            ops.less(positions[None, :], end[:, None]),
        )
        weights = ops.cast(inside, inputs.dtype) / ops.cast(
            (end - start)[:, None], inputs.dtype
        )
        return weights

    shape = ops.shape(inputs)
    rows = pooling_matrix(shape[1])
    cols = pooling_matrix(shape[2])
    pooled = ops.einsum("ih,bhwc->biwc", rows, inputs)
    return ops.einsum("jw,biwc->bijc", cols, pooled)


@keras.saving.register_keras_serializable(package="gff_keras")
class PyramidPooling(keras.layers.Layer):
    """PSPNet's pyramid pooling module (PPM) with its bottleneck convolution.

    The input is average-pooled to `bins x bins` grids (1, 2, 3, 6), each grid
    is projected by a 1x1 `ConvBNReLU` to `in_channels / len(bins)` channels
    and resized bilinearly back to the input size; the input and the branches
    are concatenated and fused by a 3x3 `ConvBNReLU` to `filters` channels.
    Its output is the context feature `y0` that the GFF paper's dense feature
    pyramid starts from.

    Args:
        filters: int, output channels. Defaults to `512`.
        bins: tuple of ints, pooled grid sizes. Defaults to `(1, 2, 3, 6)`.
        branch_filters: int or `None`, channels of each pooled branch;
            `None` uses `in_channels // len(bins)`. Defaults to `None`.
        **kwargs: base layer arguments.

    Example:

    >>> ppm = PyramidPooling(filters=64)
    >>> ppm(keras.ops.zeros((2, 13, 17, 128))).shape
    (2, 13, 17, 64)

    Reference:
        Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017.
    """

    def __init__(
        self, filters=512, bins=(1, 2, 3, 6), branch_filters=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.bins = tuple(bins)
        self.branch_filters = branch_filters
        if not self.bins or any(int(b) < 1 for b in self.bins):
            raise ValueError(
                f"`bins` must be positive integers; received {bins}."
            )

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "`PyramidPooling` expects a rank-4 input with known channels "
                f"[batch, height, width, channels]; received {input_shape}."
            )
        in_channels = input_shape[-1]
        branch_filters = self.branch_filters or in_channels // len(self.bins)
        self.branches = []
        for bins in self.bins:
            branch = ConvBNReLU(
                branch_filters,
                kernel_size=1,
                dtype=self.dtype_policy,
                name=f"pool{bins}",
            )
            branch.build((input_shape[0], bins, bins, in_channels))
            self.branches.append(branch)
        self.bottleneck = ConvBNReLU(
            self.filters,
            kernel_size=3,
            dtype=self.dtype_policy,
            name="bottleneck",
        )
        concat_channels = in_channels + branch_filters * len(self.bins)
        self.bottleneck.build(tuple(input_shape[:3]) + (concat_channels,))
        self.built = True

    def call(self, inputs, training=None):
        pyramid = [inputs]
        for bins, branch in zip(self.bins, self.branches):
            pooled = adaptive_average_pool(inputs, bins)
            pooled = branch(pooled, training=training)
            pyramid.append(resize_like(pooled, inputs))
        return self.bottleneck(
            ops.concatenate(pyramid, axis=-1), training=training
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "bins": self.bins,
                "branch_filters": self.branch_filters,
            }
        )
        return config
