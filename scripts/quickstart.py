"""Trains a small GFFNet on the built-in synthetic scenes and reports mIoU.

Usage:
    python scripts/quickstart.py [--backbone=resnet18] [--steps=200]

No download and no GPU needed. The full demo (checkpoints, SavedModel
export, prediction overlays) arrives with the training and export modules;
this script shows the library pieces they are built from.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import gff_keras  # noqa: E402
from gff_keras.data import build_dataset  # noqa: E402
from gff_keras.data import dataset_info  # noqa: E402

_BACKBONE = flags.DEFINE_string("backbone", "resnet18", "ResNet name.")
_STEPS = flags.DEFINE_integer("steps", 200, "Training steps.")
_CROP = flags.DEFINE_integer("crop_size", 64, "Training crop size.")
_BATCH = flags.DEFINE_integer("batch_size", 4, "Batch size.")


def mean_iou(confusion: np.ndarray) -> np.ndarray:
    true_positive = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return true_positive / union


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    info = dataset_info("synthetic")
    train = build_dataset(
        "synthetic",
        "train",
        training=True,
        crop_size=_CROP.value,
        batch_size=_BATCH.value,
        seed=0,
    ).repeat()
    validation = build_dataset(
        "synthetic",
        "validation",
        training=False,
        batch_size=4,
        num_examples=32,
    )
    model = gff_keras.GFFNet(
        num_classes=info.num_classes, backbone=_BACKBONE.value
    )
    print(
        f"GFFNet({_BACKBONE.value}, fusion=gff, dfp=True): "
        f"{model.parameter_count():,} parameters"
    )
    schedule = keras.optimizers.schedules.PolynomialDecay(
        0.01, _STEPS.value, end_learning_rate=0.0, power=0.9
    )
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9))
    start = time.perf_counter()
    model.fit(train, steps_per_epoch=_STEPS.value, epochs=1, verbose=2)
    print(
        f"trained {_STEPS.value} steps in {time.perf_counter() - start:.0f} s"
    )

    confusion = np.zeros((info.num_classes,) * 2, np.int64)
    for images, labels in validation:
        predictions = np.argmax(model.predict(images, verbose=0), axis=-1)
        labels = labels.numpy()
        valid = labels != info.ignore_label
        confusion += np.bincount(
            labels[valid] * info.num_classes + predictions[valid],
            minlength=info.num_classes**2,
        ).reshape(confusion.shape)
    ious = mean_iou(confusion)
    print("validation IoU per class:")
    for name, iou in zip(info.class_names, ious):
        print(f"  {name:14s} {iou:6.3f}")
    print(
        f"mIoU {np.nanmean(ious):.3f}, pixel accuracy "
        f"{np.trace(confusion) / confusion.sum():.3f}"
    )


if __name__ == "__main__":
    app.run(main)
