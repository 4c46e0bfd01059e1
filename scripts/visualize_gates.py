"""Draws the paper's gate figure (Fig. 6/7) for images.

Usage:
    python scripts/visualize_gates.py --model_dir=runs/synthetic \
        --input='photos/*.png' --output_dir=gates
    python scripts/visualize_gates.py --model_dir=runs/synthetic \
        --dataset=synthetic --num_images=4 --output_dir=gates

For each image, `<stem>_gates.png` shows the image and one heat map per
gate level (G1 is the finest), then the prediction overlay and, per level,
the pixels whose predicted class changes when that gate is set to 0. Needs
a Keras model (run directory or `.keras`) with `fusion="gff"` or
`"gated_fpn"`; a SavedModel carries no gate outputs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from gff_keras.data import SyntheticScenes  # noqa: E402
from gff_keras.data import dataset_info  # noqa: E402
from gff_keras.models import load_model  # noqa: E402
from gff_keras.models import read_run_config  # noqa: E402
from gff_keras.visualization import find_images  # noqa: E402
from gff_keras.visualization import read_image  # noqa: E402
from gff_keras.visualization import write_gate_figures  # noqa: E402

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Run directory or .keras file.", required=True
)
_INPUT = flags.DEFINE_multi_string(
    "input",
    None,
    "Image file, folder or glob pattern; repeat for more. Without it, "
    "--dataset=synthetic scenes are generated.",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Folder for the PNGs.", required=True
)
_DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "Dataset the model was trained on (palette); defaults to the run "
    "config's. Without --input it must be 'synthetic'.",
)
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", 4, "Synthetic scenes to draw without --input."
)
_IMAGE_SIZE = flags.DEFINE_list(
    "image_size", ["192"], "Synthetic scene size: SIZE or HEIGHT,WIDTH."
)
_SEED = flags.DEFINE_integer("seed", 0, "Synthetic scene seed.")
_ALPHA = flags.DEFINE_float("alpha", 0.5, "Mask weight in the overlay.")


def _named_images(dataset):
    if _INPUT.value:
        paths = find_images(_INPUT.value)
        stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
        return list(zip(stems, paths)), read_image
    if dataset != "synthetic":
        raise ValueError(
            f"Only synthetic scenes can be generated; pass --input images "
            f"for dataset {dataset!r}."
        )
    size = [int(s) for s in _IMAGE_SIZE.value]
    scenes = SyntheticScenes(size * 2 if len(size) == 1 else size, _SEED.value)
    names = [
        (f"synthetic_{index:04d}", index) for index in range(_NUM_IMAGES.value)
    ]
    return names, lambda index: scenes.generate("validation", index)[0]


def main(argv):
    del argv
    try:
        dataset = _DATASET.value or read_run_config(_MODEL_DIR.value).get(
            "data", {}
        ).get("dataset")
        if dataset is None:
            raise ValueError(
                f"No run config names the dataset of {_MODEL_DIR.value!r}; "
                "pass --dataset."
            )
        names, read = _named_images(dataset)
        try:
            model = load_model(_MODEL_DIR.value)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{error} Gate maps need a Keras model; a SavedModel has no "
                "gate outputs."
            ) from None
        written = write_gate_figures(
            model,
            ((name, read(source)) for name, source in names),
            _OUTPUT_DIR.value,
            dataset_info(dataset),
            alpha=_ALPHA.value,
        )
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"visualize_gates.py: error: {error}") from None
    print(f"wrote {len(written)} gate figures to {_OUTPUT_DIR.value}")


if __name__ == "__main__":
    app.run(main)
