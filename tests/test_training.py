"""Training: schedule, optimizer, OHEM, configs, run directory, resume,
distribution (MirroredStrategy and two-process MultiWorkerMirroredStrategy).
"""

import json
import os
import socket
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import experiments
from gff_keras.data import build_dataset
from gff_keras.data import dataset_info
from gff_keras.models import load_model
from gff_keras.models.run_directory import save_model
from gff_keras.training import ExperimentConfig
from gff_keras.training import OptimizerConfig
from gff_keras.training import PeriodicEvaluation
from gff_keras.training import PolyLearningRate
from gff_keras.training import ScheduleConfig
from gff_keras.training import SegmentationLoss
from gff_keras.training import SGDWithWeightDecay
from gff_keras.training import TrainingBackup
from gff_keras.training import apply_overrides
from gff_keras.training import backed_up_epoch
from gff_keras.training import build_optimizer
from gff_keras.training import latest_backup
from gff_keras.training import run_experiment
from gff_keras.training.experiment_runner import _check_config
from gff_keras.training.experiment_runner import build_model
from gff_keras.training.training_backup import finish_backup
from gff_keras.training.training_backup import is_finished_backup

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "scripts", "train.py")


def _run(args, env=None, timeout=600):
    env = dict(
        os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})
    )
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )


def _tiny(**changes):
    return experiments.get_experiment("synthetic_tiny").replace(**changes)


# --- schedule and optimizer ---------------------------------------------


@pytest.mark.parametrize("step", [0, 1, 37, 500, 999, 1000, 1200])
def test_poly_schedule_equals_formula(step):
    schedule = PolyLearningRate(0.01, decay_steps=1000, power=0.9)
    expected = 0.01 * max(1 - step / 1000, 0.0) ** 0.9
    np.testing.assert_allclose(
        float(schedule(step)), expected, rtol=1e-5, atol=1e-8
    )


def test_poly_schedule_warmup_ramps_linearly_then_joins_poly():
    schedule = PolyLearningRate(
        0.01, decay_steps=1000, warmup_steps=100, warmup_ratio=0.1
    )
    for step in (0, 50, 99, 100, 400):
        poly = 0.01 * (1 - step / 1000) ** 0.9
        factor = 0.1 + 0.9 * min(step / 100, 1.0)
        np.testing.assert_allclose(
            float(schedule(step)), poly * factor, rtol=1e-5
        )


def test_build_optimizer_follows_config_and_steps_the_schedule():
    optimizer = build_optimizer(
        OptimizerConfig(learning_rate=0.02, momentum=0.8, weight_decay=3e-4),
        ScheduleConfig(steps=10, power=0.9),
    )
    assert isinstance(optimizer, SGDWithWeightDecay)
    assert optimizer.momentum == 0.8
    assert optimizer.l2_weight_decay == 3e-4
    variable = keras.Variable(np.ones((2,), np.float32), name="kernel")
    for _ in range(4):
        optimizer.apply([keras.ops.zeros((2,))], [variable])
    np.testing.assert_allclose(
        float(optimizer.learning_rate), 0.02 * 0.6**0.9, rtol=1e-5
    )


def test_weight_decay_is_l2_before_momentum_on_kernels_only():
    lr, momentum, decay = 0.1, 0.9, 0.01
    model = keras.Sequential(
        [
            keras.Input((4, 4, 2)),
            keras.layers.Conv2D(3, 1, name="conv"),
            keras.layers.BatchNormalization(name="bn"),
        ],
        name="net",
    )
    optimizer = SGDWithWeightDecay(lr, momentum=momentum, l2_weight_decay=decay)
    variables = model.trainable_variables
    start = [v.numpy().copy() for v in variables]
    gradients = [np.full(v.shape, 0.5, np.float32) for v in variables]
    for _ in range(3):
        optimizer.apply([keras.ops.array(g) for g in gradients], variables)
    for variable, value, gradient in zip(variables, start, gradients):
        # PyTorch SGD: d = g + wd * w (kernels only); v = m * v + d;
        # w -= lr * v.
        velocity = np.zeros_like(value)
        weight = value.copy()
        for _ in range(3):
            step = gradient + (
                decay * weight if variable.name == "kernel" else 0
            )
            velocity = momentum * velocity + step
            weight = weight - lr * velocity
        np.testing.assert_allclose(
            variable.numpy(), weight, rtol=1e-5, atol=1e-6
        )
    decayed = {v.path for v in variables if v.name == "kernel"}
    assert decayed == {"net/conv/kernel"}


