import keras
from keras import ops

from gff_keras.layers.conv_bn_relu import ConvBNReLU
from gff_keras.layers.resizing import resize_like


@keras.saving.register_keras_serializable(package="gff_keras")
class AtrousSpatialPyramidPooling(keras.layers.Layer):
    """DeepLabV3's atrous spatial pyramid pooling (ASPP) context module.

    Parallel branches see the input at several rates: a 1x1 `ConvBNReLU`,
    one 3x3 `ConvBNReLU` per dilation rate, and image pooling (global
    average, 1x1 `ConvBNReLU`, broadcast back to the input size). The
    branches are concatenated and projected by a 1x1 `ConvBNReLU` to
    `filters` channels, followed by dropout. With `projection=False` the
    concatenation itself is the output (the GFF authors' code projects it
    outside the module, with a 3x3 convolution), and
    `image_pooling_first=True` puts the image-pooling branch first in the
    concatenation, as that code does.

    Args:
        filters: int, channels of every branch and of the output. Defaults
            to `256`.
        rates: tuple of ints, dilation rates of the 3x3 branches. Defaults
            to `(12, 24, 36)`, DeepLab's rates at output stride 8 (use
            `(6, 12, 18)` at output stride 16).
        dropout: float, dropout after the projection, or `None` for `0.1`
            with a projection and none without. Defaults to `None`.
        projection: bool, project the concatenation to `filters` channels.
            Defaults to `True`.
        image_pooling_first: bool, concatenate the image-pooling branch
            first instead of last. Defaults to `False`.
        **kwargs: base layer arguments.

    Raises:
        ValueError: for rates that are not positive integers, or a dropout
            without a projection.

    Example:

    >>> aspp = AtrousSpatialPyramidPooling(filters=32, rates=(2, 4))
    >>> aspp(keras.ops.zeros((2, 13, 17, 64))).shape
    (2, 13, 17, 32)

    Reference:
        Chen et al., "Rethinking Atrous Convolution for Semantic Image
        Segmentation", 2017; Chen et al., "Encoder-Decoder with Atrous
        Separable Convolution for Semantic Image Segmentation", ECCV 2018.
    """

    def __init__(
        self,
        filters=256,
        rates=(12, 24, 36),
        dropout=None,
        projection=True,
        image_pooling_first=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if any(int(r) < 1 for r in rates):
            raise ValueError(
                f"`rates` must be positive integers; received {rates}."
            )
        if not projection and dropout:
            raise ValueError(
                f"`dropout={dropout}` follows the projection; it has no "
                "effect with `projection=False`."
            )
        self.filters = filters
        self.rates = tuple(rates)
        self.dropout = dropout
        self.projection = projection
        self.image_pooling_first = image_pooling_first

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "`AtrousSpatialPyramidPooling` expects a rank-4 input with "
                "known channels [batch, height, width, channels]; received "
                f"{input_shape}."
            )

        def branch(kernel_size, dilation_rate, name, shape=input_shape):
            layer = ConvBNReLU(
                self.filters,
                kernel_size,
                dilation_rate=dilation_rate,
                dtype=self.dtype_policy,
                name=name,
            )
            layer.build(shape)
            return layer

        branches = [branch(1, 1, "conv1x1")]
        branches += [branch(3, rate, f"rate{rate}") for rate in self.rates]
        self.branches = branches
        self.image_pooling = branch(
            1, 1, "image_pooling", (input_shape[0], 1, 1, input_shape[-1])
        )
        self.projector = None
        if self.projection:
            concat_channels = self.filters * (len(self.rates) + 2)
            self.projector = branch(
                1, 1, "projection", tuple(input_shape[:3]) + (concat_channels,)
            )
            self.projection_dropout = keras.layers.Dropout(
                0.1 if self.dropout is None else self.dropout,
                dtype=self.dtype_policy,
                name="dropout",
            )
        self.built = True

    def call(self, inputs, training=None):
        outputs = [
            branch(inputs, training=training) for branch in self.branches
        ]
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        pooled = self.image_pooling(pooled, training=training)
        # Bilinear resizing of a 1x1 map is the broadcast DeepLab uses.
        pooled = resize_like(pooled, inputs)
        if self.image_pooling_first:
            outputs.insert(0, pooled)
        else:
            outputs.append(pooled)
        outputs = ops.concatenate(outputs, axis=-1)
        if self.projector is None:
            return outputs
        projected = self.projector(outputs, training=training)
        return self.projection_dropout(projected, training=training)

    def compute_output_shape(self, input_shape):
        branches = 1 if self.projection else len(self.rates) + 2
        return tuple(input_shape[:3]) + (self.filters * branches,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "rates": self.rates,
                "dropout": self.dropout,
                "projection": self.projection,
                "image_pooling_first": self.image_pooling_first,
            }
        )
        return config
