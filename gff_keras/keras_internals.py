"""Every use of private Keras API in gff_keras, in one place.

Keras has no public hook for these, so the project relies on names that
may change between minor versions; `pyproject.toml` bounds `keras` to the
tested minors and `tests/test_keras_internals.py` checks each assumption
below, so a Keras upgrade that breaks one fails there first, by name.

- `Model._maybe_symbolic_build(iterator, data_batch)`: overridden by the
  `Segmenter` to build from one replica's batch under
  MultiWorkerMirroredStrategy (`first_replica_batch`).
- `Model._distribute_strategy`: the strategy a model was created under.
- `train_step` / `test_step` logs: reshaped for MultiWorkerMirroredStrategy
  (`multi_worker_logs`).
- `Optimizer._learning_rate`: the schedule behind `learning_rate`, read to
  log the rate of a given step (`learning_rate_schedule`).
- `Optimizer._get_variable_index(variable)`: the position of a variable in
  the optimizer's lists, used for per-variable weight decay
  (`variable_index`).
- `Model.optimizer` and `Model.compiled`: set aside while a model is saved
  for inference, so the `.keras` file holds neither the optimizer's slots
  nor a compile config (`optimizer_set_aside`).
- TensorFlow's `config.is_op_determinism_enabled()` (not exported under
  `tf.config`): whether `tf.config.experimental.enable_op_determinism()`
  is in force, read by `DilatedConv2D` (`op_determinism_enabled`).
- TensorFlow's `config.disable_op_determinism()` (not exported either):
  timings are taken without op determinism, then it is restored
  (`op_determinism_off`).
- TensorFlow's eager `context.function_call_options` (the Grappler
  configuration a function call carries; `tf.config.optimizer` acts on
  every function of the process): calls of a frozen graph skip Grappler,
  which `freeze_function` has already run (`frozen_graph_call_options`).
- TensorFlow's `grappler.tf_optimizer.OptimizeGraph` (Grappler on a
  `GraphDef`, as the runtime runs it on a function's first call): a
  frozen graph is optimized once when it is frozen, so that serving it
  does not pay for passes over its constants at start-up
  (`grappler_optimized_graph_def`).
"""

import contextlib

import keras
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow.python.eager import context as tf_context
from tensorflow.python.framework import config as tf_config
from tensorflow.python.grappler import tf_optimizer


def model_strategy(model):
    """The `tf.distribute` strategy `model` was created under, or `None`."""
    return getattr(model, "_distribute_strategy", None)


def first_replica_batch(model, iterator):
    """One local replica's first batch, under MultiWorkerMirroredStrategy.

    Keras 3 builds a model from a first batch that it averages over all
    replicas with `strategy.reduce`, which fails in eager mode under
    MultiWorkerMirroredStrategy (keras-team/keras#20585). The build needs
    only shapes and dtypes, so one local replica's values serve.

    Args:
        model: the model being built.
        iterator: Keras' epoch iterator passed to `_maybe_symbolic_build`.

    Returns:
        The batch (a nest of tensors), or `None` when the strategy is not
        MultiWorkerMirroredStrategy or there is no iterator (then Keras'
        own build applies).
    """
    strategy = model_strategy(model)
    if iterator is None or not isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ):
        return None

    def first_replica(value):
        return strategy.experimental_local_results(value)[0]

    for _, _, batches in iterator:
        return tf.nest.map_structure(first_replica, next(batches))
    return None


def multi_worker_logs(model, logs):
    """Step logs that MultiWorkerMirroredStrategy can average.

    Under MultiWorkerMirroredStrategy Keras 3 averages a step's logs with
    `strategy.reduce("MEAN", value, axis=0)`, which rejects scalars; as
    vectors of one value they average to the same scalar. Other strategies
    get `logs` unchanged.
    """
    if not isinstance(
        model_strategy(model), tf.distribute.MultiWorkerMirroredStrategy
    ):
        return logs
    return tf.nest.map_structure(
        lambda value: (
            keras.ops.reshape(value, (1,))
            if len(keras.ops.shape(value)) == 0
            else value
        ),
        logs,
    )


def learning_rate_schedule(optimizer):
    """The schedule (or constant) behind `optimizer.learning_rate`.

    Under `mixed_float16` the optimizer is a `LossScaleOptimizer`; its inner
    optimizer holds the schedule.
    """
    inner = getattr(optimizer, "inner_optimizer", None)
    return getattr(inner or optimizer, "_learning_rate")


