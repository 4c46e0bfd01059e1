import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from gff_keras.keras_internals import grappler_optimized_graph_def


def freeze_function(concrete_function, optimize: bool = True):
    """Folds a concrete function's variables into constants for inference.

    TensorFlow's oneDNN convolution (the CPU default) reorders a filter
    into its fast blocked layout once and caches it only when the filter
    comes straight from a graph constant. A filter read from a variable,
    or a frozen constant behind the `Identity` that freezing leaves where
    the variable was read, runs on its plain layout: 3x3 convolutions with
    hundreds of channels then take about 1.5x longer (measured in
    `docs/benchmarks.md`). This function freezes the variables and points
    every op that read a constant through an `Identity` at the constant
    itself. Each variable read by the function itself becomes one
    constant; a function that passes variables into nested
    functions (the `while` loop of sliding-window inference) is frozen by
    TensorFlow's `convert_variables_to_constants_v2`, which holds several
    copies of the weights while it works.

    TensorFlow optimizes a function with its graph optimizer (Grappler)
    on the function's first call, and over hundreds of megabytes of
    constants that costs seconds (ResNet-101 GFF+DFP: 8-10 s on a 2-core
    Xeon, against a 2 s forward). With `optimize` the frozen graph is
    optimized here, once, and callers skip the runtime pass
    (`gff_keras.keras_internals.frozen_graph_call_options`, used by the
    library's evaluation, predictor and benchmarks); a SavedModel
    exported from it carries the optimized graph.

    Inputs and outputs keep their names, shapes and nesting; the result
    holds no variables, so it cannot train, and its weights are copies
    taken now (later updates to the model do not reach it).

    Args:
        concrete_function: a `tf.types.experimental.ConcreteFunction`, e.g.
            `tf.function(lambda x: model(x, training=False))
            .get_concrete_function(tf.TensorSpec([None, None, None, 3]))`.
        optimize: run Grappler on the frozen graph now (the passes the
            runtime runs on a first call, without device-specific ones).
            Defaults to `True`; a graph handed to another converter
            (LiteRT) is left as traced.

    Returns:
        A concrete function with the same inputs and structured outputs,
        computed from constants.

    Example:

    >>> model = gff_keras.GFFNet(19, backbone="resnet18")
    >>> forward = tf.function(lambda x: model(x, training=False))
    >>> frozen = freeze_function(forward.get_concrete_function(
    ...     tf.TensorSpec([1, 64, 64, 3])))
    >>> frozen(tf.zeros([1, 64, 64, 3])).shape
    TensorShape([1, 64, 64, 19])
    """
    # TF API throughout: Keras has no graph freezing.
    graph_def = _graph_def_with_constants(concrete_function)
    if graph_def is None:
        frozen = convert_variables_to_constants_v2(concrete_function)
        graph_def = frozen.graph.as_graph_def()
        inputs = [tensor.name for tensor in frozen.inputs]
    else:
        captured = {
            internal.op.name for _, internal in concrete_function.graph.captures
        }
        inputs = [
            tensor.name
            for tensor in concrete_function.inputs
            if tensor.op.name not in captured
        ]
    outputs = [tensor.name for tensor in concrete_function.outputs]
    _bypass_constant_identities(graph_def)
    if optimize:
        graph_def = grappler_optimized_graph_def(graph_def, inputs, outputs)
    # Handed over, so that the GraphDef and its copy of the weights are
    # freed once imported (the wrapped function keeps its closure).
    pending = [graph_def]
    del graph_def

    def import_graph():
        tf.compat.v1.import_graph_def(pending.pop(), name="")

    wrapped = tf.compat.v1.wrap_function(import_graph, [])
    element = wrapped.graph.as_graph_element
    return wrapped.prune(
        [element(name) for name in inputs],
        tf.nest.pack_sequence_as(
            concrete_function.structured_outputs,
            [element(name) for name in outputs],
        ),
    )


def _graph_def_with_constants(concrete_function):
    """The function's graph with each captured value as one constant.

    The placeholder of every captured variable or tensor becomes a `Const`
    holding its value, in place, and the variables' `ReadVariableOp`s
    become `Identity`s of those constants. TensorFlow's
    `convert_variables_to_constants_v2` handles any graph but holds
    several copies of the weights while it works (about 8x their size
    measured at ResNet-18 GFF+DFP, docs/benchmarks.md); this copies each
    value once, into the `GraphDef`.

    Returns:
        A `GraphDef`, or `None` when a variable reaches anything but a
        `ReadVariableOp` of the top-level graph (e.g. a `While` loop's
        body, as in sliding-window inference), a captured resource is not
        one of the function's variables, or a captured tensor is symbolic,
        a string or a variant: those graphs are left to
        `convert_variables_to_constants_v2`.
    """
    graph = concrete_function.graph
    variables = {id(variable.handle): variable for variable in graph.variables}
    captured_variables, captured_tensors = {}, {}
    for external, internal in graph.captures:
        if external.dtype == tf.resource:
            if id(external) not in variables:
                return None
            captured_variables[internal.op.name] = variables[id(external)]
        elif external.dtype in (tf.variant, tf.string) or (
            tf.is_symbolic_tensor(external)
        ):
            return None
        else:
            captured_tensors[internal.op.name] = external
    graph_def = graph.as_graph_def()
    # Checked before any weight is copied.
    for node in graph_def.node:
        for index, name in enumerate(node.input):
            source = name.lstrip("^").split(":")[0]
            if source in captured_variables and (
                node.op != "ReadVariableOp" or index > 0 or name[0] == "^"
            ):
                return None
    for node in graph_def.node:
        if node.op == "ReadVariableOp" and node.input[0] in captured_variables:
            dtype = node.attr["dtype"].type
            node.op = "Identity"
            node.attr.clear()
            node.attr["T"].type = dtype
        captured = captured_variables.get(node.name)
        if captured is None:
            captured = captured_tensors.get(node.name)
        if captured is not None:
            dtype = captured.dtype.base_dtype
            node.op = "Const"
            node.attr.clear()
            node.attr["dtype"].type = dtype.as_datatype_enum
            node.attr["value"].tensor.CopyFrom(
                tf.make_tensor_proto(captured.numpy(), dtype=dtype)
            )
    return graph_def


def _bypass_constant_identities(graph_def):
    """Rewires inputs `Identity(Const)` to the `Const`, in place.

    Only the top-level graph: convolutions inside `tf.while_loop` bodies
    (sliding-window inference) keep their `Identity`.
    """
    nodes = {node.name: node for node in graph_def.node}

    def constant_behind(name):
        if name.startswith("^"):
            return None
        node = nodes.get(name.split(":")[0])
        if node is None or node.op != "Identity":
            return None
        source = nodes.get(node.input[0].removesuffix(":0"))
        if source is None or source.op != "Const":
            return None
        return source.name

    for node in graph_def.node:
        for index, name in enumerate(node.input):
            constant = constant_behind(name)
            if constant is not None:
                node.input[index] = constant
