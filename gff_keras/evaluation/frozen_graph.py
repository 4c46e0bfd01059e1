import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)


def freeze_function(concrete_function):
    """Folds a concrete function's variables into constants for inference.

    TensorFlow's oneDNN convolution (the CPU default) reorders a filter
    into its fast blocked layout once and caches it only when the filter
    comes straight from a graph constant. A filter read from a variable,
    or a frozen constant behind the `Identity` that freezing leaves where
    the variable was read, runs on its plain layout: 3x3 convolutions with
    hundreds of channels then take about 1.5x longer (measured in
    `docs/benchmarks.md`). This function freezes the variables and points
    every op that read a constant through an `Identity` at the constant
    itself.

    Inputs and outputs keep their names, shapes and nesting; the result
    holds no variables, so it cannot train, and its weights are copies
    taken now (later updates to the model do not reach it).

    Args:
        concrete_function: a `tf.types.experimental.ConcreteFunction`, e.g.
            `tf.function(lambda x: model(x, training=False))
            .get_concrete_function(tf.TensorSpec([None, None, None, 3]))`.

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
    frozen = convert_variables_to_constants_v2(concrete_function)
    graph_def = frozen.graph.as_graph_def()
    _bypass_constant_identities(graph_def)
    inputs = [tensor.name for tensor in frozen.inputs]
    outputs = [tensor.name for tensor in frozen.outputs]

    def import_graph():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(import_graph, [])
    element = wrapped.graph.as_graph_element
    return wrapped.prune(
        [element(name) for name in inputs],
        tf.nest.pack_sequence_as(
            concrete_function.structured_outputs,
            [element(name) for name in outputs],
        ),
    )


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
