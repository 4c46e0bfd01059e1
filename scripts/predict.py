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
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

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


def main(argv):
    del argv
    try:
        paths = find_images(_INPUT.value)
        predictor = Predictor.load(_MODEL_DIR.value)
        name = _DATASET.value or predictor.dataset
        if name is None:
            raise ValueError(
                f"No run config names the dataset of {_MODEL_DIR.value!r}; "
                "pass --dataset (it picks the palette)."
            )
        written = predict_files(
            predictor,
            paths,
            _OUTPUT_DIR.value,
            dataset_info(name),
            alpha=_ALPHA.value,
            write_cityscapes_label_ids=_CITYSCAPES.value,
        )
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"predict.py: error: {error}") from None
    print(
        f"wrote {len(written)} files for {len(paths)} images to "
        f"{_OUTPUT_DIR.value}"
    )


if __name__ == "__main__":
    app.run(main)
