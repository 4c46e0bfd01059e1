"""Builds a small GFFNet, trains it a few steps on one random batch, and
prints its size, the falling loss and the shape of its predictions.

Usage:
    python scripts/quickstart.py [--backbone=resnet18] [--steps=5]

The training demo on the built-in synthetic dataset (train, evaluate, export,
overlays) replaces this script once the data and training modules land.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import gff_keras  # noqa: E402

_BACKBONE = flags.DEFINE_string("backbone", "resnet18", "ResNet name.")
_STEPS = flags.DEFINE_integer("steps", 5, "Training steps.")
_SIZE = flags.DEFINE_integer("size", 97, "Image height and width.")


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    model = gff_keras.GFFNet(num_classes=4, backbone=_BACKBONE.value)
    print(f"GFFNet({_BACKBONE.value}): {model.parameter_count():,} parameters")
    rng = np.random.default_rng(0)
    size = _SIZE.value
    images = rng.normal(size=(2, size, size, 3)).astype("float32")
    # A learnable target: the class is the image quadrant.
    rows, cols = np.mgrid[:size, :size]
    labels = (2 * (rows >= size // 2) + (cols >= size // 2)).astype("int32")
    labels = np.stack([labels, labels])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    history = model.fit(
        images, labels, epochs=_STEPS.value, batch_size=2, verbose=0
    )
    for step, loss in enumerate(history.history["loss"], start=1):
        print(f"step {step}: loss {loss:.4f}")
    logits = model.predict(images, verbose=0)
    print(f"predict: {images.shape} -> logits {logits.shape}")


if __name__ == "__main__":
    app.run(main)
