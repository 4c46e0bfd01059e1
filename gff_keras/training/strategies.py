import functools
import json
import os

import tensorflow as tf


def _cluster_workers() -> int:
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster = config.get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


@functools.cache
def _mirrored_strategy(devices: tuple[str, ...]) -> tf.distribute.Strategy:
    # One strategy per device set for the life of the process. Each new
    # MirroredStrategy numbers its collective all-reduces from the same
    # instance key, and TensorFlow keeps the shapes of an instance key
    # once seen: a second strategy training another model in the same
    # process (a notebook, two runs) fails with "Shape mismatch in the
    # collective instance 100". A shared strategy keeps counting instead.
    return tf.distribute.MirroredStrategy(list(devices))


def create_strategy(
    name: str = "auto", tpu: str = "", devices: list[str] | None = None
) -> tf.distribute.Strategy:
    """Creates the `tf.distribute` strategy a training run uses.

    Args:
        name: `"auto"` picks `MultiWorkerMirroredStrategy` when `TF_CONFIG`
            names more than one worker, else `MirroredStrategy` over all
            visible GPUs when there are any, else the default one-device
            strategy. `"one_device"`, `"mirrored"`, `"multi_worker"` and
            `"tpu"` force a strategy.
        tpu: TPU address or name for `"tpu"` (`""` for a local TPU VM).
        devices: devices for `"mirrored"`; defaults to all GPUs, or all
            logical CPUs when there is no GPU. The same devices give the
            same strategy object for the life of the process (two
            `MirroredStrategy` objects in one process reuse collective
            keys, which TensorFlow refuses once shapes differ).

    Returns:
        The strategy. Models and optimizers must be created in its scope.

    Raises:
        ValueError: for an unknown name, or `"multi_worker"` without a
            `TF_CONFIG` cluster.

    Example:

    >>> create_strategy("one_device").num_replicas_in_sync
    1
    """
    # Physical devices only: listing logical ones starts the TensorFlow
    # runtime, after which MultiWorkerMirroredStrategy can no longer be made.
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if name == "auto":
        if _cluster_workers() > 1:
            name = "multi_worker"
        elif has_gpu:
            name = "mirrored"
        else:
            name = "one_device"
    if name in ("one_device", "mirrored"):
        gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        device = gpus[0].name if gpus else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        if devices is None:
            devices = [d.name for d in gpus] or [
                d.name for d in tf.config.list_logical_devices("CPU")
            ]
        # One key per device set, however its names are spelled.
        local = tf.DeviceSpec(job="localhost", replica=0, task=0)
        canonical = sorted(
            local.make_merged_spec(tf.DeviceSpec.from_string(d)).to_string()
            for d in devices
        )
        return _mirrored_strategy(tuple(canonical))
    if name == "multi_worker":
        if _cluster_workers() < 1:
            raise ValueError(
                "strategy='multi_worker' needs TF_CONFIG with a cluster of "
                'workers, e.g. {"cluster": {"worker": ["host1:port", '
                '"host2:port"]}, "task": {"type": "worker", "index": 0}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        f"Unknown strategy {name!r}; expected 'auto', 'one_device', "
        "'mirrored', 'multi_worker' or 'tpu'."
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (worker 0 or chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief
