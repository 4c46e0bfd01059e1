import keras

from gff_keras.heads.level_inputs import check_inputs


@keras.saving.register_keras_serializable(package="gff_keras")
class ContextHead(keras.layers.Layer):
    """Classifies the context module's output: PSPNet's (and DeepLabV3's) head.

    Dropout and a 1x1 convolution on the context features; no backbone level
    is read. With `PyramidPooling` as the context module this is PSPNet, the
    paper's baseline.

    Args:
        num_classes: int, number of classes.
        dropout: float, dropout before the classifier. Defaults to `0.1`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list `[context]` of one `[batch, h, w, channels]` map.

    Returns:
        `{"logits": [batch, h, w, num_classes]}`, at the context's size.

    Example:

    >>> head = ContextHead(num_classes=4)
    >>> head([keras.ops.ones((1, 8, 8, 16))])["logits"].shape
    (1, 8, 8, 4)
    """

    def __init__(self, num_classes, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.dropout = dropout
        self.classifier_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="classifier_dropout"
        )
        self.classifier = keras.layers.Conv2D(
            num_classes, 1, dtype=self.dtype_policy, name="classifier"
        )

    def feature_levels(self, feature_names):
        """The backbone features this head reads: none."""
        del feature_names
        return ()

    def build(self, input_shape):
        check_inputs(self, input_shape, levels=0)
        self.classifier.build(input_shape[0])
        self.built = True

    def call(self, inputs, training=None):
        context = inputs[0]
        x = self.classifier_dropout(context, training=training)
        return {"logits": self.classifier(x)}

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_classes": self.num_classes, "dropout": self.dropout}
        )
        return config
