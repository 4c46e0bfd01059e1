"""Converts a dataset's official files, or checks every file of a dataset.

Usage:
    python scripts/prepare_data.py --dataset=coco_stuff10k \
        --data_dir=/data/cocostuff-10k-v1.1
    python scripts/prepare_data.py --check --dataset=ade20k \
        --data_dir=/data/ADEChallengeData2016 [--splits=train,validation] \
        [--output=bad_examples_ade20k.json]

Without `--check` it converts: only datasets whose official files cannot be
read directly need it (see docs/datasets.md); re-running skips finished
files.

With `--check` it reads and decodes every image and label of the splits
(any dataset read from files), prints each bad example with its reason and
a summary line per split, and writes the list as JSON to `--output`
(default `bad_examples_<dataset>.json` in the current directory), which
`build_dataset(exclude=...)` and `scripts/evaluate.py --bad_examples` read.
Exit status: 0 when every example is good, 1 when bad examples were found
(and listed), 2 when the check could not run (one line saying why).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from cli_errors import fail  # noqa: E402

from gff_keras.data import check_dataset  # noqa: E402
from gff_keras.data import dataset_info  # noqa: E402
from gff_keras.data import write_bad_examples  # noqa: E402
from gff_keras.data.prepare import CONVERTERS  # noqa: E402
from gff_keras.data.registry import canonical_split  # noqa: E402
from gff_keras.data.sources import list_files  # noqa: E402

_DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "Dataset to convert (coco_stuff10k) or, with --check, to check (any "
    "dataset read from files).",
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset root directory.")
_CHECK = flags.DEFINE_bool(
    "check", False, "Read every file and list the bad examples."
)
_SPLITS = flags.DEFINE_list(
    "splits", ["train", "validation"], "--check: splits to read."
)
_OUTPUT = flags.DEFINE_string(
    "output",
    None,
    "--check: JSON list of bad examples; default "
    "bad_examples_<dataset>.json in the current directory.",
)


def check(name, data_dir):
    """Checks the splits; returns the exit status."""
    try:
        info = dataset_info(name)
    except ValueError as error:
        fail(f"--dataset={name}: {error}")
    try:
        splits = [canonical_split(split) for split in _SPLITS.value]
    except ValueError as error:
        fail(f"--splits={','.join(_SPLITS.value)}: {error}")
    files_on_disk = not name.startswith("tfds:") and info.name != "synthetic"
    if files_on_disk and data_dir is None:
        fail(
            f"--data_dir is required to check {name}; expected layout: "
            f"{info.layout}."
        )
    try:
        bad = check_dataset(name, data_dir, splits)
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    output = _OUTPUT.value or f"bad_examples_{name.replace(':', '_')}.json"
    try:
        write_bad_examples(output, bad, dataset=name, data_dir=data_dir)
    except OSError as error:
        fail(f"--output={output}: cannot write the list: {error}")
    if bad:
        print(f"\n{len(bad)} bad examples:")
        for example in bad:
            print(f"  {example.split}: {example.describe()}")
    print()
    for split in dict.fromkeys(splits):
        if not files_on_disk:
            print(f"{split}: nothing on disk to check ({name})")
            continue
        total = len(list_files(info, split, data_dir))
        count = sum(example.split == split for example in bad)
        print(f"{split}: {count} bad of {total} examples")
    print(f"wrote {output}")
    return 1 if bad else 0


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    name, data_dir = _DATASET.value, _DATA_DIR.value
    if name is None:
        fail("--dataset is required.")
    if _CHECK.value:
        raise SystemExit(check(name, data_dir))
    if name not in CONVERTERS:
        fail(
            f"--dataset={name}: nothing to convert (conversions: "
            f"{', '.join(sorted(CONVERTERS))}); pass --check to check its "
            "files."
        )
    if data_dir is None:
        fail("--data_dir is required.")
    try:
        written = CONVERTERS[name](data_dir)
    except (FileNotFoundError, ValueError) as error:
        fail(f"--data_dir={data_dir}: {error}")
    print(f"{name}: wrote {written} files under {data_dir}")


if __name__ == "__main__":
    app.run(main)
