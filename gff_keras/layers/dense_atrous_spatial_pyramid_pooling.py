import keras
from keras import ops

from gff_keras.layers.conv_bn_relu import ConvBNReLU


@keras.saving.register_keras_serializable(package="gff_keras")
class DenseAtrousSpatialPyramidPooling(keras.layers.Layer):
    """DenseASPP: densely connected atrous convolutions (Yang et al. 2018).

    Atrous layers with growing rates are stacked, and each reads the input
    concatenated with the outputs of every layer before it, so the module
    covers a dense range of receptive fields. Each layer is a 1x1
    `ConvBNReLU` to `bottleneck_filters` channels, a 3x3 `ConvBNReLU` with
    its dilation rate to `growth_filters` channels, and dropout. The output
    is the input concatenated with all layer outputs:
    `in_channels + len(rates) * growth_filters` channels.

    DenseASPP uses pre-activation (BN-ReLU-conv) layers; here they are
    post-activation `ConvBNReLU`, like every other block of the network
    (see `docs/decisions.md`).

    Args:
        bottleneck_filters: int, width of each 1x1 reduction. Defaults to
            `128` (DenseASPP's setting on DenseNet-121).
        growth_filters: int, channels each atrous layer adds. Defaults to
            `64`.
        rates: tuple of ints, dilation rates in stacking order. Defaults to
            `(3, 6, 12, 18, 24)`.
        dropout: float, dropout after each atrous layer. Defaults to `0.1`.
        **kwargs: base layer arguments.

    Raises:
        ValueError: for rates that are not positive integers.

    Example:

    >>> dense_aspp = DenseAtrousSpatialPyramidPooling(16, 8, rates=(2, 4))
    >>> dense_aspp(keras.ops.zeros((1, 9, 11, 32))).shape
    (1, 9, 11, 48)

    Reference:
        Yang et al., "DenseASPP for Semantic Segmentation in Street
        Scenes", CVPR 2018.
    """

    def __init__(
        self,
        bottleneck_filters=128,
        growth_filters=64,
        rates=(3, 6, 12, 18, 24),
        dropout=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.bottleneck_filters = bottleneck_filters
        self.growth_filters = growth_filters
        self.rates = tuple(rates)
        self.dropout = dropout
        if not self.rates or any(int(r) < 1 for r in self.rates):
            raise ValueError(
                f"`rates` must be positive integers; received {rates}."
            )

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "`DenseAtrousSpatialPyramidPooling` expects a rank-4 input "
                "with known channels [batch, height, width, channels]; "
                f"received {input_shape}."
            )
        spatial = tuple(input_shape[:3])
        channels = input_shape[-1]
        reductions, atrous_convs = [], []
        for rate in self.rates:
            reduction = ConvBNReLU(
                self.bottleneck_filters,
                1,
                dtype=self.dtype_policy,
                name=f"rate{rate}_reduce",
            )
            reduction.build(spatial + (channels,))
            atrous = ConvBNReLU(
                self.growth_filters,
                3,
                dilation_rate=rate,
                dtype=self.dtype_policy,
                name=f"rate{rate}_atrous",
            )
            atrous.build(spatial + (self.bottleneck_filters,))
            reductions.append(reduction)
            atrous_convs.append(atrous)
            channels += self.growth_filters
        self.reductions = reductions
        self.atrous_convs = atrous_convs
        self.layer_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="dropout"
        )
        self.built = True

    def call(self, inputs, training=None):
        features = inputs
        for reduction, atrous in zip(self.reductions, self.atrous_convs):
            x = reduction(features, training=training)
            x = atrous(x, training=training)
            x = self.layer_dropout(x, training=training)
            features = ops.concatenate([features, x], axis=-1)
        return features

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1] + len(self.rates) * self.growth_filters
        return tuple(input_shape[:3]) + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "bottleneck_filters": self.bottleneck_filters,
                "growth_filters": self.growth_filters,
                "rates": self.rates,
                "dropout": self.dropout,
            }
        )
        return config
