import os
import tempfile

import keras
import tensorflow as tf

from gff_keras import atomic_files
from gff_keras.data.pipeline import normalize_images
from gff_keras.evaluation.frozen_graph import freeze_function

QUANTIZATIONS = ("none", "float16", "dynamic_int8")
INPUT_NAME = "images"


def export_litert(
    model: keras.Model,
    path: str,
    image_size,
    quantize: str = "none",
) -> str:
    """Converts a segmentation model to a LiteRT (TFLite) flatbuffer.

    The `.tflite` file runs on phones and edge devices through the LiteRT
    interpreter (`ai_edge_litert.interpreter.Interpreter`) and holds the
    whole serving path at one fixed image size, like the SavedModel's
    `serving_default`: input `images`, uint8 RGB `[1, height, width, 3]`;
    outputs `predictions`, int32 `[1, height, width]` class ids, and
    `confidence`, float32 `[1, height, width]`, the softmax probability of
    the predicted class. Normalization is inside; inference is whole-image.

    The weights are folded into the graph first (`freeze_function`): the
    converter otherwise keeps them as LiteRT variables that its
    interpreter leaves uninitialized.

    Args:
        model: the Keras model; `model(images, training=False)` returns
            logits `[batch, H, W, classes]` at the input's size for images
            normalized by `normalize_images` (`GFFNet` does).
        path: the `.tflite` file to write (atomically).
        image_size: int or `(height, width)` of the input.
        quantize: `"none"` (float32), `"float16"` (weights stored as
            float16, about half the size) or `"dynamic_int8"` (weights as
            int8, activations quantized on the fly, about a quarter of the
            size). Defaults to `"none"`.

    Returns:
        `path`.

    Raises:
        ValueError: for an unknown `quantize`, a non-positive size or a
            path without the `.tflite` extension.

    Example:

    >>> model = GFFNet(8, backbone="resnet18", backbone_weights=None)
    >>> export_litert(model, "/tmp/gffnet.tflite", (512, 512))
    ... # doctest: +SKIP
    '/tmp/gffnet.tflite'
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"`quantize` must be one of {QUANTIZATIONS}; received {quantize!r}."
        )
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    height, width = (int(size) for size in image_size)
    if height <= 0 or width <= 0:
        raise ValueError(
            f"`image_size` must be positive; received {image_size!r}."
        )
    if not path.endswith(".tflite"):
        raise ValueError(f"{path}: a LiteRT model file ends in .tflite.")

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, height, width, 3], tf.uint8, name=INPUT_NAME)
        ]
    )
    def segment(images):
        logits = model(normalize_images(images), training=False)
        # float32 under mixed precision, as in the SavedModel.
        logits = tf.cast(logits, tf.float32)
        return {
            "predictions": tf.argmax(logits, axis=-1, output_type=tf.int32),
            "confidence": tf.reduce_max(tf.nn.softmax(logits), axis=-1),
        }

    # Left as traced: the converter runs its own graph optimizer.
    frozen = freeze_function(segment.get_concrete_function(), optimize=False)
    with tempfile.TemporaryDirectory() as saved_model:
        # Through a SavedModel: the flatbuffer then keeps the signature's
        # input and output names.
        tf.saved_model.save(
            tf.Module(), saved_model, signatures={"serving_default": frozen}
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        flatbuffer = converter.convert()
    with atomic_files.replaced_when_written(path) as partial:
        with open(partial, "wb") as f:
            f.write(flatbuffer)
    return os.fspath(path)
