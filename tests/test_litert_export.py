"""LiteRT export: the .tflite file run in LiteRT's own interpreter against
the Keras model it came from."""

import os

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from gff_keras import GFFNet
from gff_keras.data import build_dataset
from gff_keras.data import denormalize_images
from gff_keras.data import normalize_images
from gff_keras.evaluation import SegmentationMetrics
from gff_keras.export import export_litert
from tests.script_runs import run_commands

SIZE = 64
NUM_CLASSES = 8


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small GFFNet trained for a few steps, 8 validation scenes."""
    keras.utils.set_random_seed(0)
    model = GFFNet(
        NUM_CLASSES,
        backbone="resnet18",
        output_stride=32,
        backbone_weights=None,
        context_channels=32,
        head_channels=16,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    train = build_dataset(
        "synthetic",
        "train",
        training=True,
        crop_size=48,
        batch_size=4,
        seed=0,
        repeat=True,
        synthetic_image_size=(SIZE, SIZE),
    )
    model.fit(train, steps_per_epoch=40, epochs=1, verbose=0)
    images, labels = next(
        iter(
            build_dataset(
                "synthetic",
                "validation",
                training=False,
                batch_size=8,
                num_examples=8,
                synthetic_image_size=(SIZE, SIZE),
            )
        )
    )
    images = denormalize_images(images).numpy()
    return model, images, labels.numpy(), tmp_path_factory.mktemp("litert")


def run_litert(path, images):
    runner = Interpreter(model_path=str(path), num_threads=2)
    signature = runner.get_signature_runner()
    outputs = [signature(images=image[None]) for image in images]
    return (
        np.concatenate([o["predictions"] for o in outputs]),
        np.concatenate([o["confidence"] for o in outputs]),
    )


def mean_iou(labels, predictions):
    metric = SegmentationMetrics(NUM_CLASSES)
    metric.update_state(labels, predictions)
    return float(metric.result()["mean_iou"])


@pytest.mark.slow
def test_litert_files_predict_like_the_keras_model(trained):
    model, images, labels, folder = trained
    logits = np.asarray(model(normalize_images(images), training=False))
    expected = np.argmax(logits, axis=-1)
    keras_miou = mean_iou(labels, expected)
    assert keras_miou > 0.1  # trained: a quantization error would show

    float32 = export_litert(model, str(folder / "f32.tflite"), SIZE)
    predictions, confidence = run_litert(float32, images)
    assert predictions.dtype == np.int32 and confidence.dtype == np.float32
    assert predictions.shape == confidence.shape == (8, SIZE, SIZE)
    assert np.mean(predictions == expected) >= 0.999
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        confidence, probabilities.max(-1), rtol=0, atol=1e-4
    )

    size = os.path.getsize(float32)
    for quantize, size_ratio in (("float16", 0.55), ("dynamic_int8", 0.3)):
        path = export_litert(
            model, str(folder / f"{quantize}.tflite"), (SIZE, SIZE), quantize
        )
        assert os.path.getsize(path) < size_ratio * size, quantize
        predictions, _ = run_litert(path, images)
        assert mean_iou(labels, predictions) >= keras_miou - 0.01, quantize


def test_litert_arguments_are_checked(trained, tmp_path):
    model = trained[0]
    with pytest.raises(ValueError, match="`quantize` must be one of"):
        export_litert(model, str(tmp_path / "m.tflite"), 32, "int4")
    with pytest.raises(ValueError, match="ends in .tflite"):
        export_litert(model, str(tmp_path / "m.bin"), 32)
    with pytest.raises(ValueError, match="must be positive"):
        export_litert(model, str(tmp_path / "m.tflite"), (0, 32))
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_export_script_writes_a_litert_file(trained, tmp_path):
    model = trained[0]
    model.save(tmp_path / "model.keras")
    flags = [f"--model_dir={tmp_path / 'model.keras'}", "--format=litert"]
    missing, written = run_commands(
        "export.py",
        flags,
        [*flags, "--image_size=32x48", "--quantize=float16"],
    )
    assert missing[0] == 2
    assert missing[2].strip().splitlines()[-1] == (
        "export.py: error: --format=litert needs "
        "--image_size=HEIGHTxWIDTH (one size)."
    )
    assert written[0] == 0, (written[1] + written[2])[-2000:]
    path = tmp_path / "export" / "gffnet_32x48_float16.tflite"
    predictions, _ = run_litert(path, np.zeros((1, 32, 48, 3), np.uint8))
    assert predictions.shape == (1, 32, 48)
