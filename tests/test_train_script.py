"""scripts/train.py and scripts/export.py: the run directory a run leaves,
checks before the first step, and one-line errors.
"""

import json
import os
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from gff_keras.data import dataset_info
from gff_keras.training import ExperimentConfig
from tests.script_runs import SCRIPTS
from tests.script_runs import run_commands
from tests.script_runs import run_python

TRAIN = os.path.join(SCRIPTS, "train.py")


# --- the training script and its run directory -----------------------------


@pytest.mark.slow
def test_train_script_leaves_a_complete_run_directory(tmp_path):
    model_dir = str(tmp_path / "run")
    command = [
        TRAIN,
        "--experiment=synthetic_tiny",
        f"--model_dir={model_dir}",
        "--override=runtime.num_visualizations=1",
        "--override=runtime.tensorboard_images=2",
    ]
    result = run_python(command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mIoU" in result.stdout
    names = (
        "config.json",
        "metrics.json",
        "checkpoints/best.keras",
        "checkpoints/latest.keras",
        # The finished run's backup names latest.keras instead of holding
        # a second copy of the weights.
        "backup/step-000000004-finished/state.json",
        "export/1/saved_model.pb",
        "visualizations/validation_000_prediction.png",
        "visualizations/validation_000_gates.png",
    )
    for name in names:
        assert os.path.isfile(os.path.join(model_dir, name)), name
    assert os.listdir(os.path.join(model_dir, "backup")) == [
        "step-000000004-finished"
    ]
    assert not os.path.exists(os.path.join(model_dir, "model.keras"))
    # Checkpoints hold no optimizer state: they are the weights alone.
    for name in ("best", "latest"):
        with zipfile.ZipFile(
            os.path.join(model_dir, "checkpoints", f"{name}.keras")
        ) as archive:
            with archive.open("model.weights.h5") as weights_file:
                with h5py.File(weights_file) as weights:
                    assert "optimizer" not in weights
    with open(os.path.join(model_dir, "config.json")) as f:
        config = ExperimentConfig.from_dict(json.load(f))
    assert config.name == "synthetic_tiny"
    assert config.runtime.num_visualizations == 1
    with open(os.path.join(model_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert [e["step"] for e in metrics["evaluations"]] == [2, 4]
    assert 0 <= metrics["best"]["mean_iou"] <= 1
    assert list(metrics["evaluations"][-1]["per_class_iou"]) == list(
        dataset_info("synthetic").class_names
    )
    assert metrics["summary"]["steps"] == 4
    tags, image_steps = set(), {}
    for event_file in tf.io.gfile.glob(os.path.join(model_dir, "logs", "*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for value in event.summary.value:
                tags.add(value.tag)
                if value.metadata.plugin_data.plugin_name == "images":
                    image_steps.setdefault(value.tag, []).append(event.step)
    # Pictures of the model at each evaluation: two eval images, each as
    # a prediction panel and a gate figure.
    assert image_steps == {
        f"validation/validation_{index:03d}_{kind}": [2, 4]
        for index in range(2)
        for kind in ("prediction", "gates")
    }
    assert {
        "train/loss",
        "train/learning_rate",
        "train/images_per_second",
        "validation/mean_iou",
    } <= tags
    # The exported model serves uint8 images of any size.
    served = tf.saved_model.load(os.path.join(model_dir, "export", "1"))
    outputs = served.signatures["serving_default"](
        inputs=tf.zeros((1, 37, 29, 3), tf.uint8)
    )
    assert outputs["predictions"].shape == (1, 37, 29)

    # The run reports the model it exported: its best evaluation's.
    best = metrics["best"]
    assert (
        f"mIoU {best['mean_iou']:.3f}, pixel accuracy "
        f"{best['pixel_accuracy']:.3f} at step {best['step']}"
    ) in result.stdout

    # Re-running the finished command trains, evaluates and exports nothing
    # more, and says so.
    again = run_python(command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "has finished all 4 steps" in again.stdout
    with open(os.path.join(model_dir, "metrics.json")) as f:
        rerun = json.load(f)
    assert rerun["summary"]["initial_step"] == 4
    assert rerun["evaluations"] == metrics["evaluations"]
    assert os.listdir(os.path.join(model_dir, "export")) == ["1"]


def test_train_script_errors_are_clear(tmp_path):
    cases = [
        (["--dataset=ade20k"], ["data_dir", "ADEChallengeData2016/images"]),
        (
            ["--dataset=ade20k", f"--data_dir={tmp_path}/missing"],
            [f"{tmp_path}/missing"],
        ),
        (["--dataset=synthetic", "--override=model.foo=1"], ["'model.foo'"]),
        (["--experiment=nope"], ["Unknown experiment 'nope'"]),
        (["--dataset=synthetic", "--no_such_flag"], ["no_such_flag"]),
        ([], ["--dataset=NAME or --experiment=NAME"]),
    ]
    results = run_commands(
        "train.py",
        *[[f"--model_dir={tmp_path}/run", *args] for args, _ in cases],
    )
    for (args, expected), (code, _, stderr) in zip(cases, results):
        assert code != 0, args
        for text in expected:
            assert text in stderr, (args, stderr[-2000:])
        assert "Traceback" not in stderr, args
    # A failed start leaves no config behind to block the next attempt.
    assert not os.path.exists(tmp_path / "run" / "config.json")


@pytest.mark.slow
def test_train_script_checks_every_file_before_the_first_step(tmp_path):
    from tests.test_data_check import build_bad_tree
    from tests.test_data_check import expected_bad

    data_dir, _ = build_bad_tree(str(tmp_path))
    model_dir = tmp_path / "run"
    command = [
        TRAIN,
        "--dataset=ade20k",
        f"--data_dir={data_dir}",
        f"--model_dir={model_dir}",
        "--backbone=resnet18",
        "--steps=2",
        "--batch_size=2",
        "--crop_size=32",
        "--override=model.backbone.weights=none",
        "--override=model.backbone.output_stride=32",
        "--override=runtime.export=false",
    ]
    result = run_python(command)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    bad = expected_bad(data_dir)
    assert f"{len(bad)} bad examples in ade20k" in result.stderr
    for example in bad:
        assert f"{example.image}: {example.reason}" in result.stderr
    assert "data.skip_bad_examples=true" in result.stderr
    # Stopped before step 1, with the list in the run directory.
    assert not (model_dir / "backup").exists()
    with open(model_dir / "bad_examples.json") as f:
        assert len(json.load(f)["bad_examples"]) == len(bad)

    # Told to, it trains and evaluates on the good files only: the
    # pipeline never opens a listed file (it would warn that it skips it).
    result = run_python([*command, "--override=data.skip_bad_examples=true"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipping bad example" not in result.stdout + result.stderr
    assert f"leaving out the {len(bad)} bad examples" in result.stdout
    with open(model_dir / "metrics.json") as f:
        assert [e["step"] for e in json.load(f)["evaluations"]] == [2]


@pytest.mark.slow
def test_offline_imagenet_weights_are_one_line_naming_the_file(tmp_path):
    # An empty Keras cache and a proxy that refuses every connection: what
    # a GPU cluster without internet does to the download.
    from test_data import ade20k_fixture

    data_dir, _ = ade20k_fixture(str(tmp_path), np.random.default_rng(0))
    refused = "http://127.0.0.1:9"
    result = run_python(
        [
            TRAIN,
            "--dataset=ade20k",
            f"--data_dir={data_dir}",
            "--backbone=resnet50",
            f"--model_dir={tmp_path}/run",
        ],
        env={
            "KERAS_HOME": str(tmp_path / "keras"),
            "https_proxy": refused,
            "HTTPS_PROXY": refused,
            "no_proxy": "",
        },
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    # The banner describes the model trained, not the preset's default.
    assert "with backbone resnet50 on ade20k" in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: Cannot download"), last
    for text in (
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "--override model.backbone.weights=",
        str(tmp_path / "keras" / "models"),
    ):
        assert text in last, (text, last)


def test_export_script_errors_are_one_line(tmp_path):
    run_dir = tmp_path / "run"
    model = keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.Dense(2)]
    )
    (run_dir / "checkpoints").mkdir(parents=True)
    model.save(run_dir / "checkpoints" / "best.keras")
    (run_dir / "export" / "1").mkdir(parents=True)
    (tmp_path / "notes.keras").write_text("not a model")
    cases = [
        ([f"--model_dir={tmp_path}/missing"], f"{tmp_path}/missing"),
        ([f"--model_dir={tmp_path}/notes.keras"], f"{tmp_path}/notes.keras"),
        (
            [f"--model_dir={run_dir}", "--version=1"],
            f"{run_dir}/export/1 exists",
        ),
    ]
    results = run_commands("export.py", *[flags for flags, _ in cases])
    for (flags, culprit), (code, _, stderr) in zip(cases, results):
        assert code == 2, (flags, stderr[-2000:])
        assert "Traceback" not in stderr, flags
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("export.py: error:") and culprit in last, last


def test_ctrl_c_prints_one_line_with_the_resume_command(tmp_path):
    # Ctrl-C raises KeyboardInterrupt wherever training is; raising it from
    # run_experiment is deterministic, where timing a real SIGINT is not.
    model_dir = tmp_path / "run"
    script = f"""
import runpy, sys
import gff_keras.training

def interrupted(*args, **kwargs):
    raise KeyboardInterrupt

gff_keras.training.run_experiment = interrupted
sys.path.insert(0, "{os.path.dirname(TRAIN)}")
sys.argv = ["scripts/train.py", "--experiment=synthetic_tiny",
            "--model_dir={model_dir}"]
runpy.run_path("{TRAIN}", run_name="__main__")
"""
    result = run_python(["-c", script])
    assert result.returncode == 130, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"train.py: interrupted; {model_dir} resumes from step 0 with: python"
    ), last
    assert f"--model_dir={model_dir}" in last
