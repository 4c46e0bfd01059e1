import keras

from gff_keras.layers.conv_bn_relu import ConvBNReLU


@keras.saving.register_keras_serializable(package="gff_keras")
class FCNHead(keras.layers.Layer):
    """A 3x3 `ConvBNReLU`, dropout and a 1x1 classifier on one feature map.

    PSPNet's auxiliary head, which the paper keeps ("auxiliary loss on
    stage3 of ResNet", weight 0.4): the `Segmenter` applies it to one
    backbone level during training only.

    Args:
        num_classes: int, number of classes.
        channels: int, width of the 3x3 convolution. Defaults to `256`.
        dropout: float, dropout before the classifier. Defaults to `0.1`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `[batch, h, w, channels]` feature map.

    Returns:
        `[batch, h, w, num_classes]` logits.

    Example:

    >>> FCNHead(num_classes=3, channels=8)(keras.ops.ones((1, 8, 8, 4))).shape
    (1, 8, 8, 3)
    """

    def __init__(self, num_classes, channels=256, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.channels = channels
        self.dropout = dropout
        self.conv = ConvBNReLU(
            channels, 3, dtype=self.dtype_policy, name="aux_conv"
        )
        self.classifier_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="aux_dropout"
        )
        self.classifier = keras.layers.Conv2D(
            num_classes, 1, dtype=self.dtype_policy, name="aux_classifier"
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "`FCNHead` expects a [batch, height, width, channels] map; "
                f"received shape {input_shape}."
            )
        self.conv.build(input_shape)
        self.classifier.build(tuple(input_shape[:3]) + (self.channels,))
        self.built = True

    def call(self, inputs, training=None):
        x = self.conv(inputs, training=training)
        x = self.classifier_dropout(x, training=training)
        return self.classifier(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "channels": self.channels,
                "dropout": self.dropout,
            }
        )
        return config
