import json
import os

import keras
import numpy as np
import tensorflow as tf

from gff_keras import atomic_files
from gff_keras.models import run_directory


class PeriodicEvaluation(keras.callbacks.Callback):
    """Evaluates on a step schedule, logs the result, keeps the best model.

    At the end of every training loop (a Keras "epoch" of `steps_per_loop`
    steps) whose last step is a multiple of `eval_every`, or is the final
    step, it calls `evaluate_fn(model)`, adds `val_mean_iou`,
    `val_pixel_accuracy` and `val_mean_accuracy` to the loop's logs, writes
    them to TensorBoard, appends the full result to `metrics_file` and saves
    `best_model_file` when the mIoU improves on every earlier evaluation,
    including those of runs this one resumes.

    Args:
        evaluate_fn: callable `model -> dict` with `mean_iou`,
            `pixel_accuracy`, `mean_accuracy` and `per_class_iou` (a
            sequence in `class_names` order, or a name -> IoU dict), such
            as `gff_keras.evaluation.evaluate_dataset`.
        steps_per_loop: int, steps per Keras epoch.
        eval_every: int, steps between evaluations.
        total_steps: int, the final step (always evaluated).
        class_names: names for `per_class_iou` in the metrics file, or
            `None` to use the class indices (or the result's own names).
        metrics_file: JSON path, or `None` to keep results in memory only.
        best_model_file: `.keras` path, or `None` to save nothing.
        log_dir: TensorBoard directory, or `None`.
        initial_step: int, the step a resumed run restarts from. If an
            evaluation was due there and is missing (the run was killed
            while evaluating), it runs when training begins.
        images_fn: optional callable `model -> {name: uint8 [H, W, 3]}`,
            pictures of the model at each evaluation (prediction panels,
            gate maps) written to TensorBoard as `validation/<name>`.

    Example:

    >>> callback = PeriodicEvaluation(
    ...     lambda model: {}, steps_per_loop=10, eval_every=100,
    ...     total_steps=1000)
    """

    def __init__(
        self,
        evaluate_fn,
        steps_per_loop,
        eval_every,
        total_steps,
        class_names=None,
        metrics_file=None,
        best_model_file=None,
        log_dir=None,
        initial_step=0,
        images_fn=None,
    ):
        super().__init__()
        self.images_fn = images_fn
        self.evaluate_fn = evaluate_fn
        self.initial_step = initial_step
        self.steps_per_loop = steps_per_loop
        self.eval_every = eval_every
        self.total_steps = total_steps
        self.class_names = None if class_names is None else list(class_names)
        self.metrics_file = metrics_file
        self.best_model_file = best_model_file
        self.log_dir = log_dir
        self.evaluations = []
        self._writer = None
        if metrics_file and os.path.exists(metrics_file):
            self.evaluations = _read_evaluations(metrics_file)

    @property
    def best(self):
        """The evaluation with the highest mIoU so far, or `None`."""
        scored = [e for e in self.evaluations if e["mean_iou"] is not None]
        return max(scored, key=lambda e: e["mean_iou"], default=None)

    def _due(self, step):
        return step % self.eval_every == 0 or step == self.total_steps

    def on_train_begin(self, logs=None):
        # The backup of a step is written before its evaluation, so a run
        # killed while evaluating resumes after it: evaluate it now, with
        # the restored weights, before training on.
        step = self.initial_step
        done = {e["step"] for e in self.evaluations}
        if step and self._due(step) and step not in done:
            self.evaluate(step)

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.steps_per_loop
        if self._due(step):
            self.evaluate(step, logs)

    def evaluate(self, step, logs=None):
        """Evaluates now, as at `step`; returns the recorded entry."""
        result = self.evaluate_fn(self.model)
        entry = {"step": int(step)}
        for key in ("mean_iou", "pixel_accuracy", "mean_accuracy"):
            entry[key] = _number(result[key])
        per_class = result["per_class_iou"]
        if not isinstance(per_class, dict):
            names = self.class_names or [str(i) for i in range(len(per_class))]
            per_class = dict(zip(names, per_class))
        entry["per_class_iou"] = {
            name: _number(value) for name, value in per_class.items()
        }
        previous_best = self.best
        self.evaluations = [
            e for e in self.evaluations if e["step"] != entry["step"]
        ] + [entry]
        if logs is not None:
            for key in ("mean_iou", "pixel_accuracy", "mean_accuracy"):
                logs[f"val_{key}"] = entry[key]
        improved = entry["mean_iou"] is not None and (
            previous_best is None
            or entry["mean_iou"] > previous_best["mean_iou"]
        )
        if improved and self.best_model_file:
            run_directory.save_model(self.model, self.best_model_file)
        self._write(step, entry)
        return entry

    def _write(self, step, entry):
        if self.log_dir:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default(step=step):
                for key in ("mean_iou", "pixel_accuracy", "mean_accuracy"):
                    if entry[key] is not None:
                        tf.summary.scalar(f"validation/{key}", entry[key])
                if self.images_fn is not None:
                    for name, image in self.images_fn(self.model).items():
                        tf.summary.image(
                            f"validation/{name}", np.asarray(image)[None]
                        )
            self._writer.flush()
        if self.metrics_file:
            atomic_files.write_json(
                self.metrics_file,
                {"evaluations": self.evaluations, "best": self.best},
            )


def _read_evaluations(metrics_file):
    try:
        with open(metrics_file) as f:
            return list(json.load(f).get("evaluations", []))
    except (ValueError, AttributeError) as error:
        raise ValueError(
            f"{metrics_file} is not a metrics file written by gff_keras "
            f"({error}); move it away to start its evaluations afresh."
        ) from None


def _number(value):
    value = float(np.asarray(value))
    # JSON has no NaN: an IoU that is undefined (class absent) is null.
    return None if np.isnan(value) else value
