import time

import keras
import numpy as np
import tensorflow as tf

from gff_keras import keras_internals


class TrainingMonitor(keras.callbacks.Callback):
    """Adds the learning rate and images/s to the logs and to TensorBoard.

    Placed before Keras' progress bar, it puts `learning_rate` and
    `images_per_second` into each batch's logs, so the bar shows them; every
    `log_every` steps it writes `loss`, `learning_rate` and
    `images_per_second` scalars at the optimizer's global step (which
    survives resuming, unlike a per-`fit` batch counter).

    Args:
        global_batch_size: int, images per step over all replicas.
        log_dir: TensorBoard directory, or `None` to write nothing.
        log_every: int, steps between TensorBoard points. Defaults to `50`.

    Example:

    >>> monitor = TrainingMonitor(global_batch_size=16, log_dir=None)
    """

    def __init__(self, global_batch_size, log_dir=None, log_every=50):
        super().__init__()
        self.global_batch_size = global_batch_size
        self.log_dir = log_dir
        self.log_every = log_every
        self.throughputs = []
        self._writer = None
        self._last_time = None
        self._window = []

    def on_train_begin(self, logs=None):
        if self.log_dir and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        # The first step of a loop includes tracing, iterator start-up and
        # the previous loop's evaluation: it is not timed.
        self._last_time = None

    def on_train_batch_end(self, batch, logs=None):
        if logs is None:
            return
        now = time.perf_counter()
        if self._last_time is not None:
            self._window.append(now - self._last_time)
        self._last_time = now
        step = int(self.model.optimizer.iterations.numpy())
        logs["learning_rate"] = self.current_learning_rate(step)
        if self._window:
            rate = self.global_batch_size * len(self._window)
            logs["images_per_second"] = rate / sum(self._window)
        if step % self.log_every == 0:
            if self._window:
                self.throughputs.append(logs["images_per_second"])
            self._write(step, logs)
            self._window = []

    def current_learning_rate(self, step):
        rate = self.model.optimizer.learning_rate
        schedule = keras_internals.learning_rate_schedule(self.model.optimizer)
        if callable(schedule):
            rate = schedule(step)
        return float(np.asarray(rate))

    def _write(self, step, logs):
        if self._writer is None:
            return
        with self._writer.as_default(step=step):
            for key in ("loss", "learning_rate", "images_per_second"):
                if key in logs:
                    tf.summary.scalar(f"train/{key}", float(logs[key]))

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
