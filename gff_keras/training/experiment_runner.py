import json
import os

import keras
import numpy as np
import tensorflow as tf

from gff_keras import atomic_files
from gff_keras.data.bad_example import BadExample
from gff_keras.data.dataset_check import check_dataset
from gff_keras.data.dataset_check import read_bad_examples
from gff_keras.data.dataset_check import write_bad_examples
from gff_keras.data.datasets import build_dataset
from gff_keras.data.pipeline import denormalize_images
from gff_keras.data.registry import dataset_info
from gff_keras.evaluation.dataset_evaluation import evaluate_dataset
from gff_keras.export.saved_model_export import export_saved_model
from gff_keras.keras_internals import optimizer_set_aside
from gff_keras.losses.segmentation_loss import SegmentationLoss
from gff_keras.models import run_directory
from gff_keras.models.gffnet import GFFNet
from gff_keras.training.experiment_config import ExperimentConfig
from gff_keras.training.latest_checkpoint import LatestCheckpoint
from gff_keras.training.optimization import build_optimizer
from gff_keras.training.periodic_evaluation import PeriodicEvaluation
from gff_keras.training.strategies import create_strategy
from gff_keras.training.strategies import is_chief
from gff_keras.training.training_backup import TrainingBackup
from gff_keras.training.training_backup import backed_up_epoch
from gff_keras.training.training_backup import finish_backup
from gff_keras.training.training_backup import is_finished_backup
from gff_keras.training.training_backup import latest_backup
from gff_keras.training.training_monitor import TrainingMonitor
from gff_keras.visualization.gate_figures import gate_figure
from gff_keras.visualization.gate_figures import write_gate_figures
from gff_keras.visualization.panels import prediction_panel
from gff_keras.visualization.panels import write_prediction_panels

# Settings that do not change what a run computes: a resumed run may
# change them (each change is logged).
NOT_RUN_IDENTITY = (
    "data.check",
    "data.skip_bad_examples",
    "runtime.tensorboard_images",
    "runtime.verbose",
)


def _check_config(config, model_dir):
    """Refuses to resume a run directory that holds another config."""
    path = os.path.join(model_dir, run_directory.CONFIG_FILE)
    if not os.path.exists(path):
        return
    # Through JSON, as it was saved: tuples compare equal to the saved lists.
    resolved = json.loads(config.to_json())
    try:
        with open(path) as f:
            previous = json.load(f)
    except ValueError as error:
        raise ValueError(
            f"{path} is not a config written by gff_keras ({error}); move "
            "it away or choose another --model_dir."
        ) from None
    changed = sorted(_differences(previous, resolved))
    allowed = [key for key in changed if key in NOT_RUN_IDENTITY]
    for key in allowed:
        print(
            f"{key} changed from {_get(previous, key)!r} to "
            f"{_get(resolved, key)!r} since the run began."
        )
    different = run_identity_differences(previous, resolved)
    if different:
        raise ValueError(
            f"{model_dir!r} holds a run with a different config (changed: "
            f"{', '.join(different)}). Resume with the same settings or "
            "choose another --model_dir."
        )


def run_identity_differences(old: dict, new: dict) -> list[str]:
    """The config keys that make two runs different trainings.

    Args:
        old, new: configs as dicts (`ExperimentConfig.to_dict()`).

    Returns:
        Sorted dotted keys whose values differ, leaving out
        `NOT_RUN_IDENTITY` (settings a run may change when resumed).
    """
    return [
        key
        for key in sorted(_differences(old, new))
        if key not in NOT_RUN_IDENTITY
    ]


def _get(values, key):
    for part in key.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def _differences(old, new, prefix=""):
    for key in set(old) | set(new):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            yield from _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            yield f"{prefix}{key}"


