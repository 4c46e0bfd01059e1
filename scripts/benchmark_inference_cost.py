"""Inference cost against input size, and start-up cost (cold start).

Usage:
    python scripts/benchmark_inference_cost.py --backbone=resnet101 \
        --model=gff_dfp --num_classes=19 \
        --sizes=512x512,1024x1024,1024x2048 --slide=1024x2048:769:513 \
        [--keras] [--runs=2] [--json_out=cost.json]

For each whole-image size and each sliding-window setting
(`HxW:crop:stride`, Cityscapes' 769 crop and 513 stride by default), one
fresh process builds the model and times `predict_logits` on one image
through the frozen graph (`freeze_function`): set-up (trace + freeze),
first call, median of later calls, and the process's peak memory
(`gff_keras.benchmarks.measure_inference_cost`). `--keras` adds the same
rows with the weights read from variables (what `model.predict` runs), so
the frozen graph's first call can be compared with the unfrozen one.
Prints the machine and a markdown table; --json_out writes the rows.
"""

import json
import multiprocessing
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from gff_keras.benchmarks import machine_description  # noqa: E402
from gff_keras.benchmarks.variants import VARIANTS  # noqa: E402

_BACKBONE = flags.DEFINE_string("backbone", "resnet101", "Backbone name.")
_MODEL = flags.DEFINE_enum("model", "gff_dfp", list(VARIANTS), "Variant.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 19, "Classes.")
_SIZES = flags.DEFINE_list(
    "sizes", ["512x512", "1024x1024", "1024x2048"], "Whole-image HxW sizes."
)
_SLIDE = flags.DEFINE_list(
    "slide",
    ["1024x2048:769:513"],
    "Sliding-window settings HxW:crop:stride ('' for none).",
)
_KERAS = flags.DEFINE_bool(
    "keras", False, "Also time the unfrozen model (weights as variables)."
)
_RUNS = flags.DEFINE_integer("runs", 2, "Timed calls after the first.")
_JSON = flags.DEFINE_string("json_out", None, "Write results as JSON.")


def _shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise app.UsageError(
            f"expected HxW, e.g. 1024x2048; got {text!r}"
        ) from None
    if height <= 0 or width <= 0:
        raise app.UsageError(f"sizes must be positive; got {text!r}")
    return height, width


def settings_from_flags() -> list[dict]:
    base = {
        "backbone": _BACKBONE.value,
        "model": _MODEL.value,
        "num_classes": _NUM_CLASSES.value,
        "runs": _RUNS.value,
    }
    settings = [
        {**base, "mode": "whole", "image_shape": _shape(size)}
        for size in _SIZES.value
    ]
    for text in _SLIDE.value:
        parts = text.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts[1:]):
            raise app.UsageError(
                f"--slide expects HxW:crop:stride, e.g. 1024x2048:769:513; "
                f"got {text!r}"
            )
        settings.append(
            {
                **base,
                "mode": "slide",
                "image_shape": _shape(parts[0]),
                "crop_size": int(parts[1]),
                "stride": int(parts[2]),
            }
        )
    frozen_flags = (True, False) if _KERAS.value else (True,)
    return [{**s, "frozen": f} for s in settings for f in frozen_flags]


def cost_row(setting: dict) -> dict:
    """One row; runs in a fresh process (its own peak memory)."""
    from gff_keras import GFFNet
    from gff_keras.benchmarks import measure_inference_cost

    model = GFFNet(
        setting["num_classes"],
        backbone=setting["backbone"],
        **VARIANTS[setting["model"]],
    )
    row = measure_inference_cost(
        model,
        setting["image_shape"],
        mode=setting["mode"],
        crop_size=setting.get("crop_size"),
        stride=setting.get("stride"),
        frozen=setting["frozen"],
        runs=setting["runs"],
    )
    return {"model": setting["model"], "backbone": setting["backbone"], **row}


def print_table(rows: list[dict]) -> None:
    print(
        "| model | backbone | input | mode | weights | set-up s |"
        " first call s | forward s | peak MB |"
    )
    print("|" + "---|" * 9)
    for row in rows:
        height, width = row["image_shape"]
        mode = row["mode"]
        if mode == "slide":
            mode = f"slide {row['crop_size']}/{row['stride']}"
        print(
            f"| {row['model']} | {row['backbone']} | {height}x{width} |"
            f" {mode} | {'frozen' if row['frozen'] else 'variables'} |"
            f" {row['setup_ms'] / 1e3:.1f} | {row['first_call_ms'] / 1e3:.1f}"
            f" | {row['forward_ms'] / 1e3:.2f} | {row['peak_memory_mb']:.0f} |"
        )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    settings = settings_from_flags()
    context = multiprocessing.get_context("spawn")
    rows = []
    for setting in settings:
        with context.Pool(1) as pool:
            row = pool.apply(cost_row, (setting,))
        row["machine"] = machine_description()
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"machine: {rows[0]['machine']}")
    print_table(rows)
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    app.run(main)
