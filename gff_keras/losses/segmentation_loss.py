import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gff_keras")
class SegmentationLoss(keras.losses.Loss):
    """Per-pixel softmax cross-entropy that skips the ignore label.

    The loss is averaged over the labelled pixels of the batch (PyTorch's
    `cross_entropy(ignore_index=255)`), so images with many ignored pixels
    do not dilute it; a batch with no labelled pixel gives 0. Logits are cast
    to float32 first, which keeps the loss stable under mixed precision.

    With `ohem_threshold`, online hard example mining (OHEM) keeps only
    the labelled pixels whose predicted probability of the true class is
    below `max(ohem_threshold, p_k)`, where `p_k` is the `ohem_min_kept`-th
    smallest such probability in the batch, so at least `ohem_min_kept`
    pixels (or all labelled ones) stay (mmsegmentation's `OHEMPixelSampler`).

    Args:
        ignore_label: int, label value excluded from the loss. Defaults to
            `255`.
        ohem_threshold: float or `None` (no OHEM). Defaults to `None`.
        ohem_min_kept: int, the least number of pixels OHEM keeps per
            replica batch. Defaults to `100000`.
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

    def __init__(
        self,
        ignore_label=255,
        ohem_threshold=None,
        ohem_min_kept=100_000,
        name="segmentation_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.ignore_label = ignore_label
        self.ohem_threshold = ohem_threshold
        self.ohem_min_kept = ohem_min_kept

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
        if self.ohem_threshold is not None:
            valid = ops.logical_and(valid, self._hard_pixels(per_pixel, valid))
        valid = ops.cast(valid, "float32")
        # Keras reduces per-pixel values by their mean (and divides by the
        # replica count under tf.distribute); rescaling the labelled pixels
        # turns that mean into the mean over labelled pixels only.
        pixels = ops.cast(ops.size(valid), "float32")
        scale = pixels / ops.maximum(ops.sum(valid), 1.0)
        return per_pixel * valid * scale

    def _hard_pixels(self, per_pixel, valid):
        true_class_prob = ops.exp(-per_pixel)
        # Unlabelled pixels sort after every probability (which is <= 1).
        probs = ops.reshape(ops.where(valid, true_class_prob, 2.0), (-1,))
        labelled = ops.sum(ops.cast(valid, "int32"))
        kept = ops.minimum(labelled, self.ohem_min_kept)
        kth = ops.take(ops.sort(probs), ops.maximum(kept - 1, 0))
        threshold = ops.maximum(kth, self.ohem_threshold)
        return ops.less(true_class_prob, threshold)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "ignore_label": self.ignore_label,
                "ohem_threshold": self.ohem_threshold,
                "ohem_min_kept": self.ohem_min_kept,
            }
        )
        return config