def _copy_matching_weights(source_path, model):
    """Copies every variable of the same path and shape (Table 1 init).

    Paths name the layers a variable sits in (`conv1_conv/kernel`,
    `head/classifier/kernel`), so a trained PSPNet initializes the
    backbone, the context module and the auxiliary head of a GFFNet.
    """
    source = run_directory.load_model(source_path)

    def by_path(variables):
        return {v.path: v for v in variables}

    targets = by_path(model.variables)
    copied = 0
    for path, variable in by_path(source.variables).items():
        target = targets.get(path)
        if target is not None and tuple(target.shape) == tuple(variable.shape):
            target.assign(variable)
            copied += 1
    if not copied:
        raise ValueError(f"No variable of {source_path!r} matches the model.")
    print(f"Initialized {copied} variables from {source_path}.")


def build_model(config: ExperimentConfig, resuming: bool = False) -> GFFNet:
    """Builds and compiles the experiment's model (in the current scope).

    Args:
        config: the experiment.
        resuming: skip the initial weights (the backup replaces them).

    Returns:
        A compiled `GFFNet`.
    """
    info = dataset_info(config.data.dataset)
    arguments = config.model.resolved_arguments(info.num_classes)
    if resuming:
        arguments.pop("backbone_weights", None)
    arguments.setdefault("name", config.model.preset)
    model = GFFNet(
        num_classes=info.num_classes,
        ignore_label=info.ignore_label,
        **arguments,
    )
    if config.model.init_from and not resuming:
        _copy_matching_weights(config.model.init_from, model)
    loss = SegmentationLoss(
        ignore_label=info.ignore_label,
        ohem_threshold=(
            config.loss.ohem_threshold if config.loss.ohem else None
        ),
        ohem_min_kept=config.loss.ohem_min_kept,
    )
    model.compile(
        optimizer=build_optimizer(config.optimizer, config.schedule),
        loss=loss,
        jit_compile=config.runtime.jit_compile,
    )
    return model


def find_bad_examples(
    config: ExperimentConfig, run_dir: str, resuming: bool = False
) -> list[BadExample]:
    """The bad files of a run's splits: checked once, then read back.

    A new run with `data.check` reads every image and label of its train
    and eval splits and writes the result to `bad_examples.json` in the run
    directory (again at each new start, so fixed files count as fixed); a
    resumed run reads that file. Bad files stop the run before its first
    step unless `data.skip_bad_examples` is set.

    Args:
        config: the experiment.
        run_dir: the run directory.
        resuming: whether the run resumes from a backup.

    Returns:
        The bad examples the run leaves out.

    Raises:
        ValueError: listing every bad file, when there are some and
            `data.skip_bad_examples` is not set.
    """
    data = config.data
    path = os.path.join(run_dir, run_directory.BAD_EXAMPLES_FILE)
    if resuming:
        # The files the run began with, whatever the check settings now:
        # a resumed run must see the stream it would have seen.
        bad = read_bad_examples(path) if os.path.exists(path) else []
    elif data.check:
        splits = list(dict.fromkeys([data.train_split, data.eval_split]))
        bad = check_dataset(data.dataset, data.data_dir, splits)
        write_bad_examples(
            path, bad, dataset=data.dataset, data_dir=data.data_dir
        )
    else:
        return []
    if bad and not data.skip_bad_examples and not resuming:
        listing = "\n".join(
            f"  {example.split}: {example.image}: {example.reason}"
            for example in bad
        )
        raise ValueError(
            f"{len(bad)} bad examples in {data.dataset} (listed in {path}):"
            f"\n{listing}\nFix or remove them, or train without them: "
            "--override data.skip_bad_examples=true"
        )
    if bad:
        print(f"leaving out the {len(bad)} bad examples listed in {path}")
    return bad


def make_train_dataset(
    config: ExperimentConfig, exclude=(), initial_step: int = 0
) -> tf.data.Dataset:
    """The experiment's endless, seeded training stream.

    Any model trained on this stream sees the same batches in the same
    order for the same `runtime.seed` (`experiments/peers.py` trains other
    libraries' segmenters on it).

    Args:
        config: the experiment.
        exclude: image paths to leave out (`find_bad_examples`).
        initial_step: training steps already done; the stream starts at the
            batch that step would have read next.

    Returns:
        A `tf.data.Dataset` of `(normalized images, labels)` batches.
    """
    runtime = config.runtime
    size = config.data.synthetic_image_size
    return build_dataset(
        config.data.dataset,
        config.data.train_split,
        data_dir=config.data.data_dir,
        training=True,
        crop_size=config.data.crop_size,
        batch_size=config.data.batch_size,
        seed=runtime.seed,
        skip_bad_examples=config.data.skip_bad_examples,
        exclude=exclude,
        deterministic=True if runtime.deterministic else None,
        scale_range=(config.data.scale_min, config.data.scale_max),
        num_examples=config.data.num_train_examples,
        synthetic_image_size=(size, size),
        repeat=True,
        initial_step=initial_step,
    )


