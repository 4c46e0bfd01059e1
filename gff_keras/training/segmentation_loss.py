import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gff_keras")
class SegmentationLoss(keras.losses.Loss):
    """Per-pixel softmax cross-entropy that skips the ignore label.

    The loss is averaged over the labelled pixels of the batch (PyTorch's
    `cross_entropy(ignore_index=255)`), so images with many ignored pixels
    do not dilute it; a batch with no labelled pixel gives 0. Logits are cast
    to float32 first, which keeps the loss stable under mixed precision.

    Args:
        ignore_label: int, label value excluded from the loss. Defaults to
            `255`.
        name: str. Defaults to `"segmentation_loss"`.
        **kwargs: base `keras.losses.Loss` arguments.

    Call arguments:
        y_true: int labels `[batch, H, W]` (or `[batch, H, W, 1]`).
        y_pred: logits `[batch, H, W, num_classes]`.

    Example:

    >>> loss = SegmentationLoss()
    >>> labels = keras.ops.array([[[0, 255]]])
    >>> logits = keras.ops.zeros((1, 1, 2, 3))
    >>> round(float(loss(labels, logits)), 4)  # log(3)
    1.0986
    """

    def __init__(self, ignore_label=255, name="segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_label = ignore_label

    def call(self, y_true, y_pred):
        labels = ops.cast(y_true, "int32")
        if len(labels.shape) == 4:
            labels = ops.squeeze(labels, axis=-1)
        logits = ops.cast(y_pred, "float32")
        valid = ops.not_equal(labels, self.ignore_label)
        safe_labels = ops.where(valid, labels, 0)
        per_pixel = ops.sparse_categorical_crossentropy(
            safe_labels, logits, from_logits=True
        )
        valid = ops.cast(valid, "float32")
        # Keras reduces per-pixel values by their mean (and divides by the
        # replica count under tf.distribute); rescaling the labelled pixels
        # turns that mean into the mean over labelled pixels only.
        pixels = ops.cast(ops.size(valid), "float32")
        scale = pixels / ops.maximum(ops.sum(valid), 1.0)
        return per_pixel * valid * scale

    def get_config(self):
        config = super().get_config()
        config.update({"ignore_label": self.ignore_label})
        return config
