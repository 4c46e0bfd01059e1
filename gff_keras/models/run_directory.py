"""Reading and writing what `scripts/train.py` leaves in a run directory.

A run directory (`--model_dir`) holds:

    config.json              the resolved experiment config
    checkpoints/best.keras   the model at its best validation mIoU
    checkpoints/latest.keras the model after the last completed loop
    backup/                  resume state (kept, so a re-run does not restart)
    logs/                    TensorBoard event files
    metrics.json             validation results per evaluation
    bad_examples.json        what the data check found (files left out)
    export/<version>/        SavedModel for TensorFlow Serving
    visualizations/          prediction panels and gate figures (PNG)

The `.keras` checkpoints hold the model without optimizer state (half the
size; the backup holds what resuming needs). Runs of gff_keras 0.1 also
left a `model.keras`, which `load_model` still finds.
"""

import json
import os
import tempfile
import zipfile

import keras

from gff_keras import atomic_files
from gff_keras.keras_internals import optimizer_set_aside

# Registers GFFNet and every part it is made of with Keras' deserializer.
from gff_keras.models import gffnet  # noqa: F401

CONFIG_FILE = "config.json"
BEST_MODEL = os.path.join("checkpoints", "best.keras")
LATEST_MODEL = os.path.join("checkpoints", "latest.keras")
# The final model of runs written by gff_keras 0.1.
FINAL_MODEL = "model.keras"
BAD_EXAMPLES_FILE = "bad_examples.json"
BACKUP_DIR = "backup"
LOG_DIR = "logs"
METRICS_FILE = "metrics.json"
EXPORT_DIR = "export"
VISUALIZATION_DIR = "visualizations"
# Order in which `load_model` looks for a model inside a run directory: a
# run ends with (exports, reports) its best model.
MODEL_FILES = (BEST_MODEL, LATEST_MODEL, FINAL_MODEL)
# The weights inside a `.keras` archive.
WEIGHTS_MEMBER = "model.weights.h5"


def model_path(path: str) -> str:
    """Resolves a `.keras` file or a run directory to a `.keras` file.

    Args:
        path: a `.keras` file, or a run directory holding one of
            `checkpoints/best.keras`, `checkpoints/latest.keras`,
            `model.keras` (first found wins).

    Returns:
        The `.keras` file's path.

    Raises:
        FileNotFoundError: naming `path` and the files looked for.
    """
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        for name in MODEL_FILES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
    raise FileNotFoundError(
        f"No model at {path!r}: expected a .keras file or a run directory "
        f"holding one of {', '.join(MODEL_FILES)} (written by "
        "scripts/train.py)."
    )


def load_model(path: str) -> keras.Model:
    """Loads a trained model from a `.keras` file or a run directory.

    Args:
        path: see `model_path`.

    Returns:
        The `keras.Model` (a `GFFNet` for models this project trained).

    Raises:
        FileNotFoundError: when no model file is found.
        ValueError: when the file is not a Keras model (naming it).
    """
    path = model_path(path)
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        # Keras would report it as "File not found".
        raise ValueError(
            f"{path} is not a Keras model file (a .keras zip archive)."
        )
    try:
        return keras.models.load_model(path, compile=False)
    except (ValueError, zipfile.BadZipFile, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error) else ""
        raise ValueError(
            f"{path} is not a model saved by Keras 3 ({type(error).__name__}"
            f": {first_line})."
        ) from error


def load_weights(model: keras.Model, path: str) -> None:
    """Loads the weights of a `.keras` file into a built `model`.

    Does what `model.load_weights(path)` does, in a fraction of the time:
    Keras reads the weights file inside the archive in place, and every
    backward seek into a zip member reads it again from its start (8 s
    against under 1 s for a ResNet-18 GFFNet, AMD EPYC, 2026-12-01).
    Here the weights file is extracted first, as `keras.models.load_model`
    does.

    Args:
        model: a built model with the architecture saved in `path`.
        path: a `.keras` file.

    Raises:
        ValueError: when `path` is not a `.keras` archive holding weights
            (naming it), or when the weights do not fit `model`.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            with tempfile.TemporaryDirectory() as directory:
                weights = archive.extract(WEIGHTS_MEMBER, directory)
                model.load_weights(weights)
    except (zipfile.BadZipFile, KeyError) as error:
        raise ValueError(
            f"{path} is not a Keras model file holding {WEIGHTS_MEMBER} "
            f"({type(error).__name__}: {error})."
        ) from error


def save_model(model: keras.Model, path: str) -> None:
    """Saves `model` for inference and fine-tuning, atomically.

    The `.keras` file holds the architecture and weights without the
    optimizer's state or compile config, and appears complete or not at
    all (`gff_keras.atomic_files`), whenever the process is killed.

    Args:
        model: the model.
        path: the `.keras` file to write or replace.
    """
    with atomic_files.replaced_when_written(path) as partial:
        with optimizer_set_aside(model):
            model.save(partial)


def read_run_config(path: str) -> dict:
    """Returns the resolved config of a run directory, `{}` if it has none.

    Args:
        path: a run directory or a file inside one (e.g. its `model.keras`).

    Returns:
        The parsed `config.json`; `config["data"]["dataset"]` names the
        dataset the model was trained on.
    """
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    # checkpoints/*.keras live one level below the run directory.
    for candidate in (directory, os.path.dirname(directory)):
        config_file = os.path.join(candidate, CONFIG_FILE)
        if os.path.isfile(config_file):
            with open(config_file) as f:
                return json.load(f)
    return {}