def make_evaluate_fn(config: ExperimentConfig, exclude=()):
    """Returns `model -> evaluate_dataset result` for the eval split.

    Args:
        config: the experiment.
        exclude: image paths to leave out (`find_bad_examples`).
    """
    size = config.data.synthetic_image_size

    def evaluate(model):
        return evaluate_dataset(
            model,
            config.data.dataset,
            split=config.data.eval_split,
            data_dir=config.data.data_dir,
            mode=config.runtime.eval_mode,
            crop_size=config.runtime.eval_crop_size,
            stride=config.runtime.eval_stride,
            batch_size=config.data.eval_batch_size,
            num_examples=config.data.num_eval_examples,
            synthetic_image_size=(size, size),
            skip_bad_examples=config.data.skip_bad_examples,
            exclude=exclude,
            verbose=0,
        )

    return evaluate


def _eval_examples(config, count, exclude=()):
    """The first `count` eval images as `(name, uint8 image, label)`."""
    size = config.data.synthetic_image_size
    data = build_dataset(
        config.data.dataset,
        config.data.eval_split,
        data_dir=config.data.data_dir,
        training=False,
        batch_size=1,
        num_examples=config.data.num_eval_examples,
        synthetic_image_size=(size, size),
        skip_bad_examples=config.data.skip_bad_examples,
        exclude=exclude,
    ).take(count)
    return [
        (
            f"{config.data.eval_split}_{index:03d}",
            denormalize_images(images[0]).numpy(),
            labels[0].numpy(),
        )
        for index, (images, labels) in enumerate(data)
    ]


def make_images_fn(config: ExperimentConfig, exclude=()):
    """Returns `model -> {name: picture}` for TensorBoard, or `None`.

    The pictures are `runtime.tensorboard_images` eval images, each as a
    prediction panel with its class legend (`prediction_panel`) and, for
    models with gates, the gate figure (`gate_figure`). The images are
    read once, at the first call.

    Args:
        config: the experiment.
        exclude: image paths to leave out (`find_bad_examples`).
    """
    count = config.runtime.tensorboard_images
    if not count:
        return None
    info = dataset_info(config.data.dataset)
    examples = []

    def images(model):
        if not examples:
            examples.extend(_eval_examples(config, count, exclude))
        pictures = {}
        for name, image, label in examples:
            pictures[f"{name}_prediction"] = prediction_panel(
                model, image, label, info
            )
            if model.has_gates:
                pictures[f"{name}_gates"] = gate_figure(
                    model, image, info.palette, info.ignore_label, dataset=info
                )
        return pictures

    return images


def write_visualizations(
    model: GFFNet, config: ExperimentConfig, output_dir: str, exclude=()
) -> list:
    """Writes prediction panels (and gate figures) for eval images.

    Args:
        model: the trained model.
        config: the experiment; `runtime.num_visualizations` images of the
            eval split are drawn.
        output_dir: where the PNGs go.
        exclude: image paths to leave out (`find_bad_examples`).

    Returns:
        The written files.
    """
    info = dataset_info(config.data.dataset)
    examples = _eval_examples(
        config, config.runtime.num_visualizations, exclude
    )
    written = write_prediction_panels(model, examples, output_dir, info)
    if model.has_gates:
        named = [(name, image) for name, image, _ in examples]
        written += write_gate_figures(model, named, output_dir, info)
    return written


