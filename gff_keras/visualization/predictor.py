import contextlib
import json
import os

import numpy as np
import tensorflow as tf

from gff_keras.data.pipeline import normalize_images
from gff_keras.keras_internals import frozen_graph_call_options
from gff_keras.models import run_directory

SAVED_MODEL_FILE = "saved_model.pb"
SERVING_SIGNATURE = "serving_default"


class Predictor:
    """Per-pixel class ids from a trained model, Keras or SavedModel.

    `Predictor.load(path)` accepts what training and export leave behind:

    - a `.keras` file, or a run directory holding `model.keras` or a
      checkpoint (see `gff_keras.models.load_model`): the Keras model runs
      on `normalize_images(image)`, one image at a time (sizes may differ);
    - a SavedModel directory (holding `saved_model.pb`), or a TensorFlow
      Serving base directory of numeric versions (the highest is used), or a
      run directory with only `export/<version>/`: its `serving_default`
      signature is called with `inputs` uint8 `[1, H, W, 3]` and its
      `predictions` int32 `[1, H, W]` output is used (SPEC 6 export
      contract; preprocessing lives inside the graph).

    Attributes:
        path: the resolved model path.
        model: the `keras.Model`, or `None` for a SavedModel.
        config: the run directory's `config.json` (`{}` when none is found).

    Example:

    >>> predictor = Predictor.load("runs/synthetic")  # doctest: +SKIP
    >>> predictor.predict(image).shape  # doctest: +SKIP
    (480, 640)
    """

    def __init__(self, path, model=None, serving=None, config=None):
        if (model is None) == (serving is None):
            raise ValueError("Pass exactly one of `model` and `serving`.")
        self.path = path
        self.model = model
        self._serving = serving
        # A SavedModel without variables holds a frozen graph.
        self._call_options = (
            frozen_graph_call_options
            if serving is not None and not serving.variables
            else contextlib.nullcontext
        )
        self.config = config or {}

    @classmethod
    def load(cls, path: str) -> "Predictor":
        """Loads a `.keras` file, a run directory or a SavedModel.

        Args:
            path: see the class docstring.

        Returns:
            A `Predictor`.

        Raises:
            FileNotFoundError: naming `path` and what was looked for.
            ValueError: for a SavedModel without the `serving_default`
                signature.
        """
        saved_model = _find_saved_model(path, include_export=False)
        if saved_model is None:
            try:
                keras_file = run_directory.model_path(path)
            except FileNotFoundError as error:
                saved_model = _find_saved_model(path, include_export=True)
                if saved_model is None:
                    raise FileNotFoundError(
                        f"{error} No SavedModel ({SAVED_MODEL_FILE}, "
                        "possibly in a numeric version folder or under "
                        f"{run_directory.EXPORT_DIR}/) either."
                    ) from None
            else:
                model = run_directory.load_model(keras_file)
                return cls(
                    keras_file,
                    model=model,
                    config=run_directory.read_run_config(keras_file),
                )
        loaded = tf.saved_model.load(saved_model)
        if SERVING_SIGNATURE not in loaded.signatures:
            raise ValueError(
                f"The SavedModel at {saved_model!r} has no "
                f"{SERVING_SIGNATURE!r} signature; it has "
                f"{sorted(loaded.signatures)}."
            )
        predictor = cls(
            saved_model,
            serving=loaded.signatures[SERVING_SIGNATURE],
            config=_config(saved_model),
        )
        # The signature only weakly references the loaded object's
        # variables; keep the object alive with it.
        predictor._saved_model = loaded
        return predictor

    @property
    def dataset(self):
        """The dataset named in the run config, or `None`."""
        return self.config.get("data", {}).get("dataset")

    @property
    def num_classes(self):
        """The Keras model's class count; `None` for a SavedModel."""
        if self.model is None:
            return None
        return int(self.model.outputs[0].shape[-1])

    def predict(self, image) -> np.ndarray:
        """Returns the class id of every pixel of one image.

        Args:
            image: uint8 RGB `[H, W, 3]`.

        Returns:
            int32 array `[H, W]`.
        """
        image = np.asarray(image, np.uint8)
        if self.model is not None:
            logits = self.model.predict(
                normalize_images(image[None]), verbose=0
            )
            return np.argmax(logits[0], axis=-1).astype(np.int32)
        with self._call_options():
            outputs = self._serving(inputs=tf.constant(image[None]))
        if "predictions" not in outputs:
            raise ValueError(
                f"The SavedModel at {self.path!r} returned "
                f"{sorted(outputs)}, not 'predictions'."
            )
        return np.asarray(outputs["predictions"])[0].astype(np.int32)


def _find_saved_model(path, include_export):
    """Returns the SavedModel directory under `path`, or `None`."""
    if not os.path.isdir(path):
        return None
    if os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    bases = [path]
    if include_export:
        bases.append(os.path.join(path, run_directory.EXPORT_DIR))
    for base in bases:
        if not os.path.isdir(base):
            continue
        # TensorFlow Serving's layout: numeric versions, the highest serves.
        versions = sorted(
            (int(name), name)
            for name in os.listdir(base)
            if name.isdigit()
            and os.path.isfile(os.path.join(base, name, SAVED_MODEL_FILE))
        )
        if versions:
            return os.path.join(base, versions[-1][1])
    return None


def _config(saved_model):
    """The run config above `<run>/export/<version>/` or a base directory."""
    directory = os.path.abspath(saved_model)
    for _ in range(3):
        config_file = os.path.join(directory, run_directory.CONFIG_FILE)
        if os.path.isfile(config_file):
            with open(config_file) as f:
                return json.load(f)
        directory = os.path.dirname(directory)
    return {}
