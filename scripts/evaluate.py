"""Scores a trained model on a dataset split: per-class IoU, mIoU, accuracy.

Usage:
    python scripts/evaluate.py --model_dir=runs/ade20k \
        [--dataset=ade20k] [--data_dir=/data] [--mode=whole|slide|ms_flip] \
        [--crop_size=512] [--stride=341] [--split=validation] \
        [--json_out=FILE] [--[no]freeze] [--bad_examples=FILE]

`--model_dir` is a run directory (written by scripts/train.py) or a .keras
file; the dataset defaults to the one in the run's config.json. The result
is printed as a table and written as JSON (by default to
`<model_dir>/evaluation_<split>_<mode>.json`; NaN IoUs, for classes in
neither labels nor predictions, are written as null). ADE20K also reports
the benchmark's score, (pixel accuracy + mIoU) / 2.

Bad examples (unreadable images or labels, wrong label sizes or values)
are left out, each named on one line with its reason, and the scores cover
the others. By default every file of the split is checked first
(`gff_keras.data.check_dataset`), and the entries of the run directory's
`bad_examples.json` are left out too; `--bad_examples=FILE` reuses a list
written by `scripts/prepare_data.py --check` (or a run directory) instead
of checking. Exit status: 0 when every example was scored, 1 when some
were left out (the JSON is written first), 2 when nothing was evaluated (a
wrong flag, model or data directory: one line saying which).

Without a GPU, outside `--mode=slide`, the model is evaluated from a
frozen copy of its graph
(`evaluate_dataset(..., freeze=True)`), which TensorFlow's oneDNN CPU
convolutions run 1.3-1.4x faster per image (after a one-off 10-30 s to
freeze); `--nofreeze` turns that off and `--freeze` forces it on.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import zipfile  # noqa: E402

import inference_flags  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from cli_errors import fail  # noqa: E402

from gff_keras.data import check_dataset  # noqa: E402
from gff_keras.data import dataset_info  # noqa: E402
from gff_keras.data import read_bad_examples  # noqa: E402
from gff_keras.data.registry import canonical_split  # noqa: E402
from gff_keras.data.sources import list_files  # noqa: E402
from gff_keras.data.sources import normalize_path  # noqa: E402
from gff_keras.evaluation.dataset_evaluation import evaluate_dataset  # noqa: E402
from gff_keras.models import load_model  # noqa: E402
from gff_keras.models import read_run_config  # noqa: E402
from gff_keras.models.run_directory import BAD_EXAMPLES_FILE  # noqa: E402
from gff_keras.models.run_directory import model_path  # noqa: E402

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Run directory or .keras file."
)
_DATASET = flags.DEFINE_string(
    "dataset", None, "Dataset name; defaults to the run config's dataset."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset root directory.")
_SPLIT = flags.DEFINE_string("split", "validation", "Split to score.")
_BATCH = flags.DEFINE_integer("batch_size", 1, "Images per batch.")
_JSON = flags.DEFINE_string(
    "json_out",
    None,
    "JSON file; default <model_dir>/evaluation_<split>_<mode>.json.",
)
_NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", None, "Synthetic only: number of scenes."
)
_SYNTHETIC_SIZE = flags.DEFINE_integer(
    "synthetic_image_size", 192, "Synthetic only: scene height and width."
)
_FREEZE = flags.DEFINE_bool(
    "freeze",
    None,
    "Predict from a frozen graph (faster on CPU). Default: on when no GPU "
    "is visible and --mode is not slide.",
)
_BAD_EXAMPLES = flags.DEFINE_string(
    "bad_examples",
    None,
    "JSON list of bad examples to leave out (scripts/prepare_data.py "
    "--check writes one), instead of checking the split's files. Default: "
    "check, and also leave out the entries of <model_dir>/bad_examples.json.",
)
flags.mark_flag_as_required("model_dir")


def _json_ready(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def resolve_model(path):
    """The `.keras` file of `--model_dir`, or one line saying what is wrong."""
    if not os.path.exists(path):
        fail(
            f"--model_dir={path} does not exist; expected a run directory "
            "(written by scripts/train.py) or a .keras file."
        )
    try:
        keras_file = model_path(path)
    except FileNotFoundError as error:
        fail(f"--model_dir={path}: {error}")
    # Checked before config.json is read: a wrong model path must not be
    # reported as a missing --dataset.
    if keras_file.endswith(".h5"):
        return keras_file
    if not keras_file.endswith(".keras") or not zipfile.is_zipfile(keras_file):
        fail(
            f"--model_dir={path}: {keras_file} is not a Keras model file "
            "(a .keras zip archive)."
        )
    return keras_file


def resolve_dataset(keras_file):
    """The dataset name and `DatasetInfo`, from --dataset or config.json."""
    name = _DATASET.value
    origin = f"--dataset={name}"
    if name is None:
        try:
            config = read_run_config(keras_file)
        except (OSError, ValueError) as error:
            fail(f"cannot read the run config beside {keras_file}: {error}")
        name = config.get("data", {}).get("dataset")
        origin = f"data.dataset={name} in the run config of {keras_file}"
    if name is None:
        fail(
            f"--dataset is required: no config.json with data.dataset beside "
            f"{keras_file}."
        )
    try:
        return name, dataset_info(name)
    except ValueError as error:
        fail(f"{origin}: {error}")


def run_bad_examples(keras_file):
    """The run directory's bad-examples file, or `None`."""
    folder = os.path.dirname(os.path.abspath(keras_file))
    # checkpoints/*.keras live one level below the run directory.
    for candidate in (folder, os.path.dirname(folder)):
        path = os.path.join(candidate, BAD_EXAMPLES_FILE)
        if os.path.isfile(path):
            return path
    return None