# --- OHEM ------------------------------------------------------------------


def _numpy_ohem_loss(labels, logits, threshold, min_kept, ignore=255):
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    valid = labels != ignore
    safe = np.where(valid, labels, 0)
    true_log_prob = np.take_along_axis(log_probs, safe[..., None], -1)[..., 0]
    probs = np.exp(true_log_prob)
    ranked = np.sort(probs[valid])
    kept_count = min(min_kept, ranked.size)
    cut = max(ranked[kept_count - 1], threshold)
    kept = valid & (probs < cut)
    return -true_log_prob[kept].mean()


@pytest.mark.parametrize("min_kept", [3, 40, 1000])
def test_ohem_loss_matches_numpy_sampler(min_kept):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (2, 6, 5))
    labels[0, :2] = 255
    logits = rng.normal(size=(2, 6, 5, 4)).astype(np.float32) * 3
    loss = SegmentationLoss(ohem_threshold=0.7, ohem_min_kept=min_kept)
    expected = _numpy_ohem_loss(labels, logits, 0.7, min_kept)
    np.testing.assert_allclose(float(loss(labels, logits)), expected, rtol=1e-5)
    # Without OHEM every labelled pixel counts.
    assert float(SegmentationLoss()(labels, logits)) != pytest.approx(expected)


# --- configs ---------------------------------------------------------------


_BUILT_ARGUMENTS = set()


@pytest.mark.parametrize("name", experiments.experiment_names())
def test_every_experiment_resolves_and_builds(name):
    config = experiments.get_experiment(name)
    assert config.name == name
    round_trip = ExperimentConfig.from_dict(json.loads(config.to_json()))
    assert round_trip == config
    if config.data.dataset != "synthetic":
        assert config.paper_reference
    # No download in tests: the architecture, not the ImageNet weights.
    config.model.backbone.weights = None
    arguments = config.model.resolved_arguments()
    # Experiments that differ only in their data build the same model (but
    # for its classes); a ResNet-101 build costs seconds, so build it once.
    key = json.dumps(arguments, sort_keys=True, default=str)
    if key in _BUILT_ARGUMENTS:
        return
    _BUILT_ARGUMENTS.add(key)
    model = build_model(config)
    assert model.name == config.model.preset
    backbone = arguments.get("backbone", "resnet101")
    if isinstance(backbone, dict):  # a preset's part config
        backbone = backbone["class_name"]
    if backbone.startswith(("resnet", "densenet")):
        family = "DilatedResNet" if backbone[0] == "r" else "DilatedDenseNet"
        assert type(model.backbone).__name__ == family
        depth = backbone.removeprefix("resnet").removeprefix("densenet")
        assert model.backbone.depth == int(depth)
    else:
        assert type(model.backbone).__name__ == "WiderResNet38"
    fusion = getattr(model.head, "fusion", None)
    expected = {
        "none": None,
        "gff": "GatedFullyFusion",
        "gated_fpn": "GatedFPNFusion",
        "fpn": "FPNFusion",
        "add": "AddFusion",
        "concat": "ConcatFusion",
    }[arguments.get("fusion") or ("gff" if fusion is not None else "none")]
    assert (fusion and type(fusion).__name__) == expected
    keras.backend.clear_session()


def test_dataset_defaults_follow_the_paper_recipe():
    ade = experiments.experiment_for_dataset("ade20k")
    assert (ade.data.crop_size, ade.data.batch_size) == (512, 16)
    assert ade.schedule.steps == 150_000
    assert ade.paper_miou == 45.33
    city = experiments.experiment_for_dataset("tfds:cityscapes")
    assert city.data.dataset == "tfds:cityscapes"
    assert (city.data.crop_size, city.data.batch_size) == (864, 8)
    assert city.schedule.steps == 100_000
    assert city.runtime.eval_mode == "slide"
    for config in (ade, city):
        assert config.optimizer.learning_rate == 1e-3
        assert config.optimizer.weight_decay == 1e-4
        assert config.schedule.power == 0.9
        # The Segmenter's default auxiliary weight, 0.4, applies.
        assert "aux_loss_weight" not in config.model.resolved_arguments()
    table1 = [
        experiments.get_experiment(f"cityscapes_{f}_resnet101").paper_miou
        for f in ("pspnet", "concat", "add", "fpn", "gated_fpn", "gff")
    ]
    assert table1 == [78.6, 78.8, 78.7, 79.3, 79.4, 80.4]


