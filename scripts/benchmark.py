"""Benchmarks: model cost and speed (Table 3), and the input pipeline.

Usage:
    python scripts/benchmark.py --backbone=resnet101 --num_classes=150 \
        --image_size=512 [--no_timing] [--json_out=rows.json]
    python scripts/benchmark.py --backbone=resnet18 --image_size=512 \
        --runs=5 --mixed_precision=mixed_bfloat16 --jit_compile
    python scripts/benchmark.py --pipeline [--crop_size=512] [--batch_size=16]
    python scripts/benchmark.py --models=denseaspp_densenet121,\
denseaspp_gff_dfp_densenet121,deeplabv3plus_gff_dfp_wrn38 --no_timing

For PSPNet (`psp`), + GFF (`gff`) and + GFF + DFP (`gff_dfp`), or any
`GFFNet` preset named in --models (`gff_keras.models.PRESETS`): parameters
(auxiliary head excluded, as Table 3), FLOPs (multiply-adds counted as 2,
from the frozen inference graph by TensorFlow's profiler: see
`gff_keras.benchmarks.count_flops`) and, unless --no_timing, forward
latency, training-step time, training images/s and peak memory (host RSS on
CPU, device memory on GPU), each variant in its own process, and the forward
latency of the frozen inference graph (`--frozen`, default on: what
`export_saved_model(..., freeze=True)` serves) in another fresh process.
Timed runs first measure the machine's convolution limit
(`gff_keras.benchmarks.measure_convolution_limit`: a 3x3 512->512
convolution on 2x64x64x512, forward with a variable and with a constant
filter, and forward+backward, each in a fresh process) and give each row's
convolution GFLOP/s (`conv_flops`, the work the probe measures) as a
fraction of the matching limit: forward against the variable filter's,
frozen forward against the constant filter's, training (3x the forward
convolution FLOPs per image) against forward+backward.
Prints the machine and a markdown table; --json_out writes the rows.
"""

import json
import multiprocessing
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from gff_keras.benchmarks import machine_description  # noqa: E402
from gff_keras.benchmarks.variants import VARIANTS  # noqa: E402
from gff_keras.models.presets import PRESETS  # noqa: E402

_PIPELINE = flags.DEFINE_bool(
    "pipeline", False, "Measure the training input pipeline alone."
)
_MODELS = flags.DEFINE_list(
    "models",
    ["psp", "gff", "gff_dfp"],
    "Variants psp, gff, gff_dfp (built on --backbone) and/or GFFNet preset "
    "names (their own backbone), e.g. deeplabv3plus_gff_dfp_wrn38.",
)
_BACKBONE = flags.DEFINE_string("backbone", "resnet101", "Backbone name.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 150, "Classes.")
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", 512, "Side of the square input (FLOPs and forward)."
)
_OUTPUT_STRIDE = flags.DEFINE_integer(
    "output_stride",
    None,
    "8, 16 or 32 (default: 8 for the variants, a preset's own for presets).",
)
_NO_TIMING = flags.DEFINE_bool("no_timing", False, "Parameters and FLOPs only.")
_RUNS = flags.DEFINE_integer("runs", 5, "Timed runs (median reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed runs first.")
_TRAIN_RUNS = flags.DEFINE_integer(
    "train_runs", None, "Timed training steps (default --runs; 0 skips)."
)
_TRAIN_BATCH = flags.DEFINE_integer(
    "train_batch_size", 2, "Training-step batch."
)
_TRAIN_SIZE = flags.DEFINE_integer(
    "train_image_size", None, "Training crop side; defaults to image_size."
)
_MIXED = flags.DEFINE_enum(
    "mixed_precision",
    "float32",
    ["float32", "mixed_float16", "mixed_bfloat16"],
    "Keras dtype policy.",
)
_JIT = flags.DEFINE_bool("jit_compile", False, "Compile with XLA.")
_FROZEN = flags.DEFINE_bool(
    "frozen",
    True,
    "Also time the frozen inference graph (a separate process per variant).",
)
_CROP = flags.DEFINE_integer("crop_size", 512, "Pipeline: crop size.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Pipeline: batch size.")
_FILES = flags.DEFINE_integer(
    "num_files", 32, "Pipeline: ADE20K-sized JPEGs to write."
)
_BATCHES = flags.DEFINE_integer(
    "batches", 10, "Pipeline: timed batches per run."
)
_JSON = flags.DEFINE_string("json_out", None, "Write results as JSON.")


def pipeline_row() -> dict:
    from gff_keras.data import build_dataset
    from gff_keras.data.throughput import measure_throughput
    from gff_keras.data.throughput import write_ade20k_like_files

    with tempfile.TemporaryDirectory() as root:
        data_dir = write_ade20k_like_files(root, count=_FILES.value)
        dataset = build_dataset(
            "ade20k",
            "train",
            data_dir=data_dir,
            training=True,
            crop_size=_CROP.value,
            batch_size=_BATCH.value,
            seed=0,
        ).repeat()
        rate = measure_throughput(dataset, batches=_BATCHES.value)
    cores = os.cpu_count()
    return {
        "benchmark": "pipeline",
        "dataset": "ade20k-sized JPEGs (512x683)",
        "crop_size": _CROP.value,
        "batch_size": _BATCH.value,
        "images_per_s": round(rate, 1),
        "images_per_s_per_core": round(rate / cores, 1),
        "cores": cores,
        "machine": machine_description(),
    }


