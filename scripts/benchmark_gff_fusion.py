"""Times GatedFullyFusion alone: the reference loop against the grouped sum.

Usage:
    python scripts/benchmark_gff_fusion.py [--image_size=512]
        [--output_stride=8] [--channels=256] [--runs=15] [--warmup=3]

Builds the fusion's inputs at a ResNet's feature shapes (batch 1, res2 at
1/4, res3..res5 at their strides for the output stride), and times, inside
`tf.function(jit_compile=False)`, the forward pass and the forward and
backward pass (`tf.GradientTape`, gradients for the inputs and the gate
weights), with the spatial sizes static and unknown (as in `GFFNet`, which
is built on images of unknown size). Runs of the two implementations
alternate, so that background load affects both alike. Prints the median
and the spread (min-max) in milliseconds as a markdown table.
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from gff_keras.backbones.dilated_resnet import STAGE_STRIDES  # noqa: E402
from gff_keras.backbones.dilated_resnet import STEM_STRIDE  # noqa: E402
from gff_keras.backbones.dilation import dilation_plan  # noqa: E402
from gff_keras.layers import GatedFullyFusion  # noqa: E402

_IMAGE = flags.DEFINE_integer("image_size", 512, "Image height and width.")
_OS = flags.DEFINE_integer("output_stride", 8, "Backbone output stride.")
_CHANNELS = flags.DEFINE_integer("channels", 256, "Fused channels.")
_GATES = flags.DEFINE_integer("gate_channels", 1, "Gate channels.")
_RUNS = flags.DEFINE_integer("runs", 15, "Timed runs per measurement.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed runs first.")
_JSON = flags.DEFINE_string("json_out", None, "Write results as JSON.")


def make_layers(levels, strides):
    fusions = {
        name: GatedFullyFusion(
            gate_channels=_GATES.value,
            implementation=name,
            level_strides=strides,
        )
        for name in ("reference", "grouped")
    }
    for layer in fusions.values():
        layer(levels)
    fusions["grouped"].set_weights(fusions["reference"].get_weights())
    return fusions


def make_functions(layer, specs):
    def forward(levels):
        return layer(levels)

    def forward_backward(levels):
        with tf.GradientTape() as tape:
            tape.watch(levels)
            fused = layer(levels)
            loss = tf.add_n([tf.reduce_sum(x) for x in fused])
        return tape.gradient(loss, [levels, layer.trainable_weights])

    return {
        "forward": tf.function(forward, input_signature=[specs]),
        "forward+backward": tf.function(
            forward_backward, input_signature=[specs]
        ),
    }


def run_once(function, levels):
    start = time.perf_counter()
    result = function(levels)
    # On CPU the call has finished; reading the results also waits on GPU.
    tf.nest.map_structure(lambda t: t.numpy(), result)
    return (time.perf_counter() - start) * 1e3


def main(argv):
    del argv
    plan = dilation_plan(_OS.value, STAGE_STRIDES, STEM_STRIDE)
    strides = [stage.feature_stride for stage in plan]
    sizes = [-(-_IMAGE.value // s) for s in strides]
    rng = np.random.default_rng(0)
    levels = [
        tf.constant(
            rng.normal(size=(1, n, n, _CHANNELS.value)).astype("float32")
        )
        for n in sizes
    ]
    fusions = make_layers(levels, strides)
    outputs = [fusions[name](levels) for name in ("reference", "grouped")]
    difference = max(
        float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(*outputs)
    )
    rows = []
    for shapes in ("static", "unknown"):
        specs = [
            tf.TensorSpec(
                x.shape if shapes == "static" else (1, None, None, x.shape[-1])
            )
            for x in levels
        ]
        functions = {
            name: make_functions(layer, specs)
            for name, layer in fusions.items()
        }
        for mode in ("forward", "forward+backward"):
            times = {name: [] for name in functions}
            for _ in range(_WARMUP.value):
                for name in functions:
                    run_once(functions[name][mode], levels)
            for _ in range(_RUNS.value):
                for name in functions:
                    times[name].append(run_once(functions[name][mode], levels))
            for name, values in times.items():
                rows.append(
                    {
                        "implementation": name,
                        "shapes": shapes,
                        "mode": mode,
                        "median_ms": float(np.median(values)),
                        "min_ms": float(np.min(values)),
                        "max_ms": float(np.max(values)),
                        "runs": len(values),
                    }
                )
    print(
        f"levels {[tuple(x.shape) for x in levels]}, strides {strides}, "
        f"gate_channels {_GATES.value}, max |reference - grouped| "
        f"{difference:.2e}, TensorFlow {tf.__version__}"
    )
    print("| shapes | mode | implementation | median ms | min-max ms |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['shapes']} | {row['mode']} | {row['implementation']} | "
            f"{row['median_ms']:.1f} | {row['min_ms']:.1f}-"
            f"{row['max_ms']:.1f} |"
        )
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    app.run(main)
