"""Benchmarks: input pipeline throughput (model timings: performance issue).

Usage:
    python scripts/benchmark.py --pipeline [--crop_size=512] [--batch_size=16]

Prints the machine, images/s and images/s per CPU core, as a markdown table,
and writes JSON with --json_out.
"""

import json
import os
import platform
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from gff_keras.data import build_dataset  # noqa: E402
from gff_keras.data.throughput import measure_throughput  # noqa: E402
from gff_keras.data.throughput import write_ade20k_like_files  # noqa: E402

_PIPELINE = flags.DEFINE_bool(
    "pipeline", False, "Measure the training input pipeline alone."
)
_CROP = flags.DEFINE_integer("crop_size", 512, "Training crop size.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Batch size.")
_FILES = flags.DEFINE_integer("num_files", 32, "ADE20K-sized JPEGs to write.")
_BATCHES = flags.DEFINE_integer("batches", 10, "Timed batches per run.")
_JSON = flags.DEFINE_string("json_out", None, "Write results as JSON.")


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def pipeline_row() -> dict:
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


def main(argv):
    del argv
    if not _PIPELINE.value:
        raise app.UsageError(
            "Only --pipeline is implemented so far; model benchmarks come "
            "with the performance issue."
        )
    rows = [pipeline_row()]
    print(f"machine: {rows[0]['machine']}")
    print("| crop | batch | images/s | images/s per core |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['crop_size']} | {row['batch_size']} | "
            f"{row['images_per_s']} | {row['images_per_s_per_core']} |"
        )
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    app.run(main)
