"""Converts a dataset's official files into the layout gff_keras reads.

Usage:
    python scripts/prepare_data.py --dataset=coco_stuff10k \
        --data_dir=/data/cocostuff-10k-v1.1

Only datasets whose official files cannot be read directly need it (see
docs/datasets.md); re-running skips finished files.
"""

from absl import app
from absl import flags

from gff_keras.data.prepare import CONVERTERS

_DATASET = flags.DEFINE_enum(
    "dataset", None, sorted(CONVERTERS), "Dataset to convert."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset root directory.")
flags.mark_flags_as_required(["dataset", "data_dir"])


def main(argv):
    del argv
    written = CONVERTERS[_DATASET.value](_DATA_DIR.value)
    print(f"{_DATASET.value}: wrote {written} files under {_DATA_DIR.value}")


if __name__ == "__main__":
    app.run(main)