def test_overrides_parse_types_and_reject_unknown_keys():
    config = apply_overrides(
        ExperimentConfig(),
        [
            "optimizer.learning_rate=0.02",
            "model.dfp.type=none",
            "runtime.seed=none",
            "data.data_dir=/data/ade",
        ],
    )
    assert config.optimizer.learning_rate == 0.02
    assert config.model.dfp.type == "none"
    assert config.runtime.seed is None
    assert config.data.data_dir == "/data/ade"
    with pytest.raises(KeyError, match="'model.depth'.*no field 'depth'"):
        apply_overrides(config, ["model.depth=50"])
    with pytest.raises(KeyError, match="'optimiser.learning_rate'"):
        apply_overrides(config, ["optimiser.learning_rate=1"])
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(config, ["model.dfp.type"])
    with pytest.raises(ValueError, match="Cannot parse 'many'"):
        apply_overrides(config, ["schedule.steps=many"])
    with pytest.raises(ValueError, match="model.fusion.type='sum'"):
        apply_overrides(config, ["model.fusion.type=sum"])
    with pytest.raises(ValueError, match="multiple of runtime.steps_per_loop"):
        apply_overrides(config, ["schedule.steps=1500"])
    with pytest.raises(KeyError, match="Unknown experiment 'nope'"):
        experiments.get_experiment("nope")


def test_tuple_overrides_parse_and_survive_json():
    config = apply_overrides(
        ExperimentConfig(),
        [
            "model.backbone.name=wider_resnet38",
            "model.backbone.weights=none",
            "model.context.type=aspp",
            "model.head.levels=mod2, mod5",
            "model.dfp.dilation_rates=3,6,9",
            "model.context.rates=none",
        ],
    )
    assert config.model.head.levels == ("mod2", "mod5")
    assert config.model.dfp.dilation_rates == (3, 6, 9)
    assert config.model.context.rates is None
    # JSON stores tuples as lists; reading it back gives the same config.
    assert ExperimentConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="Cannot parse 'six'"):
        apply_overrides(config, ["model.dfp.dilation_rates=3,six"])
    with pytest.raises(ValueError, match="model.context.type='psp'"):
        apply_overrides(config, ["model.context.type=psp"])
    with pytest.raises(ValueError, match="model.backbone.name='vgg16'"):
        apply_overrides(config, ["model.backbone.name=vgg16"])
    with pytest.raises(ValueError, match="no Wider-ResNet-38 weights"):
        apply_overrides(config, ["model.backbone.weights=imagenet"])


def test_resume_check_accepts_the_same_config_with_tuples(tmp_path):
    config = apply_overrides(
        experiments.get_experiment("cityscapes_gffnet_resnet101"),
        ["model.dfp.dilation_rates=1,2,3,4"],
    )
    (tmp_path / "config.json").write_text(config.to_json())
    _check_config(config, str(tmp_path))  # the same settings: resumes
    changed = apply_overrides(config, ["model.dfp.dilation_rates=2,4,8,16"])
    with pytest.raises(ValueError, match="changed: model.dfp.dilation_rates"):
        _check_config(changed, str(tmp_path))


# --- backups and resuming ----------------------------------------------------


def _dense_model():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dropout(0.5)(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    return model


def _fit(model, backup_dir, epochs, restore_from=None):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=epochs,
        initial_epoch=backed_up_epoch(restore_from),
        shuffle=False,
        verbose=0,
        callbacks=[TrainingBackup(backup_dir, restore_from=restore_from)],
    )


