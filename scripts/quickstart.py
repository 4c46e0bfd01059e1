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
from gff_keras.evaluation import SegmentationMetrics  # noqa: E402

_BACKBONE = flags.DEFINE_string("backbone", "resnet18", "ResNet name.")
_STEPS = flags.DEFINE_integer("steps", 200, "Training steps.")
_CROP = flags.DEFINE_integer("crop_size", 64, "Training crop size.")
_BATCH = flags.DEFINE_integer("batch_size", 4, "Batch size.")


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

    metrics = SegmentationMetrics(info.num_classes, info.ignore_label)
    for images, labels in validation:
        metrics.update_state(labels, model.predict(images, verbose=0))
    result = {k: np.asarray(v) for k, v in metrics.result().items()}
    print("validation IoU per class:")
    for name, iou in zip(info.class_names, result["per_class_iou"]):
        print(f"  {name:14s} {iou:6.3f}")
    print(
        f"mIoU {result['mean_iou']:.3f}, "
        f"pixel accuracy {result['pixel_accuracy']:.3f}"
    )


if __name__ == "__main__":
    app.run(main)
