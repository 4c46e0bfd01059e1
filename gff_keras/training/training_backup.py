import json
import os

import keras

RANDOM_STATE_FILE = "random_state.json"


class TrainingBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that also restores the layers' random state.

    Keras' backup saves weights and optimizer state, but not the state of
    the layers' `SeedGenerator`s (dropout), which are variables outside
    `model.weights`. Without them a resumed run draws the dropout masks of
    its first steps again, and its weights drift from an uninterrupted
    run's. This callback writes those states next to the backup after each
    loop and reloads them when training resumes.

    Args:
        backup_dir: str, where the backup lives.
        **kwargs: other `keras.callbacks.BackupAndRestore` arguments.

    Example:

    >>> backup = TrainingBackup("/tmp/run/backup", double_checkpoint=True)
    """

    def _random_states(self):
        weights = {id(w) for w in self.model.weights}
        # Seed generator states are the variables that are not weights
        # (metrics live in the compiled metrics, not in the layers).
        return [v for v in self.model.variables if id(v) not in weights]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        path = os.path.join(self.backup_dir, RANDOM_STATE_FILE)
        if not os.path.exists(path):
            return
        with open(path) as f:
            saved = json.load(f)
        variables = self._random_states()
        # Matched by position: generator names get a per-process suffix.
        if len(saved) != len(variables):
            raise ValueError(
                f"{path} holds {len(saved)} random states; the model has "
                f"{len(variables)}. Was the backup written by another model?"
            )
        for variable, state in zip(variables, saved):
            variable.assign(state)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            return
        states = [v.numpy().tolist() for v in self._random_states()]
        path = os.path.join(self.backup_dir, RANDOM_STATE_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(states, f)
        os.replace(path + ".tmp", path)
