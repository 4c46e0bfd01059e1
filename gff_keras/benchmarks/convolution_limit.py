import time

import tensorflow as tf

from gff_keras.evaluation.frozen_graph import freeze_function
from gff_keras.keras_internals import op_determinism_off

# The probe: a 3x3, 512 -> 512 convolution on [2, 64, 64, 512], the shape
# of a dilated ResNet's last stages at 512x512 input and batch 2.
PROBE_SHAPE = (2, 64, 64, 512)
LIMIT_KINDS = ("forward_variable", "forward_constant", "training")


def convolution_flops(shape=PROBE_SHAPE, kernel_size: int = 3) -> int:
    """FLOPs of one forward pass of the probe (multiply-adds counted as 2)."""
    batch, height, width, channels = shape
    return 2 * batch * height * width * channels * channels * kernel_size**2


# Timed as a default training run runs (see `op_determinism_off`).
@op_determinism_off()
def measure_convolution_limit(
    kind: str, runs: int = 5, warmup: int = 2, shape=PROBE_SHAPE
) -> dict:
    """The machine's own convolution speed, the ceiling for a model's.

    Times one 3x3 convolution with as many input as output channels and
    reports the best of `runs` (after `warmup` untimed calls): what this
    machine's TensorFlow kernels reach on the operation that dominates a
    dilated ResNet. Kinds:

    - `"forward_variable"`: the filter is a variable, as in
      `model(x)` and `model.predict`;
    - `"forward_constant"`: the filter is a graph constant, as in a frozen
      graph (`export_saved_model(..., freeze=True)`), which lets oneDNN
      reorder it once;
    - `"training"`: forward, then the gradients with respect to the input
      and the filter (3x the forward FLOPs), as in a training step.

    Run each kind in a fresh process: oneDNN caches its primitives by
    shape, so the kind that runs first decides the filter layout of the
    others (`scripts/benchmark.py` does).

    Args:
        kind: one of `LIMIT_KINDS`.
        runs: timed calls. Defaults to `5`.
        warmup: untimed calls first. Defaults to `2`.
        shape: `(batch, height, width, channels)` of the input.

    Returns:
        A dict: `kind`, `ms` (best call), `gflops` (per call) and
        `gflops_per_s`.

    Raises:
        ValueError: for an unknown kind.

    Example:

    >>> limit = measure_convolution_limit(
    ...     "forward_variable", runs=1, warmup=0, shape=(1, 8, 8, 16))
    >>> limit["gflops"]
    0.00029
    """
    if kind not in LIMIT_KINDS:
        raise ValueError(f"`kind` must be one of {LIMIT_KINDS}; got {kind!r}.")
    channels = shape[-1]
    # TF API: Keras has no graph freezing; the raw convolution keeps Keras'
    # layer overhead out of the ceiling.
    inputs = tf.random.stateless_normal(shape, seed=(0, 1))
    kernel = tf.Variable(
        tf.random.stateless_normal((3, 3, channels, channels), seed=(0, 2))
        * 0.01
    )
    upstream = tf.random.stateless_normal(shape, seed=(0, 3))

    @tf.function
    def forward(x):
        return tf.nn.conv2d(x, kernel, 1, "SAME")

    @tf.function
    def training(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d(x, kernel, 1, "SAME")
        return tape.gradient(y, [x, kernel], output_gradients=upstream)

    flops = convolution_flops(shape)
    if kind == "forward_variable":
        call = forward
    elif kind == "forward_constant":
        call = freeze_function(forward.get_concrete_function(inputs))
    else:
        call, flops = training, 3 * flops

    def run():
        outputs = tf.nest.flatten(call(inputs))
        for output in outputs:
            output.numpy()

    for _ in range(warmup):
        run()
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return {
        "kind": kind,
        "ms": round(1e3 * best, 2),
        "gflops": round(flops / 1e9, 5),
        "gflops_per_s": round(flops / best / 1e9, 1),
    }