def test_backup_is_one_whole_directory_and_restores_the_training_state(
    tmp_path,
):
    backup_dir = str(tmp_path / "backup")
    assert latest_backup(backup_dir) is None
    trained = _dense_model()
    _fit(trained, backup_dir, epochs=3)
    # Two steps per epoch; only the newest backup is kept, without copies.
    assert os.listdir(backup_dir) == ["step-000000006"]
    backup = latest_backup(backup_dir)
    assert backup == os.path.join(backup_dir, "step-000000006")
    assert sorted(os.listdir(backup)) == ["model.weights.h5", "state.json"]
    assert backed_up_epoch(backup) == 3

    resumed = _dense_model()
    _fit(resumed, backup_dir, epochs=3, restore_from=backup)  # nothing left
    assert int(resumed.optimizer.iterations.numpy()) == 6
    for a, b in zip(trained.variables, resumed.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_finished_backup_keeps_the_final_model_without_a_second_copy(
    tmp_path,
):
    backup_dir = str(tmp_path / "backup")
    trained = _dense_model()
    _fit(trained, backup_dir, epochs=2)
    latest = tmp_path / "checkpoints" / "latest.keras"
    save_model(trained, str(latest))
    finish_backup(backup_dir, str(latest))
    assert os.listdir(backup_dir) == ["step-000000004-finished"]
    held = tmp_path / "backup" / "step-000000004-finished" / "model.keras"
    assert os.path.samefile(held, latest)  # a hard link, not a copy
    backup = latest_backup(backup_dir)
    assert is_finished_backup(backup) and backed_up_epoch(backup) == 2

    # Deleting latest.keras loses nothing; a re-run restores the weights.
    latest.unlink()
    restored = _dense_model()
    _fit(restored, backup_dir, epochs=2, restore_from=backup)
    for a, b in zip(trained.weights, restored.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # A damaged final model is an error, never a silent restart.
    held.write_bytes(held.read_bytes()[:100])
    with pytest.raises(ValueError, match="finished run whose final model"):
        latest_backup(backup_dir)


@pytest.mark.parametrize("damage", ["truncated_weights", "empty_state"])
def test_an_unreadable_backup_is_set_aside_with_a_warning(tmp_path, damage):
    backup_dir = tmp_path / "backup"
    _fit(_dense_model(), str(backup_dir), epochs=1)
    older = backup_dir / "step-000000002"
    newer = backup_dir / "step-000000004"
    newer.mkdir()
    for name in ("model.weights.h5", "state.json"):
        (newer / name).write_bytes((older / name).read_bytes())
    if damage == "truncated_weights":
        data = (newer / "model.weights.h5").read_bytes()
        (newer / "model.weights.h5").write_bytes(data[: len(data) // 2])
    else:
        (newer / "state.json").write_text("")
    # What a kill during a backup leaves behind is not a backup.
    (backup_dir / ".partial-123").mkdir()
    (backup_dir / ".partial-123" / "model.weights.h5").write_bytes(b"\x89HDF")

    with pytest.warns(UserWarning, match=f"Backup {newer} is unreadable"):
        assert latest_backup(str(backup_dir)) == str(older)
    assert sorted(os.listdir(backup_dir)) == [
        "step-000000002",
        "unreadable-step-000000004",
    ]


def test_an_evaluation_interrupted_by_a_kill_runs_when_training_resumes(
    tmp_path,
):
    metrics_file = tmp_path / "metrics.json"
    metrics_file.write_text(
        json.dumps({"evaluations": [{"step": 2, "mean_iou": 0.5}]})
    )
    calls = []

    def evaluate(model):
        calls.append(model)
        return {
            "mean_iou": 0.6,
            "pixel_accuracy": 0.9,
            "mean_accuracy": 0.7,
            "per_class_iou": [0.6, 0.6],
        }

    def callback(initial_step):
        evaluation = PeriodicEvaluation(
            evaluate,
            steps_per_loop=2,
            eval_every=4,
            total_steps=8,
            metrics_file=str(metrics_file),
            initial_step=initial_step,
        )
        evaluation.set_model(_dense_model())
        return evaluation

    # Killed while evaluating step 4: its backup exists, its entry not.
    callback(initial_step=4).on_train_begin()
    with open(metrics_file) as f:
        steps = [e["step"] for e in json.load(f)["evaluations"]]
    assert steps == [2, 4] and len(calls) == 1
    # Resuming at a step that was evaluated, or one that is not due,
    # evaluates nothing before training.
    callback(initial_step=4).on_train_begin()
    callback(initial_step=6).on_train_begin()
    assert len(calls) == 1


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
    result = _run(command)
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
    again = _run(command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "has finished all 4 steps" in again.stdout
    with open(os.path.join(model_dir, "metrics.json")) as f:
        rerun = json.load(f)
    assert rerun["summary"]["initial_step"] == 4
    assert rerun["evaluations"] == metrics["evaluations"]
    assert os.listdir(os.path.join(model_dir, "export")) == ["1"]


@pytest.mark.slow
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
    for args, expected in cases:
        result = _run(
            [TRAIN, f"--model_dir={tmp_path}/run", *args], timeout=120
        )
        assert result.returncode != 0, args
        for text in expected:
            assert text in result.stderr, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, args
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
    result = _run(command)
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
    result = _run([*command, "--override=data.skip_bad_examples=true"])
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
    result = _run(
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


@pytest.mark.slow
def test_export_script_errors_are_one_line(tmp_path):
    run_dir = tmp_path / "run"
    model = keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.Dense(2)]
    )
    (run_dir / "checkpoints").mkdir(parents=True)
    model.save(run_dir / "checkpoints" / "best.keras")
    (run_dir / "export" / "1").mkdir(parents=True)
    (tmp_path / "notes.keras").write_text("not a model")
    export = os.path.join(REPO, "scripts", "export.py")
    cases = [
        (f"--model_dir={tmp_path}/missing", f"{tmp_path}/missing"),
        (f"--model_dir={tmp_path}/notes.keras", f"{tmp_path}/notes.keras"),
        (f"--model_dir={run_dir}", f"{run_dir}/export/1 exists"),
    ]
    for flag, culprit in cases:
        extra = ["--version=1"] if flag.endswith("run") else []
        result = _run([export, flag, *extra], timeout=120)
        assert result.returncode == 2, (flag, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, flag
        last = result.stderr.strip().splitlines()[-1]
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
    result = _run(["-c", script])
    assert result.returncode == 130, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"train.py: interrupted; {model_dir} resumes from step 0 with: python"
    ), last
    assert f"--model_dir={model_dir}" in last


@pytest.mark.slow
def test_a_run_killed_at_any_moment_finishes_on_rerun(tmp_path):
    # One run of 6 steps (loops of 2, evaluations at 2, 4 and 6) killed
    # with SIGKILL at six moments in turn, each rerun of the same command
    # resuming the previous one: while its first backup is written, in
    # the middle of a loop, while a later backup is written, while an
    # evaluation runs, while the last evaluation runs, while the
    # SavedModel is written.
    from tests.kill_at import weights_checksum

    model_dir = tmp_path / "run"
    step_log = tmp_path / "steps.log"
    flags = [
        "--experiment=synthetic_tiny",
        f"--model_dir={model_dir}",
        "--steps=6",
        "--override=runtime.steps_per_loop=2",
        "--override=runtime.eval_every=2",
    ]
    kill_at = os.path.join(REPO, "tests", "kill_at.py")

    def logged():
        rows = [line.split() for line in step_log.read_text().splitlines()]
        return [int(step) for step, _ in rows], [float(c) for _, c in rows]

    # (moment, step the process resumes from, step it is killed at); the
    # N-th backup or evaluation counts from the process's start.
    kills = [
        ("backup=1", 0, 2),
        ("step=3", 0, 3),
        ("backup=1", 2, 4),
        ("evaluation=1", 2, 4),
        ("evaluation=2", 4, 6),  # step 4's evaluation runs again first
        ("export", 6, 6),
    ]
    for moment, resumed_from, killed_at in kills:
        result = _run([kill_at, moment, str(step_log), *flags])
        assert result.returncode == -9, (moment, result.stderr[-3000:])
        if resumed_from == 6:
            assert "has finished all 6 steps" in result.stdout, moment
        elif resumed_from:
            assert f"from step {resumed_from} of 6" in result.stdout, moment
        assert logged()[0][-1] == killed_at, (moment, logged()[0])
    result = _run([kill_at, "none", str(step_log), *flags])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "has finished all 6 steps" in result.stdout

    # Each kill costs at most the loop it fell in: steps 1-2 twice (the
    # first backup), 3 twice (mid-loop), 3-4 again (a later backup).
    steps, checksums = logged()
    assert sorted(set(steps)) == [1, 2, 3, 4, 5, 6]
    assert len(steps) == 6 + 2 + 1 + 2
    with open(model_dir / "metrics.json") as f:
        metrics = json.load(f)
    assert [e["step"] for e in metrics["evaluations"]] == [2, 4, 6]
    assert metrics["summary"]["steps"] == 6
    assert os.listdir(model_dir / "backup") == ["step-000000006-finished"]
    assert os.listdir(model_dir / "export") == ["1"]
    served = tf.saved_model.load(str(model_dir / "export" / "1"))
    outputs = served.signatures["serving_default"](
        inputs=tf.zeros((1, 8, 8, 3), tf.uint8)
    )
    assert outputs["predictions"].shape == (1, 8, 8)
    # latest.keras holds the weights of step 6, though no process wrote it
    # at the end of a loop after step 6 was trained.
    latest = load_model(str(model_dir / "checkpoints" / "latest.keras"))
    assert weights_checksum(latest) == pytest.approx(checksums[-1], rel=1e-12)
    load_model(str(model_dir / "checkpoints" / "best.keras"))
    leftovers = [
        os.path.join(folder, name)
        for folder, folders, files in os.walk(model_dir)
        for name in folders + files
        if name.startswith((".partial-", "tmp-", "unreadable-"))
    ]
    assert not leftovers


@pytest.mark.slow
def test_resumed_run_reproduces_the_uninterrupted_one(tmp_path):
    # A separate process: op determinism is process-wide.
    script = f"""
import keras, numpy as np, experiments
from gff_keras.models import load_model
from gff_keras.models.run_directory import save_model
from gff_keras.training import run_experiment

class Kill(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == 2:
            raise KeyboardInterrupt

config = experiments.get_experiment("synthetic_tiny").replace(
    **{{"runtime.deterministic": True, "runtime.export": False,
        "runtime.eval_every": 4, "runtime.num_visualizations": 0}})
run_experiment(config, "{tmp_path}/whole")
try:
    run_experiment(config, "{tmp_path}/killed", callbacks=[Kill()])
    raise SystemExit("not interrupted")
except KeyboardInterrupt:
    pass
summary = run_experiment(config, "{tmp_path}/killed")
print("INITIAL", summary["initial_step"])
whole = load_model("{tmp_path}/whole").get_weights()
resumed = load_model("{tmp_path}/killed").get_weights()
print("DIFF", max(float(np.abs(a - b).max()) for a, b in zip(whole, resumed)))
"""
    result = _run(["-c", script])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "INITIAL 2" in result.stdout
    diff = float(result.stdout.split("DIFF")[1].split()[0])
    assert diff == 0.0


@pytest.mark.slow
def test_two_replicas_equal_one_replica_on_the_same_global_batch(tmp_path):
    # Dropout draws different masks per replica; without it the two runs
    # see the same pixels and, through synchronized BatchNorm and summed
    # gradients, compute the same updates up to float32 summation order.
    # Keras' synchronized BatchNorm takes the variance as E[x^2] - E[x]^2,
    # which amplifies that rounding where a channel barely varies (the
    # PPM's 1x1 bin sees 4 values per channel here): so the updates are
    # compared relative to their size, nearly all to 1e-4 and each tensor
    # to 2%. Output stride 8 keeps res5 at 4x4 (at 32 it is 1x1, where
    # that cancellation dominates every later layer). A separate process:
    # collective-op instances of earlier strategies in this one can clash.
    script = f"""
import json, keras, numpy as np, tensorflow as tf, experiments
from gff_keras.models import load_model
from gff_keras.models.run_directory import save_model
from gff_keras.training import run_experiment

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
cpus = [d.name for d in tf.config.list_logical_devices("CPU")]

class InitialWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = [w.numpy() for w in self.model.weights]

config = experiments.get_experiment("synthetic_tiny").replace(**{{
    "model.head.dropout": 0.0, "model.backbone.output_stride": 8,
    "data.batch_size": 4,
    "optimizer.learning_rate": 1e-3, "schedule.steps": 2,
    "runtime.export": False, "runtime.num_visualizations": 0,
    "runtime.seed": 3}})
strategies = {{
    "one": tf.distribute.OneDeviceStrategy(cpus[0]),
    "two": tf.distribute.MirroredStrategy(cpus[:2]),
}}
initial, final = {{}}, {{}}
for name, strategy in strategies.items():
    recorder = InitialWeights()
    run_experiment(config, "{tmp_path}/" + name, strategy=strategy,
                   callbacks=[recorder])
    initial[name] = recorder.weights
    final[name] = load_model("{tmp_path}/" + name).get_weights()
same_start = all(
    np.array_equal(a, b) for a, b in zip(initial["one"], initial["two"]))
errors = []
for start, one, two in zip(initial["one"], final["one"], final["two"]):
    update = np.abs(one - start).max()
    if update > 1e-6:
        errors.append(float(np.abs(two - one).max() / update))
print("RESULT", json.dumps({{"same_start": same_start, "errors": errors,
                            "weights": len(initial["one"])}}))
"""
    result = _run(["-c", script])
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.split("RESULT")[1])
    assert outcome["same_start"]
    errors = outcome["errors"]
    assert len(errors) > outcome["weights"] // 2
    assert max(errors) < 2e-2
    assert np.median(errors) < 1e-4


@pytest.mark.slow
def test_a_few_hundred_synthetic_steps_learn_well_above_chance(tmp_path):
    # The whole loop (pipeline, loss, optimizer, schedule, evaluation)
    # must learn: 200 steps of a ResNet-18 GFFNet with narrow heads reach
    # mIoU 0.29 on 8 validation scenes (measured, seed 0; sky and ground
    # 0.8 IoU), against 0.048 for predicting the most frequent class
    # everywhere. Recorded in docs/benchmarks.md. Output stride 32: the
    # fusion still sees the stride-4 level, and a step costs a seventh of
    # one at stride 8 on an AVX2-only CPU.
    config = _tiny(
        **{
            "data.batch_size": 4,
            "data.crop_size": 48,
            "data.synthetic_image_size": 64,
            "data.num_train_examples": None,
            "data.num_eval_examples": 8,
            "schedule.steps": 200,
            "runtime.steps_per_loop": 100,
            "runtime.eval_every": 200,
            "runtime.export": False,
            "runtime.verbose": 0,
            "runtime.seed": 0,
        }
    )
    summary = run_experiment(config, str(tmp_path / "run"))
    labels = np.concatenate(
        [
            np.ravel(label)
            for _, label in build_dataset(
                "synthetic",
                "validation",
                training=False,
                batch_size=1,
                num_examples=8,
                synthetic_image_size=(64, 64),
            )
        ]
    )
    counts = np.bincount(labels[labels != 255], minlength=8)
    # Predicting the most frequent class: its IoU is its pixel share, the
    # other classes score 0 (classes absent from the labels are skipped).
    majority_miou = counts.max() / counts.sum() / np.count_nonzero(counts)
    final = summary["final"]["mean_iou"]
    assert final > 0.25
    assert final > 3 * majority_miou
    ious = summary["final"]["per_class_iou"]
    assert min(ious["sky"], ious["ground"]) > 0.6


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_worker_multi_worker_run_ends_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    model_dir = str(tmp_path / "run")
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    processes, logs = [], []
    for index in range(2):
        env["TF_CONFIG"] = json.dumps(
            {
                "cluster": {"worker": workers},
                "task": {"type": "worker", "index": index},
            }
        )
        # Files, not pipes: a worker blocked on a full pipe would stall the
        # other one in the next all-reduce.
        logs.append(open(tmp_path / f"worker{index}.log", "w+"))
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    TRAIN,
                    "--experiment=synthetic_tiny",
                    f"--model_dir={model_dir}",
                    "--override=runtime.export=false",
                ],
                env=dict(env),
                cwd=REPO,
                stdout=logs[-1],
                stderr=subprocess.STDOUT,
            )
        )
    try:
        for process in processes:
            process.wait(timeout=600)
    finally:
        # A worker that failed leaves the other waiting for it forever.
        for process in processes:
            process.kill()
    for process, log in zip(processes, logs):
        log.seek(0)
        assert process.returncode == 0, log.read()[-3000:]
        log.close()
    # Each worker keeps its final weights (only the chief keeps the best).
    latest = os.path.join("checkpoints", "latest.keras")
    chief = load_model(os.path.join(model_dir, latest)).get_weights()
    other = load_model(
        os.path.join(model_dir, "workers", "1", latest)
    ).get_weights()
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)
    # Only the chief writes the run's config, metrics and checkpoints.
    assert os.path.isfile(os.path.join(model_dir, "metrics.json"))
    assert not os.path.exists(os.path.join(model_dir, "workers", "1", "logs"))
