"""Resuming a run: backups, a run killed at any moment, and a resumed run
that reproduces the uninterrupted one.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from gff_keras.models import load_model
from gff_keras.models import run_directory
from gff_keras.models.run_directory import save_model
from gff_keras.training import PeriodicEvaluation
from gff_keras.training import TrainingBackup
from gff_keras.training import backed_up_epoch
from gff_keras.training import latest_backup
from gff_keras.training.training_backup import finish_backup
from gff_keras.training.training_backup import is_finished_backup
from tests.script_runs import REPO
from tests.script_runs import run_python

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


def test_weights_of_a_keras_file_load_as_keras_loads_them(tmp_path):
    trained = _dense_model()
    _fit(trained, str(tmp_path / "backup"), epochs=1)
    path = str(tmp_path / "model.keras")
    save_model(trained, path)
    loaded, by_keras = _dense_model(), _dense_model()
    run_directory.load_weights(loaded, path)
    by_keras.load_weights(path)
    for a, b, c in zip(trained.weights, loaded.weights, by_keras.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_array_equal(np.asarray(b), np.asarray(c))

    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("not a zip archive")
    with pytest.raises(ValueError, match="notes.keras is not a Keras model"):
        run_directory.load_weights(loaded, str(not_a_model))


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


@pytest.mark.slow
def test_a_run_killed_at_any_moment_finishes_on_rerun(tmp_path):
    # One run of 6 steps (loops of 2, evaluations at 2, 4 and 6) killed
    # with SIGKILL at five moments in turn, each rerun of the same command
    # resuming the previous one: while its first backup is written, in
    # the middle of a loop, while a later backup is written, while the
    # last evaluation runs, while the SavedModel is written. (An
    # evaluation killed before the last one runs again when training
    # resumes: test_an_evaluation_interrupted_by_a_kill_runs_when_...)
    from tests.kill_at import weights_checksum

    model_dir = tmp_path / "run"
    step_log = tmp_path / "steps.log"
    flags = [
        "--experiment=synthetic_tiny_pspnet",
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
        ("evaluation=2", 2, 6),  # the second is step 6's
        ("export", 6, 6),
    ]
    for moment, resumed_from, killed_at in kills:
        result = run_python([kill_at, moment, str(step_log), *flags])
        assert result.returncode == -9, (moment, result.stderr[-3000:])
        if resumed_from == 6:
            assert "has finished all 6 steps" in result.stdout, moment
        elif resumed_from:
            assert f"from step {resumed_from} of 6" in result.stdout, moment
        assert logged()[0][-1] == killed_at, (moment, logged()[0])
    result = run_python([kill_at, "none", str(step_log), *flags])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "has finished all 6 steps" in result.stdout

    # Each kill costs at most the loop it fell in: steps 1-2 twice (the
    # first backup), 3 twice (mid-loop), 3-4 twice (a later backup).
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

config = experiments.get_experiment("synthetic_tiny_pspnet").replace(
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
    result = run_python(["-c", script])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "INITIAL 2" in result.stdout
    diff = float(result.stdout.split("DIFF")[1].split()[0])
    assert diff == 0.0
