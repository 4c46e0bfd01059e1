import keras
from keras import ops

from gff_keras.heads.level_inputs import check_inputs
from gff_keras.heads.level_inputs import resolve_levels
from gff_keras.layers.conv_bn_relu import ConvBNReLU
from gff_keras.layers.resizing import resize_like


@keras.saving.register_keras_serializable(package="gff_keras")
class DeepLabV3PlusHead(keras.layers.Layer):
    """DeepLabV3+'s decoder: the context upsampled onto one low level.

    The low-level feature is reduced by a 1x1 `ConvBNReLU` to
    `low_level_channels`, concatenated with the context resized to its size,
    and refined by two 3x3 `ConvBNReLU` of `channels` before dropout and a
    1x1 classifier.

    Args:
        num_classes: int, number of classes.
        low_level: the backbone feature the decoder reads, or `None` for the
            finest one. Defaults to `None`.
        low_level_channels: int. Defaults to `48` (DeepLabV3+).
        channels: int, width of the refinement. Defaults to `256`.
        dropout: float, dropout before the classifier. Defaults to `0.1`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list `[context, low_level]`.

    Returns:
        `{"logits": [batch, h, w, num_classes]}` at the low level's size.

    Example:

    >>> head = DeepLabV3PlusHead(num_classes=3, channels=8)
    >>> context = keras.ops.ones((1, 8, 8, 16))
    >>> low = keras.ops.ones((1, 32, 32, 4))
    >>> head([context, low])["logits"].shape
    (1, 32, 32, 3)

    Reference:
        Chen et al., "Encoder-Decoder with Atrous Separable Convolution for
        Semantic Image Segmentation", ECCV 2018.
    """

    def __init__(
        self,
        num_classes,
        low_level=None,
        low_level_channels=48,
        channels=256,
        dropout=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.low_level = low_level
        self.low_level_channels = low_level_channels
        self.channels = channels
        self.dropout = dropout
        self.reducer = ConvBNReLU(
            low_level_channels, 1, dtype=self.dtype_policy, name="reduce"
        )
        self.refiners = [
            ConvBNReLU(channels, 3, dtype=self.dtype_policy, name=f"conv{i}")
            for i in (1, 2)
        ]
        self.classifier_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="classifier_dropout"
        )
        self.classifier = keras.layers.Conv2D(
            num_classes, 1, dtype=self.dtype_policy, name="classifier"
        )

    def feature_levels(self, feature_names):
        """The backbone feature this head reads: `(low_level,)`."""
        if self.low_level is None:
            return tuple(feature_names[:1])
        return resolve_levels("low_level", (self.low_level,), feature_names)

    def build(self, input_shape):
        check_inputs(self, input_shape, levels=1)
        context_shape, low_shape = [tuple(s) for s in input_shape]
        self.reducer.build(low_shape)
        width = self.low_level_channels + context_shape[-1]
        self.refiners[0].build(low_shape[:3] + (width,))
        self.refiners[1].build(low_shape[:3] + (self.channels,))
        self.classifier.build(low_shape[:3] + (self.channels,))
        self.built = True

    def call(self, inputs, training=None):
        context, low_level = inputs
        low_level = self.reducer(low_level, training=training)
        x = ops.concatenate(
            [low_level, resize_like(context, low_level)], axis=-1
        )
        for refiner in self.refiners:
            x = refiner(x, training=training)
        x = self.classifier_dropout(x, training=training)
        return {"logits": self.classifier(x)}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "low_level": self.low_level,
                "low_level_channels": self.low_level_channels,
                "channels": self.channels,
                "dropout": self.dropout,
            }
        )
        return config
