import contextlib
import time

import keras
import numpy as np
import tensorflow as tf

from gff_keras.benchmarks.timing import peak_memory_mb
from gff_keras.evaluation.frozen_graph import freeze_function
from gff_keras.evaluation.inference import predict_logits
from gff_keras.keras_internals import frozen_graph_call_options
from gff_keras.keras_internals import op_determinism_off


# Timed as a default training run runs (see `op_determinism_off`).
@op_determinism_off()
def measure_inference_cost(
    model: keras.Model,
    image_shape: tuple[int, int],
    *,
    mode: str = "whole",
    crop_size: int | None = None,
    stride: int | None = None,
    frozen: bool = True,
    runs: int = 2,
    warmup: int = 0,
    seed: int = 0,
) -> dict:
    """Start-up cost, latency and peak memory of inference on one image.

    Runs `predict_logits(model, image, mode=..., output="logits")` on one
    image of `image_shape` in a `tf.function` traced for that shape, either
    as is (weights read from variables, like `model.predict`) or frozen
    (`freeze_function`: what `export_saved_model(..., freeze=True)` serves
    and `evaluate_dataset(..., freeze=True)` runs). Reports what a serving
    replica pays before its first answer (`setup_ms`: tracing, and
    freezing when frozen; `first_call_ms`: the first call, in which
    TensorFlow optimizes the graph and oneDNN prepares its kernels) and
    in steady state (`forward_ms`, the median of `runs` later calls after
    `warmup` more). Run each setting in a fresh process: peak memory is
    the process's, and oneDNN's primitive cache carries over within one.

    Args:
        model: a segmentation model called as `model(images,
            training=False)`, e.g. `GFFNet`.
        image_shape: `(height, width)` of the image.
        mode: `"whole"`, `"slide"` or `"ms_flip"` (see `predict_logits`).
        crop_size: sliding-window crop, for `"slide"` (and optionally
            `"ms_flip"`).
        stride: sliding-window stride.
        frozen: time the frozen graph rather than the model's variables.
            Defaults to `True`.
        runs: timed calls after the first. Defaults to `2`.
        warmup: untimed calls between the first and the timed ones.
            Defaults to `0`.
        seed: seed of the random image.

    Returns:
        A dict: `mode`, `image_shape`, `frozen`, `setup_ms`,
        `first_call_ms`, `forward_ms`, `forward_ms_all` and
        `peak_memory_mb`.

    Raises:
        ValueError: for arguments `predict_logits` refuses (an unknown
            mode, `"slide"` without `crop_size`, a stride above the crop).

    Example:

    >>> import gff_keras
    >>> model = gff_keras.GFFNet(4, backbone="resnet18", output_stride=32,
    ...                          fused_channels=16, context_channels=32)
    >>> cost = measure_inference_cost(model, (64, 96), runs=1)
    >>> cost["image_shape"], cost["frozen"]
    ([64, 96], True)
    """
    height, width = image_shape
    image = tf.constant(
        np.random.default_rng(seed).normal(size=(1, height, width, 3)),
        tf.float32,
    )
    start = time.perf_counter()
    forward = tf.function(
        lambda x: predict_logits(
            model,
            x,
            mode=mode,
            crop_size=crop_size,
            stride=stride,
            output="logits",
        )
    ).get_concrete_function(tf.TensorSpec(image.shape, tf.float32))
    if frozen:
        forward = freeze_function(forward)
    setup = time.perf_counter() - start

    call_options = (
        frozen_graph_call_options if frozen else contextlib.nullcontext
    )

    def call():
        begin = time.perf_counter()
        with call_options():
            forward(image).numpy()
        return time.perf_counter() - begin

    first = call()
    for _ in range(warmup):
        call()
    times = [call() for _ in range(runs)]
    return {
        "mode": mode,
        "image_shape": [height, width],
        "crop_size": crop_size,
        "stride": stride,
        "frozen": frozen,
        "setup_ms": round(1e3 * setup, 1),
        "first_call_ms": round(1e3 * first, 1),
        "forward_ms": round(1e3 * float(np.median(times)), 1),
        "forward_ms_all": [round(1e3 * t, 1) for t in times],
        "peak_memory_mb": round(peak_memory_mb(), 1),
    }
