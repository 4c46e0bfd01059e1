import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gff_keras")
class SegmentationMetrics(keras.metrics.Metric):
    """Confusion-matrix segmentation metrics: mIoU, pixel and mean accuracy.

    Accumulates an int64 `[num_classes, num_classes]` confusion matrix (rows
    are labels, columns predictions) over every labelled pixel; pixels whose
    label is `ignore_label` or outside `[0, num_classes)` are skipped, as in
    the Cityscapes and ADE20K evaluation scripts. A class that appears in
    neither labels nor predictions has an undefined IoU: it is reported as
    NaN and left out of the mean.

    Under a distribution strategy the matrix variable is summed over
    replicas, so the result covers the global batch.

    Args:
        num_classes: int.
        ignore_label: int, label value to skip. Defaults to `255`.
        name: str. Defaults to `"segmentation_metrics"`.
        dtype: metric dtype.

    Call arguments (`update_state`):
        y_true: int labels `[batch, H, W]`.
        y_pred: class ids `[batch, H, W]` or logits `[batch, H, W, C]`
            (then the argmax is taken), so it works in `model.fit`.

    Returns (`result`):
        dict with `mean_iou`, `pixel_accuracy`, `mean_accuracy` (scalars) and
        `per_class_iou` (`[num_classes]`).

    Example:

    >>> metric = SegmentationMetrics(num_classes=2)
    >>> metric.update_state([[0, 1, 255]], [[0, 0, 1]])
    >>> round(float(metric.result()["pixel_accuracy"]), 2)
    0.5
    """

    def __init__(
        self,
        num_classes,
        ignore_label=255,
        name="segmentation_metrics",
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.confusion = self.add_variable(
            shape=(num_classes, num_classes),
            initializer="zeros",
            dtype="int64",
            aggregation="sum",
            name="confusion",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        del sample_weight
        labels = ops.cast(ops.convert_to_tensor(y_true), "int64")
        predictions = ops.convert_to_tensor(y_pred)
        if len(predictions.shape) == len(labels.shape) + 1:
            predictions = ops.argmax(predictions, axis=-1)
        predictions = ops.cast(predictions, "int64")
        labels = ops.reshape(labels, [-1])
        predictions = ops.reshape(predictions, [-1])
        valid = ops.logical_and(
            ops.not_equal(labels, self.ignore_label),
            ops.logical_and(
                ops.greater_equal(labels, 0),
                ops.less(labels, self.num_classes),
            ),
        )
        predictions = ops.clip(predictions, 0, self.num_classes - 1)
        index = ops.where(valid, labels * self.num_classes + predictions, 0)
        counts = ops.bincount(
            ops.cast(index, "int32"),
            weights=ops.cast(valid, "int64"),
            minlength=self.num_classes * self.num_classes,
        )
        self.confusion.assign_add(
            ops.reshape(
                ops.cast(counts, "int64"), (self.num_classes, self.num_classes)
            )
        )

    def result(self):
        confusion = ops.cast(self.confusion, "float64")
        true_positive = ops.diagonal(confusion)
        per_label = ops.sum(confusion, axis=1)
        per_prediction = ops.sum(confusion, axis=0)
        union = per_label + per_prediction - true_positive
        nan = ops.full_like(union, float("nan"))
        per_class_iou = ops.where(
            union > 0, true_positive / ops.maximum(union, 1.0), nan
        )
        class_accuracy = ops.where(
            per_label > 0, true_positive / ops.maximum(per_label, 1.0), nan
        )
        total = ops.sum(confusion)
        return {
            "mean_iou": _nanmean(per_class_iou),
            "pixel_accuracy": ops.sum(true_positive) / ops.maximum(total, 1.0),
            "mean_accuracy": _nanmean(class_accuracy),
            "per_class_iou": per_class_iou,
        }

    def reset_state(self):
        self.confusion.assign(
            ops.zeros((self.num_classes, self.num_classes), "int64")
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_classes": self.num_classes, "ignore_label": self.ignore_label}
        )
        return config


def _nanmean(values):
    defined = ops.logical_not(ops.isnan(values))
    total = ops.sum(ops.where(defined, values, 0.0))
    count = ops.sum(ops.cast(defined, values.dtype))
    return total / ops.maximum(count, 1.0)
