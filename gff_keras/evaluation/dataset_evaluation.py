import contextlib
import weakref
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from gff_keras.data.datasets import build_dataset
from gff_keras.data.registry import canonical_split
from gff_keras.data.registry import dataset_info
from gff_keras.evaluation.frozen_graph import freeze_function
from gff_keras.evaluation.inference import MODES
from gff_keras.evaluation.inference import PAPER_SCALES
from gff_keras.evaluation.inference import predict_logits
from gff_keras.evaluation.segmentation_metrics import SegmentationMetrics
from gff_keras.keras_internals import frozen_graph_call_options


def evaluate_dataset(
    model: keras.Model,
    dataset: str,
    *,
    split: str = "validation",
    data_dir: str | None = None,
    mode: str = "whole",
    crop_size=None,
    stride=None,
    scales=PAPER_SCALES,
    flip: bool = True,
    batch_size: int = 1,
    num_examples: int | None = None,
    synthetic_image_size=(192, 192),
    skip_bad_examples: bool = False,
    freeze: bool = False,
    verbose: int = 1,
    exclude: Iterable[str] | None = None,
) -> dict:
    """Scores a segmentation model on a dataset split at full resolution.

    Images are predicted by `predict_logits` in the chosen mode and scored
    at their own resolution against the full-resolution labels (train ids,
    255 ignored) with `SegmentationMetrics`, the definitions of the
    Cityscapes and ADE20K evaluation scripts.

    With `batch_size > 1`, images of different sizes are padded (0 in
    normalized space) to a common size, which changes what the model sees
    near the padding; `batch_size=1` (the default) scores each image
    exactly as the official protocols do.

    Args:
        model: a segmentation model taking normalized images and returning
            logits at the input's resolution (e.g. `GFFNet`).
        dataset: a dataset name known to `gff_keras.data.dataset_info`.
        split: `"train"`, `"validation"` (`"val"`) or `"test"`. Defaults to
            `"validation"`.
        data_dir: the dataset's root directory (not needed for
            `"synthetic"`).
        mode: `"whole"`, `"slide"` or `"ms_flip"`, see `predict_logits`.
            Defaults to `"whole"`.
        crop_size: window size for `"slide"` (optional for `"ms_flip"`).
        stride: window stride; defaults as in `predict_logits`.
        scales: scales for `"ms_flip"`. Defaults to the paper's.
        flip: horizontal flip for `"ms_flip"`. Defaults to `True`.
        batch_size: int. Defaults to `1`.
        num_examples: synthetic: number of scenes; other datasets: score
            only the first `num_examples` images (for quick checks).
        synthetic_image_size: synthetic only: `(height, width)` of scenes.
        skip_bad_examples: skip unreadable examples instead of stopping
            (see `build_dataset`).
        freeze: predict with a frozen copy of the model's graph
            (`gff_keras.export.freeze_function`): on CPU, TensorFlow's
            oneDNN convolutions then run 1.3-1.4x faster per image in
            `"whole"` and `"ms_flip"` modes (sliding windows run inside a
            loop that freezing does not speed up), after a one-off 10-30 s
            to freeze (`docs/benchmarks.md`). The copy holds the weights as
            they are when the call starts. Defaults to `False`.
        verbose: `1` shows a progress bar with the running mIoU, `0` is
            silent. Defaults to `1`.
        exclude: image paths to leave out, e.g. the `BadExample.image`s
            that `gff_keras.data.check_dataset` found (see `build_dataset`).
            Defaults to `None`.

    Returns:
        A dict: `dataset`, `split`, `mode` (plus `crop_size`, `stride`,
        `scales`, `flip` where the mode uses them), `num_images`,
        `mean_iou`, `pixel_accuracy`, `mean_accuracy` (floats),
        `per_class_iou` (class name -> IoU, NaN for a class in neither the
        labels nor the predictions), and for ADE20K `ade20k_score`, the
        benchmark's `(pixel_accuracy + mean_iou) / 2`.

    Raises:
        ValueError: for an unknown dataset, split or mode, or a model whose
            number of classes differs from the dataset's.

    Example:

    >>> model = gff_keras.GFFNet(8, backbone="resnet18")
    >>> result = evaluate_dataset(model, "synthetic", num_examples=2,
    ...                           synthetic_image_size=(64, 64), verbose=0)
    >>> sorted(result["per_class_iou"]) == sorted(
    ...     dataset_info("synthetic").class_names)
    True
    """
    info = dataset_info(dataset)
    split = canonical_split(split)
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}; received {mode!r}.")
    model_classes = getattr(model, "num_classes", None)
    if model_classes is not None and model_classes != info.num_classes:
        raise ValueError(
            f"The model predicts {model_classes} classes but {dataset!r} has "
            f"{info.num_classes}; evaluate it on the dataset it was trained "
            "on."
        )
    options = dict(mode=mode)
    if mode != "whole":
        options.update(crop_size=crop_size, stride=stride)
    if mode == "ms_flip":
        options.update(scales=tuple(scales), flip=flip)

    predict = _traced_predict(model, info.num_classes, options)
    # Tracing before reading data reports bad inference options at once.
    traced = predict.get_concrete_function()
    call_options = contextlib.nullcontext
    if freeze:
        predict = freeze_function(traced)
        call_options = frozen_graph_call_options
    data = build_dataset(
        dataset,
        split,
        data_dir=data_dir,
        training=False,
        batch_size=batch_size,
        num_examples=num_examples,
        synthetic_image_size=synthetic_image_size,
        skip_bad_examples=skip_bad_examples,
        exclude=exclude,
    )
    if num_examples and info.name != "synthetic":
        data = data.take(-(-num_examples // batch_size))
    batches = int(data.cardinality())
    progress = keras.utils.Progbar(
        batches if batches >= 0 else None,
        verbose=verbose,
        stateful_metrics=["mIoU"],
        unit_name="batch",
    )
    metrics = SegmentationMetrics(info.num_classes, info.ignore_label)
    num_images = 0
    for step, (images, labels) in enumerate(data, start=1):
        with call_options():
            predictions = predict(images)
        metrics.update_state(labels, predictions)
        num_images += int(tf.shape(images)[0])
        if verbose:
            miou = float(metrics.result()["mean_iou"])
            progress.update(step, values=[("mIoU", miou)])

    result = {k: np.asarray(v) for k, v in metrics.result().items()}
    summary = {
        "dataset": dataset,
        "split": split,
        **options,
        "num_images": num_images,
        "mean_iou": float(result["mean_iou"]),
        "pixel_accuracy": float(result["pixel_accuracy"]),
        "mean_accuracy": float(result["mean_accuracy"]),
        "per_class_iou": {
            name: float(iou)
            for name, iou in zip(info.class_names, result["per_class_iou"])
        },
    }
    if info.name == "ade20k":
        summary["ade20k_score"] = (
            summary["pixel_accuracy"] + summary["mean_iou"]
        ) / 2
    return summary


# model -> {inference options: traced prediction}. Training evaluates one
# model many times; tracing it is most of a small evaluation's time. Weak
# keys, and the traced functions hold the model only weakly, so a model
# that is no longer used is freed with its traces.
_TRACES = weakref.WeakKeyDictionary()


def _traced_predict(model, num_classes, options):
    """The class-id prediction of `model`, traced once per options."""
    key = (num_classes, tuple(sorted(options.items())))
    try:
        traces = _TRACES.setdefault(model, {})
        model_ref = weakref.ref(model)
    except TypeError:  # not weakly referable: traced for this call only
        traces = {}

        def model_ref():
            return model

    if key in traces:
        return traces[key]
    # Whole images need no softmax: the argmax of the logits is the same
    # class.
    output = "logits" if options["mode"] == "whole" else "probabilities"

    # One trace for every image size (sizes vary within a dataset).
    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)]
    )
    def predict(images):
        scores = predict_logits(
            model_ref(),
            images,
            num_classes=num_classes,
            output=output,
            **options,
        )
        return tf.argmax(scores, axis=-1, output_type=tf.int32)

    traces[key] = predict
    return predict
