"""Distributed training: two replicas of a MirroredStrategy against one,
and two MultiWorkerMirroredStrategy workers in separate processes.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from gff_keras.models import load_model
from tests.script_runs import REPO
from tests.script_runs import SCRIPTS
from tests.script_runs import run_python

TRAIN = os.path.join(SCRIPTS, "train.py")


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

config = experiments.get_experiment("synthetic_tiny_pspnet").replace(**{{
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
    result = run_python(["-c", script])
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.split("RESULT")[1])
    assert outcome["same_start"]
    errors = outcome["errors"]
    assert len(errors) > outcome["weights"] // 2
    assert max(errors) < 2e-2
    assert np.median(errors) < 1e-4


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
                    "--experiment=synthetic_tiny_pspnet",
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
