import json
import os
import re
import shutil
import warnings

import h5py
import keras

WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "state.json"
_COMPLETE = re.compile(r"^step-(\d+)$")
_PARTIAL_PREFIX = ".partial-"
_SET_ASIDE_PREFIX = "unreadable-"


class TrainingBackup(keras.callbacks.Callback):
    """Writes and restores the state a run needs to resume after any kill.

    After each loop of `steps_per_loop` steps (one Keras epoch) it writes
    the weights with the optimizer state, the completed epoch count and the
    layers' random states (dropout `SeedGenerator`s, which are variables
    outside `model.weights`) into `backup_dir/step-<optimizer step>/`. The
    directory is written under a temporary name and renamed when complete,
    so a kill at any moment leaves either the previous backup or the new
    one, never a partial file in their place; older backups are then
    deleted.

    `latest_backup` finds the newest complete backup before the model
    exists (to position the input stream and `fit`'s `initial_epoch`); an
    unreadable one (a damaged disk, a hand-edited file) is set aside as
    `unreadable-step-<step>` with a one-line warning naming it, and the next
    older one is used. The callback restores the chosen backup when
    training begins.

    Args:
        backup_dir: str, where the backups live.
        restore_from: the backup directory to restore when training begins
            (from `latest_backup`), or `None` to start from scratch.

    Example:

    >>> restore = latest_backup("/tmp/run/backup")  # doctest: +SKIP
    >>> backup = TrainingBackup("/tmp/run/backup", restore_from=restore)
    >>> model.fit(..., initial_epoch=backed_up_epoch(restore))
    """

    def __init__(self, backup_dir: str, restore_from: str | None = None):
        super().__init__()
        self.backup_dir = backup_dir
        self.restore_from = restore_from

    def _random_states(self):
        weights = {id(w) for w in self.model.weights}
        # Seed generator states are the variables that are not weights
        # (metrics live in the compiled metrics, not in the layers).
        return [v for v in self.model.variables if id(v) not in weights]

    def on_train_begin(self, logs=None):
        if self.restore_from is None:
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.restore_from, WEIGHTS_FILE))
        saved = _read_state(self.restore_from)["random_states"]
        variables = self._random_states()
        # Matched by position: generator names get a per-process suffix.
        if len(saved) != len(variables):
            raise ValueError(
                f"{self.restore_from} holds {len(saved)} random states; the "
                f"model has {len(variables)}. Was the backup written by "
                "another model?"
            )
        for variable, state in zip(variables, saved):
            variable.assign(state)

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        partial = os.path.join(
            self.backup_dir, f"{_PARTIAL_PREFIX}{os.getpid()}"
        )
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        self.model.save_weights(os.path.join(partial, WEIGHTS_FILE))
        state = {
            "epoch": epoch + 1,
            "random_states": [
                v.numpy().tolist() for v in self._random_states()
            ],
        }
        with open(os.path.join(partial, STATE_FILE), "w") as f:
            json.dump(state, f)
        step = int(self.model.optimizer.iterations.numpy())
        complete = os.path.join(self.backup_dir, f"step-{step:09d}")
        shutil.rmtree(complete, ignore_errors=True)
        os.rename(partial, complete)
        for name, _ in _backups(self.backup_dir):
            if name != os.path.basename(complete):
                shutil.rmtree(
                    os.path.join(self.backup_dir, name), ignore_errors=True
                )


def latest_backup(backup_dir: str) -> str | None:
    """The newest complete, readable backup in `backup_dir`, or `None`.

    Leftovers of a backup that was being written when the run was killed
    are deleted. A complete backup that cannot be read is renamed to
    `unreadable-<name>` with a warning naming it, and the next older one
    is tried.

    Args:
        backup_dir: a `TrainingBackup`'s directory.

    Returns:
        The backup's directory, for `TrainingBackup(restore_from=...)`.
    """
    if not os.path.isdir(backup_dir):
        return None
    for name in os.listdir(backup_dir):
        if name.startswith(_PARTIAL_PREFIX):
            shutil.rmtree(os.path.join(backup_dir, name), ignore_errors=True)
    for name, _ in sorted(_backups(backup_dir), key=lambda b: -b[1]):
        path = os.path.join(backup_dir, name)
        problem = _problem(path)
        if problem is None:
            return path
        aside = os.path.join(backup_dir, _SET_ASIDE_PREFIX + name)
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(path, aside)
        warnings.warn(
            f"Backup {path} is unreadable ({problem}); set aside as {aside}, "
            "resuming from the previous backup or the start.",
            stacklevel=2,
        )
    return None


def backed_up_epoch(backup: str | None) -> int:
    """The number of loops (Keras epochs) a backup completed (0 for none)."""
    return 0 if backup is None else int(_read_state(backup)["epoch"])


def _backups(backup_dir):
    for name in os.listdir(backup_dir):
        match = _COMPLETE.match(name)
        if match:
            yield name, int(match.group(1))


def _read_state(backup):
    with open(os.path.join(backup, STATE_FILE)) as f:
        return json.load(f)


def _problem(backup):
    """Why `backup` cannot be restored, or `None` when it can."""
    try:
        state = _read_state(backup)
        int(state["epoch"])
        list(state["random_states"])
        with h5py.File(os.path.join(backup, WEIGHTS_FILE), "r") as weights:
            weights.visit(lambda name: None)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None
