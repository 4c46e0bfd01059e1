"""Runs scripts/train.py and kills it with SIGKILL at a chosen moment.

    python tests/kill_at.py MOMENT STEP_LOG [train.py flags...]

A SIGKILL cannot be caught: the process ends on the spot with no cleanup,
as when the machine loses power or the scheduler preempts a job. The
moments are reached by wrapping the functions that write there, so the
kill always falls at the same point of the run:

- `backup=N`: the N-th resume backup this process writes has its weights
  file half written.
- `step=N`: right after training step N.
- `evaluation=N`: the N-th evaluation has run, its result not recorded.
- `export`: the SavedModel is written, not yet renamed into place.
- `none`: no kill.

Every training step the process runs is appended to STEP_LOG with a
checksum of the weights after it (`weights_checksum`), so a test can count
the steps computed more than once and recognize the final weights.
"""

import os
import runpy
import signal
import sys

import keras
import numpy as np
import tensorflow as tf

from gff_keras.training import experiment_runner
from gff_keras.training.training_monitor import TrainingMonitor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kill():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_on_call(number, function, before_kill=None):
    """`function`, killing the process at the end of its `number`-th call."""
    calls = []

    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        calls.append(None)
        if len(calls) == number:
            if before_kill:
                before_kill(*args, **kwargs)
            kill()
        return result

    return wrapped


def weights_checksum(model):
    """A number that changes with every training step's weights."""
    return float(
        sum(np.abs(np.asarray(w, np.float64)).sum() for w in model.weights)
    )


def truncate_weights_file(model, path, *args, **kwargs):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def main(moment, step_log, flags):
    log_step = TrainingMonitor.on_train_batch_end

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        with open(step_log, "a") as f:
            f.write(f"{step} {weights_checksum(self.model)!r}\n")
        log_step(self, batch, logs)
        if moment == f"step={step}":
            kill()

    TrainingMonitor.on_train_batch_end = on_train_batch_end
    if moment.startswith("backup="):
        keras.Model.save_weights = kill_on_call(
            int(moment.split("=")[1]),
            keras.Model.save_weights,
            before_kill=truncate_weights_file,
        )
    elif moment.startswith("evaluation="):
        experiment_runner.evaluate_dataset = kill_on_call(
            int(moment.split("=")[1]), experiment_runner.evaluate_dataset
        )
    elif moment == "export":
        # The SavedModel is written, under its temporary name.
        tf.saved_model.save = kill_on_call(1, tf.saved_model.save)
    elif moment != "none" and not moment.startswith("step="):
        raise SystemExit(f"kill_at.py: unknown moment {moment!r}")
    train = os.path.join(REPO, "scripts", "train.py")
    # As `python scripts/train.py` does: its folder's modules import.
    sys.path.insert(0, os.path.dirname(train))
    sys.argv = [train, *flags]
    runpy.run_path(train, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
