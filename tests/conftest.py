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


# The longest tests (minutes each on a 2-core CPU), started before all the
# others: the workers take whole modules in the order of their first test.
LONGEST_FIRST = (
    "test_a_run_killed_at_any_moment_finishes_on_rerun",
    "test_a_hundred_synthetic_steps_learn_well_above_chance",
    "test_rerun_with_the_same_seed_gives_the_same_numbers",
    "test_compare_peers_tiny_budget_trains_scores_and_times",
)


def pytest_collection_modifyitems(items):
    # The longest tests, then the other slow ones, then the rest: modules
    # are handed out in the order of their first test (setup.cfg), so the
    # modules holding slow tests start first and the two workers finish
    # together rather than one running minute-long tests alone at the end.
    def order(item):
        name = item.originalname
        rank = (
            LONGEST_FIRST.index(name)
            if name in LONGEST_FIRST
            else len(LONGEST_FIRST)
        )
        return (rank, item.get_closest_marker("slow") is None)

    items.sort(key=order)


@pytest.fixture
def two_replicas():
    """A MirroredStrategy over the two logical CPUs, shared by every test
    of a worker (see `create_strategy`: separate strategies in one process
    reuse collective keys)."""
    from gff_keras.training import create_strategy

    cpus = tf.config.list_logical_devices("CPU")[:2]
    return create_strategy("mirrored", devices=[d.name for d in cpus])


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()
