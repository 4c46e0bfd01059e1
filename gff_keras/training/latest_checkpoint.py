import keras

from gff_keras.models import run_directory


class LatestCheckpoint(keras.callbacks.Callback):
    """Saves the model after every training loop, for use while training.

    Unlike `keras.callbacks.ModelCheckpoint` the file holds no optimizer
    state (the resume backup has it) and is replaced atomically, so a kill
    while saving leaves the previous checkpoint intact
    (`gff_keras.models.run_directory.save_model`).

    Args:
        path: the `.keras` file, e.g. `<run>/checkpoints/latest.keras`.

    Example:

    >>> model.fit(data, epochs=10,
    ...           callbacks=[LatestCheckpoint("run/latest.keras")])
    ... # doctest: +SKIP
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        run_directory.save_model(self.model, self.path)
