"""Each private Keras API gff_keras relies on still behaves as assumed."""

import inspect

import keras
import numpy as np
import tensorflow as tf

from gff_keras import keras_internals


def tiny_model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_model_has_the_symbolic_build_hook_the_segmenter_overrides():
    parameters = inspect.signature(keras.Model._maybe_symbolic_build).parameters
    assert list(parameters)[:3] == ["self", "iterator", "data_batch"]


def test_model_records_the_strategy_it_was_created_under(two_replicas):
    strategy = two_replicas
    with strategy.scope():
        model = tiny_model()
    assert keras_internals.model_strategy(model) is strategy
    assert keras_internals.first_replica_batch(model, iterator=None) is None


def test_logs_become_vectors_only_under_multi_worker_mirrored(monkeypatch):
    logs = {"loss": tf.constant(1.5), "per_class": tf.constant([1.0, 2.0])}
    model = tiny_model()
    assert keras_internals.multi_worker_logs(model, logs) is logs
    # An instance without its runtime: only the type is checked.
    fake = object.__new__(tf.distribute.MultiWorkerMirroredStrategy)
    monkeypatch.setattr(keras_internals, "model_strategy", lambda m: fake)
    reshaped = keras_internals.multi_worker_logs(model, logs)
    assert reshaped["loss"].shape == (1,)
    assert reshaped["per_class"].shape == (2,)


def test_optimizer_keeps_its_schedule_behind_learning_rate():
    schedule = keras.optimizers.schedules.PolynomialDecay(0.1, 10, 0.0)
    optimizer = keras.optimizers.SGD(schedule)
    assert keras_internals.learning_rate_schedule(optimizer) is schedule
    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(schedule))
    assert keras_internals.learning_rate_schedule(scaled) is schedule
    constant = keras_internals.learning_rate_schedule(keras.optimizers.SGD(0.5))
    assert float(np.asarray(constant)) == 0.5


def test_optimizer_indexes_variables_in_build_order():
    variables = [keras.Variable(np.zeros(2)), keras.Variable(np.zeros(3))]
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(variables)
    assert [
        keras_internals.variable_index(optimizer, v) for v in variables
    ] == [0, 1]


def test_a_model_saved_with_its_optimizer_set_aside_has_no_optimizer_state(
    tmp_path,
):
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="mse")
    model.fit(np.ones((2, 4)), np.ones((2, 2)), verbose=0)
    with keras_internals.optimizer_set_aside(model):
        model.save(tmp_path / "inference.keras")
    model.save(tmp_path / "full.keras")
    # Training goes on with the same optimizer and its state.
    iterations = int(model.optimizer.iterations)
    model.fit(np.ones((2, 4)), np.ones((2, 2)), verbose=0)
    assert model.compiled and int(model.optimizer.iterations) == iterations + 1

    loaded = keras.models.load_model(tmp_path / "inference.keras")
    assert not loaded.compiled
    np.testing.assert_array_equal(
        loaded.layers[-1].kernel.numpy(),
        keras.models.load_model(tmp_path / "full.keras").layers[-1].kernel,
    )
    full_size = (tmp_path / "full.keras").stat().st_size
    assert (tmp_path / "inference.keras").stat().st_size < full_size


def test_op_determinism_flag_is_readable_and_can_be_set_aside():
    # In a fresh process: op determinism is process-wide.
    import subprocess
    import sys

    script = (
        "import tensorflow as tf\n"
        "from gff_keras.keras_internals import op_determinism_enabled\n"
        "from gff_keras.keras_internals import op_determinism_off\n"
        "before = op_determinism_enabled()\n"
        "tf.config.experimental.enable_op_determinism()\n"
        "with op_determinism_off():\n"
        "    inside = op_determinism_enabled()\n"
        "print(before, inside, op_determinism_enabled())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False", "True"]


def test_frozen_graph_calls_skip_grappler_and_change_nothing_else():
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    from gff_keras.evaluation import freeze_function
    from gff_keras.keras_internals import frozen_graph_call_options

    def current():
        return config_pb2.ConfigProto.FromString(
            context.context().function_call_options.config_proto_serialized
        )

    before = current()
    layer = keras.layers.Conv2D(4, 3, padding="same")
    forward = tf.function(lambda x: tf.nn.relu(layer(x)))
    images = tf.random.normal([1, 8, 8, 3])
    frozen = freeze_function(forward.get_concrete_function(images))
    with frozen_graph_call_options():
        inside = current()
        called_inside = frozen(images).numpy()
    rewrites = inside.graph_options.rewrite_options
    assert rewrites.disable_meta_optimizer
    # Everything else is the thread's configuration as it was.
    rewrites.ClearField("disable_meta_optimizer")
    expected = config_pb2.ConfigProto.FromString(before.SerializeToString())
    expected.graph_options.rewrite_options.SetInParent()
    assert inside == expected
    assert current() == before
    np.testing.assert_allclose(
        called_inside, forward(images).numpy(), rtol=1e-5, atol=1e-6
    )


def test_grappler_optimizes_a_graph_def_and_keeps_its_inputs_and_outputs():
    from gff_keras.keras_internals import grappler_optimized_graph_def

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 4], "images")
        tf.compat.v1.placeholder(tf.float32, [None], "unused")
        weights = tf.constant(np.arange(8.0, dtype="float32").reshape(4, 2))
        # A constant subgraph Grappler folds, behind identities it prunes.
        scale = tf.math.rsqrt(tf.constant([4.0, 16.0]) + 0.0)
        scaled = tf.identity(tf.identity(weights * scale))
        tf.identity(tf.matmul(images, scaled), name="logits")
    graph_def = graph.as_graph_def()
    optimized = grappler_optimized_graph_def(
        graph_def, ["images:0", "unused:0"], ["logits:0"]
    )
    assert not graph_def.node  # consumed: its weights can be freed
    ops = {node.name: node.op for node in optimized.node}
    assert ops["images"] == ops["unused"] == "Placeholder"
    assert "Rsqrt" not in ops.values()
    assert len(optimized.node) < len(graph.as_graph_def().node)
    # No device was given, so no device-specific (underscored) op appears.
    assert not [op for op in ops.values() if op.startswith("_")]
    run = tf.compat.v1.wrap_function(
        lambda: tf.compat.v1.import_graph_def(optimized, name=""), []
    )
    logits = run.prune(
        run.graph.as_graph_element("images:0"),
        run.graph.as_graph_element("logits:0"),
    )
    rows = np.ones((3, 4), "float32")
    expected = rows @ (np.arange(8.0).reshape(4, 2) * [0.5, 0.25])
    np.testing.assert_allclose(logits(tf.constant(rows)), expected, rtol=1e-6)