def run_experiment(
    config: ExperimentConfig,
    model_dir: str,
    *,
    callbacks: list | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Trains, evaluates and exports one experiment into `model_dir`.

    Re-running with the same `model_dir` and config resumes from the last
    completed training loop (the backup in `model_dir/backup`), including
    the optimizer state and the position in the seeded input stream, so a
    deterministic run that was killed ends with the weights an
    uninterrupted run reaches. A run killed at any moment resumes this way:
    every file it writes appears whole or not at all
    (`gff_keras.atomic_files`), and an evaluation cut short runs again
    before training goes on. See `gff_keras.models.run_directory` for the
    files written.

    The run ends with its best model (`runtime.keep_checkpoints`): it is
    exported, drawn and reported as `summary["reported"]`.

    Args:
        config: the experiment (validated here).
        model_dir: the run directory.
        callbacks: extra Keras callbacks for `fit`.
        strategy: a `tf.distribute` strategy; by default
            `create_strategy(config.runtime.strategy)`.

    Returns:
        A summary dict: `model_dir`, `initial_step`, `steps`, the `final`
        (last step's), `best` and `reported` (the exported model's)
        evaluations, median `images_per_second`, `export` and
        `visualizations` paths.

    Raises:
        ValueError: for an invalid config, a global batch that does not
            split over the replicas, or a `model_dir` holding another
            config, or bad data files (listed) without
            `data.skip_bad_examples`.

    Example:

    >>> from experiments import get_experiment  # doctest: +SKIP
    >>> run_experiment(get_experiment("synthetic_tiny"), "/tmp/run")
    """
    config.validate()
    runtime = config.runtime
    # First: MultiWorkerMirroredStrategy configures collective ops, which
    # TensorFlow allows only before its runtime starts (seeding starts it).
    strategy = strategy or create_strategy(runtime.strategy, runtime.tpu)
    if runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    if runtime.seed is not None:
        keras.utils.set_random_seed(runtime.seed)
    keras.mixed_precision.set_global_policy(runtime.mixed_precision)
    replicas = strategy.num_replicas_in_sync
    if config.data.batch_size % replicas:
        raise ValueError(
            f"data.batch_size={config.data.batch_size} (global) does not "
            f"split evenly over {replicas} replicas."
        )

    chief = is_chief(strategy)
    # Other workers keep their own backup and final weights apart, so they
    # never write over the chief's files.
    run_dir = model_dir
    if not chief:
        run_dir = os.path.join(
            model_dir, "workers", str(strategy.cluster_resolver.task_id)
        )
    if chief:
        _check_config(config, model_dir)
    info = dataset_info(config.data.dataset)
    keep = set(runtime.keep_checkpoints)
    best_model_file = os.path.join(model_dir, run_directory.BEST_MODEL)
    latest_model_file = os.path.join(run_dir, run_directory.LATEST_MODEL)
    backup_dir = os.path.join(run_dir, run_directory.BACKUP_DIR)
    backup = latest_backup(backup_dir)
    initial_epoch = backed_up_epoch(backup)
    # Read now: training deletes the backup it resumed from.
    restored_finished = is_finished_backup(backup)
    initial_step = initial_epoch * runtime.steps_per_loop
    total_steps = config.schedule.steps
    if initial_step >= total_steps and chief:
        print(
            f"{model_dir} has finished all {total_steps} steps; completing "
            "what is missing (use a new model_dir to start over)."
        )
    elif initial_step and chief:
        print(
            f"Resuming {model_dir} from step {initial_step} of "
            f"{total_steps} (backup in {run_directory.BACKUP_DIR}/)."
        )

    os.makedirs(run_dir, exist_ok=True)
    for folder in (run_dir, os.path.dirname(latest_model_file)):
        atomic_files.remove_partial_files(folder)
    exclude = [
        example.image
        for example in find_bad_examples(config, run_dir, initial_step > 0)
    ]
    train = make_train_dataset(config, exclude, initial_step)
    # Written once the data is found, so a failed start leaves no config.
    if chief:
        atomic_files.write_text(
            os.path.join(model_dir, run_directory.CONFIG_FILE),
            config.to_json(),
        )
    with strategy.scope():
        model = build_model(config, resuming=initial_step > 0)

    log_dir = os.path.join(model_dir, run_directory.LOG_DIR) if chief else None
    monitor = TrainingMonitor(
        config.data.batch_size, log_dir=log_dir, log_every=runtime.log_every
    )
    evaluation = PeriodicEvaluation(
        make_evaluate_fn(config, exclude),
        steps_per_loop=runtime.steps_per_loop,
        eval_every=runtime.eval_every,
        total_steps=total_steps,
        class_names=info.class_names,
        metrics_file=(
            os.path.join(model_dir, run_directory.METRICS_FILE)
            if chief
            else None
        ),
        best_model_file=best_model_file if chief and "best" in keep else None,
        log_dir=log_dir,
        initial_step=initial_step,
        images_fn=make_images_fn(config, exclude) if chief else None,
    )
    fit_callbacks = [
        # Kept after the last step, so re-running a finished run does not
        # start over.
        TrainingBackup(backup_dir, restore_from=backup),
        monitor,
    ]
    if chief:
        fit_callbacks.append(evaluation)
    if "latest" in keep:
        fit_callbacks.append(LatestCheckpoint(latest_model_file))
    fit_callbacks += list(callbacks or [])
    model.fit(
        train,
        epochs=total_steps // runtime.steps_per_loop,
        initial_epoch=initial_epoch,
        steps_per_epoch=runtime.steps_per_loop,
        callbacks=fit_callbacks,
        # The stream is shuffled by build_dataset (fit cannot shuffle it).
        shuffle=False,
        verbose=runtime.verbose if chief else 0,
    )
    finished = int(model.optimizer.iterations.numpy()) >= total_steps
    if "latest" in keep and finished and not restored_finished:
        if initial_step >= total_steps:
            # Killed between the last backup and latest.keras, which is a
            # loop behind: no epoch ran now to write it.
            run_directory.save_model(model, latest_model_file)
        # latest.keras holds the final weights: the backup's copy of them
        # (with the optimizer state) is no longer needed.
        finish_backup(backup_dir, latest_model_file)

    summary = {
        "model_dir": model_dir,
        "experiment": config.name,
        "initial_step": initial_step,
        "steps": total_steps,
        "images_per_second": (
            float(np.median(monitor.throughputs))
            if monitor.throughputs
            else None
        ),
    }
    if not chief:
        return summary
    final = next(
        (e for e in evaluation.evaluations if e["step"] == total_steps), None
    )
    if final is None:
        # Evaluations of runs before 0.2 could be lost to a kill.
        final = evaluation.evaluate(total_steps)
    reported = final
    best = evaluation.best
    if "best" in keep and best is not None and best["step"] != final["step"]:
        with optimizer_set_aside(model):
            run_directory.load_weights(model, best_model_file)
        reported = best
    summary.update({"final": final, "best": best, "reported": reported})
    if runtime.export:
        summary["export"] = _export_once(model, config, model_dir)
    if runtime.num_visualizations:
        summary["visualizations"] = write_visualizations(
            model,
            config,
            os.path.join(model_dir, run_directory.VISUALIZATION_DIR),
            exclude,
        )
    metrics_file = os.path.join(model_dir, run_directory.METRICS_FILE)
    with open(metrics_file) as f:
        metrics = json.load(f)
    metrics["summary"] = {
        k: v
        for k, v in summary.items()
        if k not in ("final", "best", "visualizations")
    }
    atomic_files.write_json(metrics_file, metrics)
    return summary


def _export_once(model, config, model_dir):
    """Exports version 1 of the run's SavedModel unless a re-run has."""
    export_dir = os.path.join(model_dir, run_directory.EXPORT_DIR)
    path = os.path.join(export_dir, "1")
    if os.path.exists(path):
        return path
    atomic_files.remove_partial_files(export_dir)
    return export_saved_model(
        model,
        export_dir,
        mode=config.runtime.eval_mode,
        crop_size=config.runtime.eval_crop_size,
        stride=config.runtime.eval_stride,
        version=1,
    )
