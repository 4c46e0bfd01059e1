"""create_strategy: which strategy a run gets, and reuse within a process."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gff_keras.layers import FusedBatchNormalization
from gff_keras.training import create_strategy


def _cpu_names():
    return [d.name for d in tf.config.list_logical_devices("CPU")[:2]]


def _synchronized_batch_norm_step(strategy, channels):
    with strategy.scope():
        layer = FusedBatchNormalization(synchronized=True)
        layer.build((None, 3, 3, channels))
    x = np.arange(4 * 3 * 3 * channels, dtype="float32").reshape(
        (4, 3, 3, channels)
    )
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(4)
    )
    step = tf.function(lambda batch: layer(batch, training=True))
    outputs = strategy.run(step, args=(next(iter(dataset)),))
    return np.concatenate(
        [t.numpy() for t in strategy.experimental_local_results(outputs)]
    )


def test_the_same_devices_give_the_same_mirrored_strategy():
    first = create_strategy("mirrored", devices=_cpu_names())
    assert isinstance(first, tf.distribute.MirroredStrategy)
    assert first.num_replicas_in_sync == 2
    assert create_strategy("mirrored", devices=_cpu_names()) is first
    # The same devices spelled otherwise, or in another order.
    short = [f"/cpu:{index}" for index in (1, 0)]
    assert create_strategy("mirrored", devices=short) is first
    assert create_strategy("mirrored", devices=_cpu_names()[:1]) is not first


def test_two_models_of_different_shapes_train_in_one_process():
    # Two fresh MirroredStrategy objects here would both give their first
    # all-reduce instance key 100, and TensorFlow refuses the second shape:
    # "Shape mismatch in the collective instance 100 ... expected shape
    # [3] but another member in the group expected shape [5]".
    for channels in (3, 5):
        strategy = create_strategy("mirrored", devices=_cpu_names())
        outputs = _synchronized_batch_norm_step(strategy, channels)
        x = np.arange(4 * 3 * 3 * channels, dtype="float32")
        x = x.reshape((4, 3, 3, channels))
        expected = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-3)
        np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(
    bool(tf.config.list_physical_devices("GPU")), reason="a GPU is visible"
)
def test_one_device_without_a_gpu_is_the_cpu():
    strategy = create_strategy("one_device")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    with strategy.scope():
        variable = keras.Variable(1.0)
    assert "CPU" in variable.value.device.upper()


def test_bad_names_and_missing_clusters_are_named(monkeypatch):
    with pytest.raises(ValueError, match="Unknown strategy 'mirror'"):
        create_strategy("mirror")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        create_strategy("multi_worker")
