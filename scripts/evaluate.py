"""Scores a trained model on a dataset split: per-class IoU, mIoU, accuracy.

Usage:
    python scripts/evaluate.py --model_dir=runs/ade20k \
        [--dataset=ade20k] [--data_dir=/data] [--mode=whole|slide|ms_flip] \
        [--crop_size=512] [--stride=341] [--split=validation] \
        [--json_out=FILE] [--[no]freeze]

`--model_dir` is a run directory (written by scripts/train.py) or a .keras
file; the dataset defaults to the one in the run's config.json. The result
is printed as a table and written as JSON (by default to
`<model_dir>/evaluation_<split>_<mode>.json`; NaN IoUs, for classes in
neither labels nor predictions, are written as null). ADE20K also reports
the benchmark's score, (pixel accuracy + mIoU) / 2.

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

import inference_flags  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from gff_keras.evaluation.dataset_evaluation import evaluate_dataset  # noqa: E402
from gff_keras.models import load_model  # noqa: E402
from gff_keras.models import read_run_config  # noqa: E402

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
flags.mark_flag_as_required("model_dir")


def _json_ready(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def main(argv):
    del argv
    model_dir = _MODEL_DIR.value
    dataset = _DATASET.value
    if dataset is None:
        dataset = read_run_config(model_dir).get("data", {}).get("dataset")
    if dataset is None:
        raise app.UsageError(
            f"No config.json with data.dataset near {model_dir}; pass "
            "--dataset."
        )
    model = load_model(model_dir)
    freeze = _FREEZE.value
    if freeze is None:
        # Sliding windows run in a loop that freezing does not speed up.
        freeze = inference_flags.MODE.value != "slide" and (
            not tf.config.list_physical_devices("GPU")
        )
    result = evaluate_dataset(
        model,
        dataset,
        split=_SPLIT.value,
        data_dir=_DATA_DIR.value,
        **inference_flags.inference_options(),
        batch_size=_BATCH.value,
        num_examples=_NUM_EXAMPLES.value,
        synthetic_image_size=(_SYNTHETIC_SIZE.value,) * 2,
        freeze=freeze,
    )

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
    with open(json_out, "w") as f:
        json.dump(_json_ready(result), f, indent=2)
    print(f"wrote {json_out}")


if __name__ == "__main__":
    app.run(main)