def variable_index(optimizer, variable) -> int:
    """The index of `variable` in the lists `optimizer.build` received."""
    return optimizer._get_variable_index(variable)


@contextlib.contextmanager
def optimizer_set_aside(model):
    """Makes `model.save` write the model without its optimizer.

    Keras 3 saves a compiled model's optimizer variables (SGD momentum
    doubles the file) and compile config with no switch to leave them out.
    Checkpoints meant for inference and fine-tuning from new optimizer
    state do not need them; hiding both for the duration of the save
    halves the file, and the file then loads uncompiled.
    """
    optimizer, compiled = model.optimizer, model.compiled
    model.optimizer, model.compiled = None, False
    try:
        yield model
    finally:
        model.optimizer, model.compiled = optimizer, compiled


def op_determinism_enabled() -> bool:
    """Whether TensorFlow runs ops deterministically (op determinism)."""
    return bool(tf_config.is_op_determinism_enabled())


@contextlib.contextmanager
def op_determinism_off():
    """Runs its block without op determinism, restoring it afterwards.

    A process that trained deterministically (the synthetic ablation, the
    peers comparison) keeps determinism on; what it times afterwards must
    run the kernels a default training run gets.
    """
    enabled = op_determinism_enabled()
    if enabled:
        tf_config.disable_op_determinism()
    try:
        yield
    finally:
        if enabled:
            tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def frozen_graph_call_options():
    """Calls a frozen graph in its block without TensorFlow's Grappler.

    TensorFlow optimizes a function with Grappler on its first call. On a
    graph that holds its weights as constants, Grappler's passes walk and
    copy those constants: ResNet-101 GFF+DFP spent 8-10 s of a 12-15 s
    first call in them (docs/benchmarks.md). `freeze_function` runs
    Grappler once when it freezes (`grappler_optimized_graph_def`), so
    calls made in this block skip it; a frozen graph that was not
    optimized then (an export made before) still runs, about 10% slower.
    The setting is this thread's, for calls made in the block; TensorFlow
    keys a function's optimized instance by it, so a function must always
    be called with it or always without (each mixture instantiates the
    graph again).

    Yields:
        Nothing; restores the previous call options on exit.
    """
    context = tf_context.context()
    previous = context.function_call_options
    config = config_pb2.ConfigProto.FromString(previous.config_proto_serialized)
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    context.function_call_options = tf_context.FunctionCallOptions(
        executor_type=previous.executor_type, config_proto=config
    )
    try:
        yield
    finally:
        context.function_call_options = previous


def grappler_optimized_graph_def(
    graph_def, inputs: list[str], outputs: list[str]
):
    """Runs TensorFlow's graph optimizer (Grappler) on a `GraphDef` now.

    The passes are the ones the runtime runs on a function's first call
    (pruning, common subexpressions, constant folding, arithmetic and
    dependency rewrites), except the layout optimizer and the memory
    optimizer, which serve GPUs only. Nodes carry no device, so no
    device-specific fusion is made and the graph stays one that any
    TensorFlow runtime, converter or device can run.

    Args:
        graph_def: a `tf.compat.v1.GraphDef`. Consumed: it is cleared, so
            that its copy of the weights can be freed.
        inputs: names of the tensors fed (`"name:0"`); kept.
        outputs: names of the tensors fetched; kept, under their names.

    Returns:
        The optimized `GraphDef`.
    """
    meta_graph = meta_graph_pb2.MetaGraphDef()
    meta_graph.graph_def.CopyFrom(graph_def)
    graph_def.Clear()
    # Fetched nodes are kept under their names; the inputs are listed too,
    # so that an input no output depends on is not pruned away.
    meta_graph.collection_def["train_op"].node_list.value.extend(
        name.split(":")[0] for name in [*inputs, *outputs]
    )
    config = config_pb2.ConfigProto()
    rewrites = config.graph_options.rewrite_options
    rewrites.layout_optimizer = rewriter_config_pb2.RewriterConfig.OFF
    rewrites.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
    # Grappler leaves graphs under 4 nodes alone by default.
    rewrites.min_graph_nodes = -1
    return tf_optimizer.OptimizeGraph(config, meta_graph, verbose=False)
