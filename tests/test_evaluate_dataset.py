"""evaluate_dataset and scripts/evaluate.py on synthetic and ADE20K files."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from gff_keras import GFFNet
from gff_keras.data import build_dataset
from gff_keras.data import dataset_info
from gff_keras.evaluation import SegmentationMetrics
from gff_keras.evaluation import evaluate_dataset
from gff_keras.evaluation import predict_logits
from tests.test_data import ade20k_fixture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(
    backbone="resnet18",
    output_stride=32,
    fused_channels=16,
    context_channels=32,
)
SYNTHETIC = dict(num_examples=2, synthetic_image_size=(48, 48))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)  # module fixtures run before the seed one
    return GFFNet(8, **SMALL)


def reference_scores(model, dataset, **predict_options):
    """SegmentationMetrics fed predictions made outside evaluate_dataset."""
    info = dataset_info(dataset)
    metric = SegmentationMetrics(info.num_classes)
    data = build_dataset(
        dataset, "validation", training=False, batch_size=1, **SYNTHETIC
    )
    for images, labels in data:
        scores = predict_logits(model, images, **predict_options)
        metric.update_state(labels, np.argmax(scores, -1))
    return {k: np.asarray(v) for k, v in metric.result().items()}


@pytest.mark.parametrize(
    "options",
    [dict(mode="whole"), dict(mode="slide", crop_size=32, stride=16)],
    ids=["whole", "slide"],
)
def test_scores_equal_metrics_on_the_same_predictions(model, options):
    result = evaluate_dataset(
        model, "synthetic", verbose=0, **SYNTHETIC, **options
    )
    expected = reference_scores(model, "synthetic", **options)
    assert result["num_images"] == 2
    assert result["mode"] == options["mode"]
    assert list(result["per_class_iou"]) == list(
        dataset_info("synthetic").class_names
    )
    np.testing.assert_allclose(
        list(result["per_class_iou"].values()),
        expected["per_class_iou"],
        rtol=1e-12,
    )
    for key in ("mean_iou", "pixel_accuracy", "mean_accuracy"):
        assert result[key] == pytest.approx(float(expected[key]), rel=1e-12)
    assert "ade20k_score" not in result


@pytest.mark.parametrize(
    "options",
    [dict(mode="whole"), dict(mode="ms_flip", scales=(0.75, 1.0))],
    ids=["whole", "ms_flip"],
)
def test_frozen_evaluation_scores_like_the_model(model, options):
    frozen = evaluate_dataset(
        model, "synthetic", freeze=True, verbose=0, **SYNTHETIC, **options
    )
    expected = reference_scores(model, "synthetic", **options)
    # The frozen graph sums in another order: a pixel whose two best
    # classes tie to rounding may flip, nothing more.
    assert frozen["pixel_accuracy"] == pytest.approx(
        float(expected["pixel_accuracy"]), abs=1e-3
    )
    assert frozen["mean_iou"] == pytest.approx(
        float(expected["mean_iou"]), abs=2e-3
    )


@pytest.mark.parametrize("freeze", [False, True], ids=["keras", "frozen"])
def test_evaluating_again_after_training_scores_the_new_weights(freeze):
    # Training evaluates one model many times and reuses its trace; the
    # reused trace must read the weights as they are now.
    keras.utils.set_random_seed(1)
    model = GFFNet(8, **SMALL)
    before = evaluate_dataset(
        model, "synthetic", verbose=0, freeze=freeze, **SYNTHETIC
    )
    rng = np.random.default_rng(0)
    # By name: the head's last weight is a BatchNorm's moving variance,
    # which random values make negative, so every score NaN.
    bias = model.head.classifier.bias
    bias.assign(rng.normal(size=bias.shape) * 5)
    after = evaluate_dataset(
        model, "synthetic", verbose=0, freeze=freeze, **SYNTHETIC
    )
    expected = reference_scores(model, "synthetic", mode="whole")
    assert after["mean_iou"] != before["mean_iou"]
    assert after["pixel_accuracy"] == pytest.approx(
        float(expected["pixel_accuracy"]), abs=1e-3
    )


def test_ade20k_reports_the_official_score(tmp_path, model):
    base, _ = ade20k_fixture(str(tmp_path), np.random.default_rng(0))
    ade_model = GFFNet(150, **SMALL)
    result = evaluate_dataset(ade_model, "ade20k", data_dir=base, verbose=0)
    assert result["num_images"] == 2
    assert result["ade20k_score"] == pytest.approx(
        (result["pixel_accuracy"] + result["mean_iou"]) / 2
    )
    assert 0 < result["pixel_accuracy"] < 1
    with pytest.raises(ValueError, match="8 classes.*150"):
        evaluate_dataset(model, "ade20k", data_dir=base, verbose=0)
    with pytest.raises(ValueError, match="crop_size"):
        evaluate_dataset(ade_model, "ade20k", mode="slide", verbose=0)


def save_run_directory(model, path):
    path.mkdir()
    model.save(path / "model.keras")
    (path / "config.json").write_text(
        json.dumps({"data": {"dataset": "synthetic"}})
    )
    return path


def run_script(name, *flags):
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", name), *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_evaluate_script_end_to_end(tmp_path, model):
    run = save_run_directory(model, tmp_path / "run")
    stdout = run_script(
        "evaluate.py",
        f"--model_dir={run}",
        "--mode=slide",
        "--crop_size=32",
        "--stride=16",
        "--num_examples=2",
        "--synthetic_image_size=48",
    )
    # The dataset came from config.json; the JSON went to the default file.
    with open(run / "evaluation_validation_slide.json") as f:
        written = json.load(f)
    # Sliding windows are not frozen by default (no gain).
    expected = evaluate_dataset(
        model, "synthetic", mode="slide", crop_size=32, stride=16,
        verbose=0, **SYNTHETIC,
    )  # fmt: skip
    assert written["dataset"] == "synthetic"
    assert written["num_images"] == 2
    assert written["mean_iou"] == pytest.approx(expected["mean_iou"])
    for name, iou in expected["per_class_iou"].items():
        if math.isnan(iou):
            assert written["per_class_iou"][name] is None  # valid JSON
        else:
            assert written["per_class_iou"][name] == pytest.approx(iou)
        assert name in stdout
    assert f"{'mIoU':24s} {expected['mean_iou']:6.4f}" in stdout
    assert "pixel accuracy" in stdout
