"""Exports a trained model as a SavedModel for TensorFlow Serving.

Usage:
    python scripts/export.py --model_dir=runs/ade20k \
        [--export_dir=runs/ade20k/export] [--mode=whole|slide|ms_flip] \
        [--crop_size=512] [--stride=341] [--version=N] [--freeze]

Writes `<export_dir>/<version>/` (the next free integer by default) with the
`serving_default` (uint8 images) and `serving_image_bytes` (JPEG/PNG bytes)
signatures; docs/serving.md shows how to serve and query it. --freeze folds
the weights into the graph for faster CPU serving (no variables).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import inference_flags  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from cli_errors import fail  # noqa: E402

from gff_keras.export import export_saved_model  # noqa: E402
from gff_keras.models import load_model  # noqa: E402

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Run directory or .keras file."
)
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "Model base path; default <run directory>/export."
)
_VERSION = flags.DEFINE_integer(
    "version", None, "Version directory; default the next free integer."
)
_FREEZE = flags.DEFINE_bool(
    "freeze",
    False,
    "Fold the weights into the graph: faster CPU serving, no variables.",
)
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    model_dir = _MODEL_DIR.value
    export_dir = _EXPORT_DIR.value
    if export_dir is None:
        run_dir = (
            model_dir
            if os.path.isdir(model_dir)
            else (os.path.dirname(model_dir))
        )
        export_dir = os.path.join(run_dir, "export")
    try:
        model = load_model(model_dir)
        path = export_saved_model(
            model,
            export_dir,
            **inference_flags.inference_options(),
            version=_VERSION.value,
            freeze=_FREEZE.value,
        )
    except (OSError, ValueError) as error:
        # The messages name the model file, the version or the option.
        fail(error)
    print(f"exported SavedModel to {path}")


if __name__ == "__main__":
    app.run(main)