def build_model(settings: dict):
    import keras

    from gff_keras import GFFNet

    keras.mixed_precision.set_global_policy(settings["mixed_precision"])
    name = settings["model"]
    output_stride = settings["output_stride"]
    if name in VARIANTS:
        return GFFNet(
            settings["num_classes"],
            backbone=settings["backbone"],
            output_stride=output_stride or 8,
            **VARIANTS[name],
        )
    # Presets whose backbone is a configured part (the authors' network)
    # take no output stride; the others keep theirs unless it is given.
    overrides = (
        {} if output_stride is None else {"output_stride": output_stride}
    )
    return GFFNet.from_preset(name, settings["num_classes"], **overrides)


def frozen_forward_row(settings: dict) -> dict:
    """The frozen graph's forward time; runs in a fresh process."""
    from gff_keras.benchmarks import measure_frozen_forward

    return measure_frozen_forward(
        build_model(settings),
        settings["image_size"],
        runs=settings["runs"],
        warmup=settings["warmup"],
    )


def model_row(settings: dict) -> dict:
    """One variant's row; timed rows run in a fresh process (peak memory)."""
    from gff_keras.benchmarks import count_flops
    from gff_keras.benchmarks import measure_model
    from gff_keras.models.presets import preset_arguments

    size = settings["image_size"]
    name = settings["model"]
    model = build_model(settings)
    backbone = settings["backbone"]
    if name not in VARIANTS:
        backbone = preset_arguments(name)["backbone"]
        if isinstance(backbone, dict):  # a configured part
            backbone = backbone["class_name"]
    row = {
        "model": name,
        "backbone": backbone,
        "image_size": size,
        "output_stride": max(model.backbone.feature_strides.values()),
        "num_classes": settings["num_classes"],
        "params": model.parameter_count(),
    }
    flops = count_flops(model, (1, size, size, 3), by_op_type=True)
    row["flops"] = flops["total"]
    row["conv_flops"] = flops["multiply_add"]
    if settings["timing"]:
        row.update(
            measure_model(
                model,
                size,
                train_batch_size=settings["train_batch_size"],
                train_image_size=settings["train_image_size"],
                runs=settings["runs"],
                warmup=settings["warmup"],
                train_runs=settings["train_runs"],
                jit_compile=settings["jit_compile"],
            )
        )
        row["gflops_per_s"] = round(
            row["conv_flops"] / row["forward_ms"] / 1e6, 2
        )
        row["mixed_precision"] = settings["mixed_precision"]
        row["jit_compile"] = settings["jit_compile"]
    row["machine"] = settings["machine"]
    return row


def limit_row(kind: str) -> dict:
    """One convolution limit; runs in a fresh process."""
    from gff_keras.benchmarks import measure_convolution_limit

    return measure_convolution_limit(kind)


def convolution_limits(context) -> dict:
    from gff_keras.benchmarks import LIMIT_KINDS

    limits = {}
    for kind in LIMIT_KINDS:
        with context.Pool(1) as pool:
            limits[kind] = pool.apply(limit_row, (kind,))
    return limits


def add_fractions(row: dict, settings: dict, limits: dict) -> None:
    """Each timing's convolution GFLOP/s as a fraction of the machine's limit.

    Only the convolution and matrix-product FLOPs (`conv_flops`) count, as
    in the probe, so BatchNorm and other element-wise work costs time
    without adding to the fraction.
    """
    conv_flops = row["conv_flops"]
    row["forward_of_limit"] = round(
        conv_flops
        / row["forward_ms"]
        / 1e6
        / limits["forward_variable"]["gflops_per_s"],
        3,
    )
    if "train_step_ms" in row:
        scale = (settings["train_image_size"] / settings["image_size"]) ** 2
        train_flops = 3 * conv_flops * scale * settings["train_batch_size"]
        row["train_gflops_per_s"] = round(
            train_flops / row["train_step_ms"] / 1e6, 2
        )
        row["train_of_limit"] = round(
            row["train_gflops_per_s"] / limits["training"]["gflops_per_s"], 3
        )
    if "frozen_forward_ms" in row:
        row["frozen_of_limit"] = round(
            conv_flops
            / row["frozen_forward_ms"]
            / 1e6
            / limits["forward_constant"]["gflops_per_s"],
            3,
        )


