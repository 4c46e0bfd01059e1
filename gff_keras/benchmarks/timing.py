import resource
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from gff_keras.evaluation.frozen_graph import freeze_function
from gff_keras.keras_internals import frozen_graph_call_options
from gff_keras.keras_internals import op_determinism_off


def _timings_ms(function, runs: int, warmup: int) -> list[float]:
    """Each of `runs` timed calls after `warmup` untimed ones, in ms."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(round(1e3 * (time.perf_counter() - start), 2))
    return times


def peak_memory_mb() -> float:
    """Peak memory so far: the GPU's when there is one, else host RSS."""
    if tf.config.list_physical_devices("GPU"):
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        return peak / 2**20
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Timed as a default training run runs (see `op_determinism_off`).
@op_determinism_off()
def measure_model(
    model: keras.Model,
    image_size: int,
    batch_size: int = 1,
    train_batch_size: int = 2,
    train_image_size: int | None = None,
    runs: int = 5,
    warmup: int = 2,
    train_runs: int | None = None,
    jit_compile: bool = False,
    seed: int = 0,
    loss: keras.losses.Loss | None = None,
) -> dict:
    """Times inference and a training step of a segmentation model.

    Forward latency is `model(images, training=False)` inside one
    `tf.function` (XLA with `jit_compile`) on a `batch_size` batch. The
    training step is Keras' own compiled train function (`train_on_batch`:
    forward in training mode, the model's loss, backward pass, SGD with
    momentum update) on `train_batch_size` images of `train_image_size`.
    Each is the median of `runs` timed calls after `warmup` untimed ones
    (the first traces and compiles). Run one model per process when the
    peak memory matters: it is the process's peak so far. Op determinism
    is set aside while timing (and restored): after a deterministic run
    in the same process, TensorFlow's deterministic kernels and
    `DilatedConv2D`'s deterministic path made a small-crop GFFNet
    training step 4.6x as slow.

    Args:
        model: a segmentation model returning logits (e.g. `GFFNet`, whose
            `compile(optimizer=...)` supplies its loss); compiled here.
        image_size: int, side of the square forward input.
        batch_size: int, forward batch. Defaults to 1.
        train_batch_size: int, training batch. Defaults to 2.
        train_image_size: int, training crop side; defaults to
            `image_size`.
        runs: int, timed repetitions. Defaults to 5.
        warmup: int, untimed repetitions first. Defaults to 2.
        train_runs: int, timed training steps; defaults to `runs`; 0 skips
            the training step (and its keys in the result).
        jit_compile: bool, compile both with XLA.
        seed: int, for the random inputs.
        loss: the training loss, for models that do not supply their own
            in `compile` (other libraries' segmenters). Defaults to `None`.

    Returns:
        A dict with `forward_ms`, `train_step_ms` (medians), `images_per_s`
        (training images per second), `forward_ms_all` and
        `train_step_ms_all` (every timed call, in order: on a shared or
        busy machine the spread says how far to trust the median) and
        `peak_memory_mb` (without the training keys when `train_runs=0`).

    Example:

    >>> import gff_keras
    >>> model = gff_keras.GFFNet(4, backbone="resnet18", output_stride=32,
    ...                          fused_channels=16, context_channels=32)
    >>> row = measure_model(model, 64, runs=1, warmup=1)
    >>> sorted(row)  # doctest: +NORMALIZE_WHITESPACE
    ['forward_ms', 'forward_ms_all', 'images_per_s', 'peak_memory_mb',
     'train_step_ms', 'train_step_ms_all']
    """
    train_image_size = train_image_size or image_size
    rng = np.random.default_rng(seed)
    images = tf.constant(
        rng.normal(size=(batch_size, image_size, image_size, 3)),
        tf.float32,
    )
    train_images = tf.constant(
        rng.normal(
            size=(train_batch_size, train_image_size, train_image_size, 3)
        ),
        tf.float32,
    )
    forward = tf.function(
        lambda x: model(x, training=False), jit_compile=jit_compile
    )
    forward_ms = _timings_ms(lambda: forward(images).numpy(), runs, warmup)
    row = {
        "forward_ms": round(statistics.median(forward_ms), 2),
        "forward_ms_all": forward_ms,
    }
    train_runs = runs if train_runs is None else train_runs
    if train_runs:
        # From the traced output shape: no extra forward pass.
        traced = forward.get_concrete_function(images)
        num_classes = int(traced.structured_outputs.shape[-1])
        labels = tf.constant(
            rng.integers(
                0,
                num_classes,
                size=(train_batch_size, train_image_size, train_image_size),
            ),
            tf.int32,
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.001, momentum=0.9),
            loss=loss,
            # Timed without metrics (keras-hub tasks add one by default).
            metrics=[],
            jit_compile=jit_compile,
        )
        train_ms = _timings_ms(
            lambda: model.train_on_batch(train_images, labels),
            train_runs,
            warmup,
        )
        row["train_step_ms"] = round(statistics.median(train_ms), 2)
        row["train_step_ms_all"] = train_ms
        row["images_per_s"] = round(
            1e3 * train_batch_size / row["train_step_ms"], 3
        )
    row["peak_memory_mb"] = round(peak_memory_mb(), 1)
    return row


# Timed as a default training run runs (see `op_determinism_off`).
@op_determinism_off()
def measure_frozen_forward(
    model: keras.Model,
    image_size: int,
    batch_size: int = 1,
    runs: int = 5,
    warmup: int = 2,
    seed: int = 0,
) -> dict:
    """Times inference on the model's frozen graph (`freeze_function`).

    What an optimized CPU deployment runs (`export_saved_model(...,
    freeze=True)`): weights are constants, so TensorFlow's oneDNN
    convolutions reorder them once into their blocked layout. Call it in a
    process that has not yet run the model: oneDNN's primitive cache is
    keyed by shapes, not by whether the filter is constant, so whichever
    graph runs a convolution shape first decides its weight layout for
    both (`scripts/benchmark.py` uses a fresh process).

    Args:
        model: a segmentation model called as `model(images,
            training=False)`.
        image_size: int, side of the square input.
        batch_size: int. Defaults to 1.
        runs: int, timed repetitions. Defaults to 5.
        warmup: int, untimed repetitions first. Defaults to 2.
        seed: int, for the random input.

    Returns:
        A dict with `frozen_forward_ms` (the median),
        `frozen_forward_ms_all` (every timed call) and `peak_memory_mb`.

    Example:

    >>> import gff_keras
    >>> model = gff_keras.GFFNet(4, backbone="resnet18", output_stride=32,
    ...                          fused_channels=16, context_channels=32)
    >>> sorted(measure_frozen_forward(model, 64, runs=1, warmup=1))
    ['frozen_forward_ms', 'frozen_forward_ms_all', 'peak_memory_mb']
    """
    images = tf.constant(
        np.random.default_rng(seed).normal(
            size=(batch_size, image_size, image_size, 3)
        ),
        tf.float32,
    )
    forward = tf.function(lambda x: model(x, training=False))
    frozen = freeze_function(forward.get_concrete_function(images))

    def call():
        with frozen_graph_call_options():
            return frozen(images).numpy()

    frozen_ms = _timings_ms(call, runs, warmup)
    return {
        "frozen_forward_ms": round(statistics.median(frozen_ms), 2),
        "frozen_forward_ms_all": frozen_ms,
        "peak_memory_mb": round(peak_memory_mb(), 1),
    }
