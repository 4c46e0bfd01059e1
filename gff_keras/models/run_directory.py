"""Reading what `scripts/train.py` leaves in a run directory.

A run directory (`--model_dir`) holds:

    config.json              the resolved experiment config
    model.keras              the final model (written at the end)
    checkpoints/best.keras   best validation mIoU so far
    checkpoints/latest.keras latest periodic checkpoint
    backup/                  resume state (kept, so a re-run does not restart)
    logs/                    TensorBoard event files
    metrics.json             validation results per evaluation
    export/<version>/        SavedModel for TensorFlow Serving
    visualizations/          prediction panels and gate figures (PNG)
"""

import json
import os

import keras

# Registers GFFNet and every part it is made of with Keras' deserializer.
from gff_keras.models import gffnet  # noqa: F401

CONFIG_FILE = "config.json"
FINAL_MODEL = "model.keras"
BEST_MODEL = os.path.join("checkpoints", "best.keras")
LATEST_MODEL = os.path.join("checkpoints", "latest.keras")
BACKUP_DIR = "backup"
LOG_DIR = "logs"
METRICS_FILE = "metrics.json"
EXPORT_DIR = "export"
VISUALIZATION_DIR = "visualizations"
# Order in which `load_model` looks for a model inside a run directory.
MODEL_FILES = (FINAL_MODEL, BEST_MODEL, LATEST_MODEL)


def model_path(path: str) -> str:
    """Resolves a `.keras` file or a run directory to a `.keras` file.

    Args:
        path: a `.keras` file, or a run directory holding one of
            `model.keras`, `checkpoints/best.keras`,
            `checkpoints/latest.keras` (first found wins).

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
    """
    return keras.models.load_model(model_path(path), compile=False)


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