def read_list(path, origin):
    try:
        return read_bad_examples(path)
    except (OSError, ValueError) as error:
        fail(f"{origin}: {error}")


def bad_examples(name, data_dir, split, keras_file):
    """The split's bad examples: from --bad_examples, or checked now (plus
    the run directory's list)."""
    if _BAD_EXAMPLES.value is not None:
        path = _BAD_EXAMPLES.value
        found = read_list(path, f"--bad_examples={path}")
    else:
        try:
            found = check_dataset(name, data_dir, [split])
        except (FileNotFoundError, ValueError) as error:
            fail(error)
        run_list = run_bad_examples(keras_file)
        if run_list is not None:
            found += read_list(run_list, f"the run directory's {run_list}")
    unique = {}
    for example in found:
        if example.split == split:
            unique.setdefault(normalize_path(example.image), example)
    return list(unique.values())


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    model_dir = _MODEL_DIR.value
    keras_file = resolve_model(model_dir)
    dataset, info = resolve_dataset(keras_file)
    try:
        split = canonical_split(_SPLIT.value)
    except ValueError as error:
        fail(f"--split={_SPLIT.value}: {error}")
    data_dir = _DATA_DIR.value
    on_disk = not dataset.startswith("tfds:") and info.name != "synthetic"
    if on_disk and data_dir is None:
        fail(
            f"--data_dir is required for {dataset}; expected layout: "
            f"{info.layout}."
        )
    if on_disk and not os.path.isdir(data_dir):
        fail(f"--data_dir={data_dir} is not a directory.")
    try:
        model = load_model(keras_file)
    except (OSError, ValueError, TypeError, KeyError) as error:
        fail(f"--model_dir={model_dir}: cannot load {keras_file}: {error}")
    bad = bad_examples(dataset, data_dir, split, keras_file)
    for example in bad:
        print(f"evaluate.py: skipping {example.describe()}", file=sys.stderr)
    freeze = _FREEZE.value
    if freeze is None:
        # Sliding windows run in a loop that freezing does not speed up.
        freeze = inference_flags.MODE.value != "slide" and (
            not tf.config.list_physical_devices("GPU")
        )
    try:
        result = evaluate_dataset(
            model,
            dataset,
            split=split,
            data_dir=data_dir,
            **inference_flags.inference_options(),
            batch_size=_BATCH.value,
            num_examples=_NUM_EXAMPLES.value,
            synthetic_image_size=(_SYNTHETIC_SIZE.value,) * 2,
            freeze=freeze,
            # Files the check did not see (a reused list) are skipped with
            # a warning naming them, not stopped on.
            skip_bad_examples=on_disk,
            exclude=[example.image for example in bad],
        )
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    result["bad_examples"] = [
        {"image": b.image, "label": b.label, "reason": b.reason} for b in bad
    ]

    print(
        f"\n{dataset} {result['split']} ({inference_flags.MODE.value}), "
        f"{result['num_images']} images"
    )
    print(f"{'class':24s}   IoU")
    for name, iou in result["per_class_iou"].items():
        print(f"{name:24s} {'  n/a' if math.isnan(iou) else f'{iou:6.4f}'}")
    print(f"{'mIoU':24s} {result['mean_iou']:6.4f}")
    print(f"{'pixel accuracy':24s} {result['pixel_accuracy']:6.4f}")
    print(f"{'mean accuracy':24s} {result['mean_accuracy']:6.4f}")
    if "ade20k_score" in result:
        print(f"{'ADE20K score':24s} {result['ade20k_score']:6.4f}")

    json_out = _JSON.value
    if json_out is None:
        run_dir = (
            model_dir
            if os.path.isdir(model_dir)
            else (os.path.dirname(model_dir))
        )
        name = f"evaluation_{result['split']}_{inference_flags.MODE.value}"
        json_out = os.path.join(run_dir, f"{name}.json")
    try:
        with open(json_out, "w") as f:
            json.dump(_json_ready(result), f, indent=2)
    except OSError as error:
        fail(f"--json_out={json_out}: {error}")
    print(f"wrote {json_out}")

    skipped = len(bad)
    if on_disk and not _NUM_EXAMPLES.value:
        listed = len(list_files(info, split, data_dir))
        # Bad files missing from a reused list: the pipeline skipped them.
        skipped = listed - result["num_images"]
    if skipped:
        print(
            f"evaluate.py: {skipped} bad examples left out (named above); "
            f"the scores cover the other {result['num_images']} images",
            file=sys.stderr,
        )
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)
