"""Test set-up: quiet TensorFlow, two logical CPUs, seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One compute thread per worker (the suite runs one worker per core):
    # oversubscribed thread pools spin and lose 5-15% of the suite's time.
    # The inter-op pool keeps its size: collective ops of the distribution
    # tests wait on each other in it. Scripts run by tests inherit this.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# The distribution tests need two logical CPU devices, which TensorFlow only
# allows before it initializes its runtime, so they are set up at import.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)


def pytest_collection_modifyitems(items):
    # Slow tests first, so that the two workers finish together rather
    # than one running a minute-long test alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()
