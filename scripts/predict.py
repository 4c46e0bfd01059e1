"""Segments images and writes colour-coded PNG masks and overlays.

Usage:
    python scripts/predict.py --model_dir=runs/cityscapes \
        --input='photos/*.jpg' --output_dir=predictions

`--model_dir` is a run directory, a `.keras` file or an exported
SavedModel (a directory with `saved_model.pb`, or one of numeric versions).
For every input `<stem>.jpg` it writes `<stem>_mask.png` (the dataset's
palette) and `<stem>_overlay.png`. With `--cityscapes_label_ids` it also
writes `cityscapes_label_ids/<stem>_labelIds.png` for the official
Cityscapes evaluation: point `CITYSCAPES_RESULTS` at that folder (the
evaluation refuses two PNGs of the same frame in its folder tree). Images
run whole, one at a time, at their own size.

An unreadable image (empty, truncated, not an image) is skipped with one
line naming it and the reason; the others are written. Exit status: 0 when
every image was written, 1 when some were skipped, 2 when nothing ran (a
wrong flag or model: one line saying which).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sys  # noqa: E402
import zipfile  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from cli_errors import fail  # noqa: E402

from gff_keras.data import dataset_info  # noqa: E402
from gff_keras.visualization import Predictor  # noqa: E402
from gff_keras.visualization import find_images  # noqa: E402
from gff_keras.visualization import predict_files  # noqa: E402

_MODEL_DIR = flags.DEFINE_string(
    "model_dir",
    None,
    "Run directory, .keras file or SavedModel directory.",
    required=True,
)
_INPUT = flags.DEFINE_multi_string(
    "input",
    None,
    "Image file, folder or glob pattern (JPEG/PNG); repeat for more.",
    required=True,
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Folder for the PNGs.", required=True
)
_DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "Dataset the model was trained on (palette, class names); defaults to "
    "the run config's.",
)
_ALPHA = flags.DEFINE_float("alpha", 0.5, "Mask weight in the overlays.")
_CITYSCAPES = flags.DEFINE_bool(
    "cityscapes_label_ids",
    False,
    "Also write Cityscapes label-id PNGs for the official evaluation.",
)
_ASSUME_FROZEN_WEIGHTS = flags.DEFINE_bool(
    "assume_frozen_weights",
    False,
    "Let oneDNN keep each convolution filter in its fast layout after the "
    "first image (TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1; this process never "
    "changes the weights): faster on AVX-512 CPUs, slower on AVX2-only "
    "ones (docs/serving.md).",
)


def load_predictor(path):
    """The `Predictor` at `--model_dir`, or one line saying what is wrong."""
    if not os.path.exists(path):
        fail(
            f"--model_dir={path} does not exist; expected a run directory, "
            "a .keras file or a SavedModel directory."
        )
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        # Keras reports such a file as "File not found".
        fail(
            f"--model_dir={path} is not a Keras model file (a .keras zip "
            "archive)."
        )
    try:
        return Predictor.load(path)
    except FileNotFoundError as error:
        fail(f"--model_dir={path}: {error}")
    except (OSError, ValueError, TypeError, KeyError) as error:
        fail(f"--model_dir={path}: cannot load a model: {error}")


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    info = None
    if _DATASET.value is not None:
        try:
            info = dataset_info(_DATASET.value)
        except ValueError as error:
            fail(f"--dataset={_DATASET.value}: {error}")
    try:
        paths = find_images(_INPUT.value)
    except FileNotFoundError as error:
        fail(f"--input: {error}")
    if _ASSUME_FROZEN_WEIGHTS.value:
        # Measured to take effect when set after TensorFlow's import, before
        # the model's first call (docs/benchmarks.md).
        os.environ["TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"] = "1"
    predictor = load_predictor(_MODEL_DIR.value)
    if info is None:
        if predictor.dataset is None:
            fail(
                f"no run config names the dataset of {_MODEL_DIR.value!r}; "
                "pass --dataset (it picks the palette)."
            )
        try:
            info = dataset_info(predictor.dataset)
        except ValueError as error:
            fail(f"the run config of {_MODEL_DIR.value!r}: {error}")
    skipped = []

    def skip(path, reason):
        skipped.append(path)
        print(f"predict.py: skipped {path}: {reason}", file=sys.stderr)

    try:
        written = predict_files(
            predictor,
            paths,
            _OUTPUT_DIR.value,
            info,
            alpha=_ALPHA.value,
            write_cityscapes_label_ids=_CITYSCAPES.value,
            on_unreadable=skip,
        )
    except ValueError as error:
        fail(error)
    except OSError as error:
        fail(f"--output_dir={_OUTPUT_DIR.value}: {error}")
    print(
        f"wrote {len(written)} files for {len(paths) - len(skipped)} images "
        f"to {_OUTPUT_DIR.value}"
    )
    if skipped:
        print(
            f"predict.py: skipped {len(skipped)} of {len(paths)} images "
            "(unreadable, named above)",
            file=sys.stderr,
        )
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)
