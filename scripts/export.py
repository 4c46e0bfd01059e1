"""Exports a trained model for TensorFlow Serving or for LiteRT devices.

Usage:
    python scripts/export.py --model_dir=runs/ade20k \
        [--export_dir=runs/ade20k/export] [--mode=whole|slide|ms_flip] \
        [--crop_size=512] [--stride=341] [--version=N] [--freeze]
    python scripts/export.py --model_dir=runs/ade20k --format=litert \
        --image_size=512x512 [--quantize=none|float16|dynamic_int8]

The SavedModel format writes `<export_dir>/<version>/` (the next free
integer by default) with the `serving_default` (uint8 images) and
`serving_image_bytes` (JPEG/PNG bytes) signatures; docs/serving.md shows
how to serve and query it. --freeze folds the weights into the graph for
faster CPU serving (no variables). The LiteRT format writes
`<export_dir>/gffnet_<H>x<W>[_<quantize>].tflite` (or `--output`): uint8
images of that one size in, the same `predictions` and `confidence` out.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import inference_flags  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from cli_errors import fail  # noqa: E402

from gff_keras.export import export_litert  # noqa: E402
from gff_keras.export import export_saved_model  # noqa: E402
from gff_keras.export.litert_export import QUANTIZATIONS  # noqa: E402
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
_FORMAT = flags.DEFINE_enum(
    "format", "saved_model", ["saved_model", "litert"], "What to write."
)
_IMAGE_SIZE = flags.DEFINE_string(
    "image_size", None, "LiteRT: the input's HEIGHTxWIDTH, e.g. 512x1024."
)
_QUANTIZE = flags.DEFINE_enum(
    "quantize",
    "none",
    list(QUANTIZATIONS),
    "LiteRT: weight quantization.",
)
_OUTPUT = flags.DEFINE_string(
    "output", None, "LiteRT: the .tflite file (default in --export_dir)."
)
flags.mark_flag_as_required("model_dir")


def image_size():
    """`--image_size` as `(height, width)`, or one line saying why not."""
    text = _IMAGE_SIZE.value
    if text is None:
        fail("--format=litert needs --image_size=HEIGHTxWIDTH (one size).")
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        fail(f"--image_size={text}: expected HEIGHTxWIDTH, e.g. 512x1024.")
    return height, width


def export_litert_file(model, export_dir):
    height, width = image_size()
    suffix = "" if _QUANTIZE.value == "none" else f"_{_QUANTIZE.value}"
    output = _OUTPUT.value or os.path.join(
        export_dir, f"gffnet_{height}x{width}{suffix}.tflite"
    )
    return export_litert(model, output, (height, width), _QUANTIZE.value)


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
        if _FORMAT.value == "litert":
            path = export_litert_file(model, export_dir)
            print(f"exported LiteRT model to {path}")
            return
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
