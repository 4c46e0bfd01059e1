import json
import os
import re
import shutil
import warnings
import zipfile

import h5py
import keras

from gff_keras import atomic_files
from gff_keras.keras_internals import optimizer_set_aside
from gff_keras.models import run_directory

WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "state.json"
FINAL_MODEL_FILE = "model.keras"
# `step-<n>`: weights and optimizer state; `step-<n>-finished`: the run
# ended at step n and its final model is a `.keras` file it names.
_COMPLETE = re.compile(r"^step-(\d+)(-finished)?$")
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

    When the run has finished, `finish_backup` replaces the last backup
    by a small one naming the final `.keras` model, so a finished run does
    not keep its weights twice.

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
        state = _read_state(self.restore_from)
        if "final_model" in state:
            # Nothing is left to train: the weights are all that matter.
            with optimizer_set_aside(self.model):
                run_directory.load_weights(
                    self.model, _final_model(self.restore_from)
                )
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.restore_from, WEIGHTS_FILE))
        saved = state["random_states"]
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
        step = int(self.model.optimizer.iterations.numpy())
        complete = os.path.join(self.backup_dir, f"step-{step:09d}")
        # Only a hand-made or set-aside state can hold this step already;
        # the backup written now is the one to resume from.
        shutil.rmtree(complete, ignore_errors=True)
        with atomic_files.replaced_when_written(complete) as partial:
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
        _remove_backups_other_than(self.backup_dir, complete)


def finish_backup(backup_dir: str, final_model: str) -> None:
    """Replaces the last backup of a finished run by one holding its model.

    Call it once training has ended and `final_model` holds the weights of
    the last step: a re-run then restores those weights without the
    optimizer state, which is no longer needed and would double the run's
    size on disk. The backup hard-links `final_model` (no second copy on
    disk, and deleting or replacing `final_model` later does not touch
    it); where the file system has no hard links it names the file
    instead.

    Args:
        backup_dir: the `TrainingBackup`'s directory.
        final_model: the `.keras` file with the final weights, on the same
            file system.

    Raises:
        FileNotFoundError: when `backup_dir` has no backup to finish.
    """
    last = latest_backup(backup_dir)
    if last is None:
        raise FileNotFoundError(f"{backup_dir} holds no backup to finish.")
    state = _read_state(last)
    if "final_model" in state:
        return
    complete = os.path.join(backup_dir, os.path.basename(last) + "-finished")
    with atomic_files.replaced_when_written(complete) as partial:
        os.makedirs(partial)
        try:
            os.link(final_model, os.path.join(partial, FINAL_MODEL_FILE))
            state["final_model"] = FINAL_MODEL_FILE
        except OSError:
            state["final_model"] = os.path.relpath(final_model, complete)
        with open(os.path.join(partial, STATE_FILE), "w") as f:
            json.dump(state, f)
    _remove_backups_other_than(backup_dir, complete)


def _remove_backups_other_than(backup_dir, kept):
    for name, _ in _backups(backup_dir):
        if name != os.path.basename(kept):
            shutil.rmtree(os.path.join(backup_dir, name), ignore_errors=True)


def latest_backup(backup_dir: str) -> str | None:
    """The newest complete, readable backup in `backup_dir`, or `None`.

    Leftovers of a backup that was being written when the run was killed
    are deleted. A complete backup that cannot be read is renamed to
    `unreadable-<name>` with a warning naming it, and the next older one
    is tried; a finished run's backup whose model cannot be read is an
    error (there is nothing older to fall back on).

    Args:
        backup_dir: a `TrainingBackup`'s directory.

    Returns:
        The backup's directory, for `TrainingBackup(restore_from=...)`.

    Raises:
        ValueError: for a finished run's backup whose model is unreadable.
    """
    if not os.path.isdir(backup_dir):
        return None
    atomic_files.remove_partial_files(backup_dir)
    # Newest first; of one step, the finished backup first.
    for name, _ in sorted(
        _backups(backup_dir), key=lambda b: b[1], reverse=True
    ):
        path = os.path.join(backup_dir, name)
        problem = _problem(path)
        if problem is None:
            return path
        if name.endswith("-finished"):
            # Nothing older is kept: falling back would retrain silently.
            raise ValueError(
                f"{path} records a finished run whose final model cannot "
                f"be read ({problem}). Restore it, or use a new model_dir "
                "to train again."
            )
        aside = os.path.join(backup_dir, _SET_ASIDE_PREFIX + name)
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(path, aside)
        warnings.warn(
            f"Backup {path} is unreadable ({problem}); set aside as {aside}, "
            "resuming from the previous backup or the start.",
            stacklevel=2,
        )
    return None


def is_finished_backup(backup: str | None) -> bool:
    """Whether `backup` was written by `finish_backup`."""
    return backup is not None and "final_model" in _read_state(backup)


def backed_up_epoch(backup: str | None) -> int:
    """The number of loops (Keras epochs) a backup completed (0 for none)."""
    return 0 if backup is None else int(_read_state(backup)["epoch"])


def _backups(backup_dir):
    """`(name, (step, finished))` of every complete backup."""
    for name in os.listdir(backup_dir):
        match = _COMPLETE.match(name)
        if match:
            yield name, (int(match.group(1)), match.group(2) is not None)


def _final_model(backup):
    relative = _read_state(backup)["final_model"]
    return os.path.normpath(os.path.join(backup, relative))


def _read_state(backup):
    with open(os.path.join(backup, STATE_FILE)) as f:
        return json.load(f)


def _problem(backup):
    """Why `backup` cannot be restored, or `None` when it can."""
    try:
        state = _read_state(backup)
        int(state["epoch"])
        list(state["random_states"])
        if "final_model" in state:
            with zipfile.ZipFile(_final_model(backup)) as model_file:
                bad = model_file.testzip()
            if bad is not None:
                raise ValueError(f"{_final_model(backup)}: {bad} is damaged")
            return None
        with h5py.File(os.path.join(backup, WEIGHTS_FILE), "r") as weights:
            weights.visit(lambda name: None)
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        zipfile.BadZipFile,
    ) as error:
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None
