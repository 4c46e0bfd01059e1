"""Converts every preset to LiteRT and runs it against the Keras model.

Usage:
    python scripts/litert_presets.py                       # all, 512x512
    python scripts/litert_presets.py --presets=gffnet_resnet101 \
        --image_size=1024 --json_out=/tmp/litert.json

Each preset is built with its architecture only (random weights; the
conversion does not depend on them), exported with
`gff_keras.export.export_litert` (float32), and the `.tflite` file is run
in LiteRT's interpreter (2 threads) on one synthetic scene scaled to the
size, beside the Keras model on the same image. A preset that does not
convert is reported with the converter's reason; the others go on. The
table in docs/serving.md comes from this script.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from gff_keras import GFFNet  # noqa: E402
from gff_keras.benchmarks.machine import machine_description  # noqa: E402
from gff_keras.data import SyntheticScenes  # noqa: E402
from gff_keras.data import normalize_images  # noqa: E402
from gff_keras.export import export_litert  # noqa: E402
from gff_keras.models import PRESETS  # noqa: E402

_PRESETS = flags.DEFINE_list(
    "presets", list(PRESETS), f"Presets, from: {', '.join(PRESETS)}."
)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 512, "Square input side.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 19, "Classes.")
_JSON = flags.DEFINE_string("json_out", None, "Write the results as JSON.")


def check_preset(name: str, size: int, num_classes: int, image) -> dict:
    """Exports one preset; returns sizes, times and agreement, or the error."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = GFFNet.from_preset(name, num_classes, backbone_weights=None)
    row = {"preset": name, "parameters": int(model.count_params())}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"{name}.tflite")
        started = time.perf_counter()
        try:
            export_litert(model, path, (size, size))
        # The converter's own reason is the result for this preset.
        except Exception as error:
            row["error"] = f"{type(error).__name__}: {error}"[:2000]
            return row
        row["conversion_s"] = round(time.perf_counter() - started, 1)
        row["megabytes"] = round(os.path.getsize(path) / 1e6, 1)
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=path, num_threads=2)
        segment = runner.get_signature_runner()
        segment(images=image[None])
        started = time.perf_counter()
        litert = segment(images=image[None])
        row["litert_ms"] = round(1e3 * (time.perf_counter() - started), 1)
    logits = model(normalize_images(image[None]), training=False)
    predictions = np.argmax(np.asarray(logits), axis=-1)
    row["pixels_equal"] = float(np.mean(predictions == litert["predictions"]))
    return row


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = [name for name in _PRESETS.value if name not in PRESETS]
    if unknown:
        choices = ", ".join(PRESETS)
        raise app.UsageError(f"--presets: unknown {unknown}; from {choices}.")
    size = _IMAGE_SIZE.value
    image, _ = SyntheticScenes((size, size)).generate("validation", 0)
    rows = []
    for name in _PRESETS.value:
        row = check_preset(name, size, _NUM_CLASSES.value, image)
        rows.append(row)
        if "error" in row:
            print(f"{name}: does not convert: {row['error']}", flush=True)
        else:
            print(
                f"{name}: {row['megabytes']} MB, converted in "
                f"{row['conversion_s']} s, {row['litert_ms']} ms in LiteRT, "
                f"{100 * row['pixels_equal']:.3f}% pixels equal to Keras",
                flush=True,
            )
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(
                {
                    "machine": machine_description(),
                    "image_size": size,
                    "presets": rows,
                },
                f,
                indent=2,
            )
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    app.run(main)