def model_rows() -> list:
    unknown = set(_MODELS.value) - set(VARIANTS) - set(PRESETS)
    if unknown:
        raise app.UsageError(
            f"--models: unknown {sorted(unknown)}; expected variants "
            f"{list(VARIANTS)} (on --backbone) or presets {list(PRESETS)}"
        )
    settings = {
        "backbone": _BACKBONE.value,
        "num_classes": _NUM_CLASSES.value,
        "image_size": _IMAGE_SIZE.value,
        "output_stride": _OUTPUT_STRIDE.value,
        "timing": not _NO_TIMING.value,
        "runs": _RUNS.value,
        "warmup": _WARMUP.value,
        "train_runs": _TRAIN_RUNS.value,
        "train_batch_size": _TRAIN_BATCH.value,
        "train_image_size": _TRAIN_SIZE.value or _IMAGE_SIZE.value,
        "mixed_precision": _MIXED.value,
        "jit_compile": _JIT.value,
        "frozen": _FROZEN.value,
        "machine": machine_description(),
    }
    # A fresh process per variant: TensorFlow keeps memory it once used,
    # so peak RSS would otherwise be the largest variant's so far.
    context = multiprocessing.get_context("spawn")
    limits = convolution_limits(context) if settings["timing"] else None
    rows = []
    for name in _MODELS.value:
        variant = {**settings, "model": name}
        if settings["timing"]:
            with context.Pool(1) as pool:
                row = pool.apply(model_row, (variant,))
        else:
            # Parameters and FLOPs need no fresh process (seconds of
            # TensorFlow import per row).
            row = model_row(variant)
        if settings["timing"] and settings["frozen"]:
            # A fresh process: oneDNN's primitive cache would otherwise
            # carry the Keras forward's weight layouts into the frozen graph.
            with context.Pool(1) as pool:
                frozen = pool.apply(frozen_forward_row, (variant,))
            row["frozen_forward_ms"] = frozen["frozen_forward_ms"]
            row["frozen_forward_ms_all"] = frozen["frozen_forward_ms_all"]
            row["frozen_gflops_per_s"] = round(
                row["conv_flops"] / row["frozen_forward_ms"] / 1e6, 2
            )
        if limits:
            row["convolution_limits"] = limits
            add_fractions(row, settings, limits)
        rows.append(row)
    return rows


def _percent(row, key):
    return f"{100 * row[key]:.0f}%" if key in row else "-"


def print_limits(limits: dict) -> None:
    print(
        "convolution limit (3x3, 512->512, 2x64x64x512, best call): "
        + ", ".join(
            f"{kind.replace('_', ' ')} {limit['gflops_per_s']:.0f} GFLOP/s"
            for kind, limit in limits.items()
        )
    )


def print_model_table(rows: list) -> None:
    base = next((r for r in rows if r["model"] == "psp"), None)
    timed = "forward_ms" in rows[0]
    header = "| model | backbone | params | GFLOPs | vs psp |"
    frozen = "frozen_forward_ms" in rows[0]
    if timed:
        header += (
            " forward ms | train step ms | images/s | GFLOP/s | peak MB |"
            " forward / limit | train GFLOP/s | train / limit |"
        )
    if frozen:
        header += " frozen forward ms | frozen GFLOP/s | frozen / limit |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for row in rows:
        overhead = "-"
        if base and base["backbone"] == row["backbone"]:
            overhead = f"{100 * (row['flops'] / base['flops'] - 1):+.1f}%"
        line = (
            f"| {row['model']} | {row['backbone']} | {row['params']:,} | "
            f"{row['flops'] / 1e9:.1f} | {overhead} |"
        )
        if timed:
            train = (
                f"{row['train_step_ms']:.0f} | {row['images_per_s']:.2f}"
                if "train_step_ms" in row
                else "- | -"
            )
            line += (
                f" {row['forward_ms']:.0f} | {train} | "
                f"{row['gflops_per_s']:.1f} | {row['peak_memory_mb']:.0f} |"
                f" {_percent(row, 'forward_of_limit')} |"
                f" {row.get('train_gflops_per_s', '-')} |"
                f" {_percent(row, 'train_of_limit')} |"
            )
        if frozen:
            line += (
                f" {row['frozen_forward_ms']:.0f} |"
                f" {row['frozen_gflops_per_s']:.1f} |"
                f" {_percent(row, 'frozen_of_limit')} |"
            )
        print(line)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if _PIPELINE.value:
        rows = [pipeline_row()]
        print(f"machine: {rows[0]['machine']}")
        print("| crop | batch | images/s | images/s per core |")
        print("|---|---|---|---|")
        for row in rows:
            print(
                f"| {row['crop_size']} | {row['batch_size']} | "
                f"{row['images_per_s']} | {row['images_per_s_per_core']} |"
            )
    else:
        rows = model_rows()
        print(
            f"machine: {rows[0]['machine']}; "
            f"{_IMAGE_SIZE.value}x{_IMAGE_SIZE.value}, output stride "
            f"{_OUTPUT_STRIDE.value}, {_NUM_CLASSES.value} classes"
        )
        if "convolution_limits" in rows[0]:
            print_limits(rows[0]["convolution_limits"])
        print_model_table(rows)
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    app.run(main)
