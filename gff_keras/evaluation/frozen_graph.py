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
    itself; convolutions inside while loops (sliding-window inference)
    get their filters as constants placed inside the loop.

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
    _constants_into_loops(graph_def)
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
    """Rewires inputs `Identity(Const)` to the `Const`, in place."""
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


# Ops whose second input is a filter that oneDNN caches when it is constant.
_FILTER_OPS = ("Conv2D", "DepthwiseConv2dNative")


def _constants_into_loops(graph_def):
    """Gives convolutions inside while loops their filters as constants.

    Freezing lowers a `tf.while_loop` (sliding-window inference) to frame
    ops: a filter reaches a convolution of the loop body as
    `Const -> Enter(is_constant) -> Identity -> ... -> Conv2D`, so oneDNN
    sees no constant and runs every window on the slow plain layout. For
    each such chain this moves the `Const` into the loop (with a control
    input from a node of the loop body, which places it in the loop's
    frame) and feeds the convolution from it; the `Enter` and `Identity`
    nodes left without consumers are removed. A constant that something
    outside the chain also reads is copied instead of moved. In place.
    """
    nodes = {node.name: node for node in graph_def.node}
    consumers = {}
    for node in graph_def.node:
        for name in node.input:
            consumers.setdefault(name.lstrip("^").split(":")[0], []).append(
                node.name
            )

    def loop_constant(name):
        """(Const, control input in the loop, chain) behind a filter."""
        chain, control = [], None
        node = nodes.get(name.split(":")[0])
        while node is not None and node.op == "Identity":
            chain.append(node)
            control = control or next(
                (i for i in node.input if i.startswith("^")), None
            )
            node = nodes.get(node.input[0].split(":")[0])
        if node is None or node.op != "Enter" or control is None:
            return None
        if not node.attr["is_constant"].b:
            return None
        chain.append(node)
        constant = nodes.get(node.input[0].split(":")[0])
        if constant is None or constant.op != "Const":
            return None
        return constant, control, chain

    moved = {}
    for node in list(graph_def.node):
        if node.op not in _FILTER_OPS or len(node.input) < 2:
            continue
        found = loop_constant(node.input[1])
        if found is None:
            continue
        constant, control, chain = found
        key = (constant.name, control)
        if key not in moved:
            copy = graph_def.node.add()
            copy.CopyFrom(constant)
            copy.name = f"{constant.name}/in_loop"
            copy.input.append(control)
            nodes[copy.name] = copy
            moved[key] = copy.name
        consumers[chain[0].name].remove(node.name)
        node.input[1] = moved[key]
    # Drop the Identity / Enter / Const nodes nothing reads any more.
    removed = set()
    changed = True
    while changed:
        changed = False
        for node in graph_def.node:
            if node.name in removed or node.op not in (
                "Identity",
                "Enter",
                "Const",
            ):
                continue
            if node.name in consumers and not consumers[node.name]:
                removed.add(node.name)
                for name in node.input:
                    source = name.lstrip("^").split(":")[0]
                    if node.name in consumers.get(source, []):
                        consumers[source].remove(node.name)
                changed = True
    if removed:
        kept = [node for node in graph_def.node if node.name not in removed]
        del graph_def.node[:]
        graph_def.node.extend(kept)
