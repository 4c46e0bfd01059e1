"""Trains a GFFNet experiment: checkpoints, resume, evaluation, export.

Usage:
    python scripts/train.py --dataset=ade20k \
        --data_dir=/data/ADEChallengeData2016
    python scripts/train.py --experiment=cityscapes_gff_resnet101 \
        --data_dir=/data/cityscapes \
        --override model.init_from=runs/psp/checkpoints/latest.keras
    python scripts/train.py --dataset=synthetic   # CPU demo, no download
    python scripts/train.py --list_experiments

`--dataset=NAME` alone trains the paper's config for that dataset;
`--experiment=NAME` picks any registered experiment (see
`--list_experiments`). `--steps`, `--batch_size` (global), `--crop_size`,
`--backbone` and `--data_dir` are shortcuts for config fields; `--override
section.field=value` (repeatable) changes any other field and rejects
unknown keys. Re-running the same command with the same `--model_dir`
continues from the last completed loop of steps, whenever the run was
killed. Before a new run's first step every image and label of its splits
is read once (`--nocheck_data` skips that); bad files stop the run with
their list unless `--override data.skip_bad_examples=true`.

Errors a user can cause are one line naming the flag, key or file;
`--debug` shows the traceback instead.
"""

import math
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from cli_errors import fail  # noqa: E402

import experiments  # noqa: E402
from gff_keras.models import run_directory  # noqa: E402
from gff_keras.training import apply_overrides  # noqa: E402
from gff_keras.training import backed_up_epoch  # noqa: E402
from gff_keras.training import latest_backup  # noqa: E402
from gff_keras.training import run_experiment  # noqa: E402

_DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "Dataset name (ade20k, cityscapes, tfds:cityscapes, pascal_context, "
    "coco_stuff, coco_stuff10k, synthetic); alone, it picks the paper's "
    "experiment for it.",
)
_EXPERIMENT = flags.DEFINE_string(
    "experiment", None, "Registered experiment name (--list_experiments)."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset root directory.")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Run directory; defaults to runs/<experiment>."
)
_STEPS = flags.DEFINE_integer("steps", None, "Training steps.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "Global batch size (split over replicas)."
)
_CROP_SIZE = flags.DEFINE_integer("crop_size", None, "Training crop size.")
_BACKBONE = flags.DEFINE_string(
    "backbone", None, "resnet18, resnet34, resnet50, resnet101 or resnet152."
)
_OVERRIDE = flags.DEFINE_multi_string(
    "override",
    [],
    "section.field=value, e.g. optimizer.learning_rate=0.01 or "
    "runtime.mixed_precision=mixed_float16; repeatable.",
)
_LIST = flags.DEFINE_bool(
    "list_experiments", False, "Print the registered experiments and exit."
)
_CHECK_DATA = flags.DEFINE_bool(
    "check_data",
    None,
    "Read every image and label of the run's splits before its first step "
    "and stop on bad files (default: on; sets data.check).",
)
_DEBUG = flags.DEFINE_bool(
    "debug", False, "Show the traceback of an error instead of one line."
)


def resolve_config():
    """The experiment config the flags describe."""
    if _EXPERIMENT.value:
        config = experiments.get_experiment(_EXPERIMENT.value)
        if _DATASET.value:
            config.data.dataset = _DATASET.value
    elif _DATASET.value:
        config = experiments.experiment_for_dataset(_DATASET.value)
    else:
        raise ValueError("Pass --dataset=NAME or --experiment=NAME.")
    overrides = []
    if _STEPS.value is not None:
        steps = _STEPS.value
        # Keep loops and evaluations dividing the new step count.
        loop = math.gcd(steps, config.runtime.steps_per_loop)
        every = min(config.runtime.eval_every, steps) // loop * loop
        overrides += [
            f"schedule.steps={steps}",
            f"runtime.steps_per_loop={loop}",
            f"runtime.eval_every={every}",
        ]
    shortcuts = {
        "data.data_dir": _DATA_DIR.value,
        "data.batch_size": _BATCH_SIZE.value,
        "data.crop_size": _CROP_SIZE.value,
        "model.backbone.name": _BACKBONE.value,
        "data.check": _CHECK_DATA.value,
    }
    overrides += [f"{k}={v}" for k, v in shortcuts.items() if v is not None]
    return apply_overrides(config, overrides + _OVERRIDE.value)


def describe(config):
    """What the run trains, from the resolved config (not the preset's
    description, which overrides may have changed)."""
    arguments = config.model.resolved_arguments()
    backbone = arguments.get("backbone")
    if isinstance(backbone, dict):
        backbone = backbone.get("class_name")
    return (
        f"experiment {config.name}: {config.model.preset} with backbone "
        f"{backbone} on {config.data.dataset}, {config.schedule.steps} steps "
        f"of {config.data.batch_size} {config.data.crop_size}px crops"
    )


def print_summary(summary):
    if "final" not in summary:
        print(
            "worker finished; the chief (worker 0) evaluates, exports and "
            f"writes {summary['model_dir']}"
        )
        return
    reported, final = summary["reported"], summary["final"]
    print(f"\nvalidation at step {reported['step']}:")
    for name, iou in reported["per_class_iou"].items():
        print(f"  {name:20s} {'  n/a' if iou is None else f'{iou:6.3f}'}")
    if reported["step"] == final["step"]:
        which = "the last step's model, exported"
    else:
        which = (
            "the best model, exported; the last step, "
            f"{final['step']}, gave mIoU {final['mean_iou']:.3f}"
        )
    print(
        f"mIoU {reported['mean_iou']:.3f}, pixel accuracy "
        f"{reported['pixel_accuracy']:.3f} at step {reported['step']} "
        f"({which})"
    )
    if summary.get("images_per_second"):
        print(f"training speed: {summary['images_per_second']:.1f} images/s")
    if summary.get("export"):
        print(f"SavedModel: {summary['export']}")
    if summary.get("visualizations"):
        folder = os.path.dirname(summary["visualizations"][0])
        print(f"overlays and gate maps: {folder}/")
    print(f"run directory: {summary['model_dir']}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        # TensorFlow logs every collective all-reduce at INFO.
        logging.set_verbosity(logging.WARNING)
    if _LIST.value:
        for name in experiments.experiment_names():
            config = experiments.get_experiment(name)
            target = (
                f"{config.paper_miou} mIoU"
                if config.paper_miou is not None
                else "-"
            )
            print(f"{name:36s} {target:12s} {config.description}")
        return
    config = model_dir = None
    try:
        config = resolve_config()
        model_dir = _MODEL_DIR.value or os.path.join("runs", config.name)
        print(describe(config))
        summary = run_experiment(config, model_dir)
    except (KeyError, ValueError, OSError) as error:
        if _DEBUG.value:
            raise
        fail(error.args[0] if isinstance(error, KeyError) else error)
    except KeyboardInterrupt:
        if _DEBUG.value:
            raise
        # Nothing is lost before the last backup: one line, not a traceback.
        print(f"\ntrain.py: {interrupted(config, model_dir)}", file=sys.stderr)
        raise SystemExit(130) from None
    print_summary(summary)


def interrupted(config, model_dir):
    """Where an interrupted run stopped and the command that resumes it."""
    command = shlex.join(["python", *sys.argv])
    if model_dir is None:
        return "interrupted before the run began."
    backup = latest_backup(os.path.join(model_dir, run_directory.BACKUP_DIR))
    step = backed_up_epoch(backup) * config.runtime.steps_per_loop
    return f"interrupted; {model_dir} resumes from step {step} with: {command}"


if __name__ == "__main__":
    app.run(main)
