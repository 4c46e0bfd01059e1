import collections

import numpy as np
import tensorflow as tf

from gff_keras import GFFNet
from gff_keras.export import freeze_function
from gff_keras.keras_internals import frozen_graph_call_options
from tests.tolerances import assert_network_close


def _small_model():
    return GFFNet(
        5,
        backbone="resnet18",
        fusion="gff",
        dfp=True,
        fused_channels=16,
        context_channels=32,
    )


def _forward(model):
    return tf.function(lambda images: model(images, training=False))


def test_frozen_function_matches_the_model_on_any_image_size():
    model = _small_model()
    frozen = freeze_function(
        _forward(model).get_concrete_function(
            tf.TensorSpec([None, None, None, 3], tf.float32)
        )
    )
    for shape in [(1, 64, 64, 3), (2, 37, 53, 3)]:
        images = tf.random.stateless_normal(shape, seed=(1, 2))
        assert_network_close(frozen(images), model(images, training=False))


def test_frozen_graph_has_no_variables_and_convolutions_read_constants():
    model = _small_model()
    frozen = freeze_function(
        _forward(model).get_concrete_function(
            tf.TensorSpec([1, 64, 64, 3], tf.float32)
        )
    )
    graph_def = frozen.graph.as_graph_def()
    nodes = {node.name: node for node in graph_def.node}
    assert not [n.op for n in graph_def.node if "Variable" in n.op]
    filters = [
        nodes[node.input[1].split(":")[0]].op
        for node in graph_def.node
        if node.op == "Conv2D"
    ]
    # Every inference convolution of the model (backbone, pyramid pooling,
    # GFF, DFP, classifier; not the training-only auxiliary head) is in the
    # graph and reads its filter from a constant: what lets oneDNN cache
    # its blocked weight layout.
    kernels = [
        w
        for w in model.weights
        if w.path.endswith("kernel")
        and len(w.shape) == 4
        and not w.path.startswith("aux_head/")
    ]
    assert len(filters) == len(kernels)
    assert set(filters) == {"Const"}


def test_frozen_graph_is_optimized_once_and_called_without_grappler():
    # TensorFlow's graph optimizer ran at freezing: batch normalization's
    # rsqrt(variance + epsilon) * gamma is folded into constants and the
    # identities are gone, so a call that skips the optimizer
    # (`frozen_graph_call_options`, what the library's calls use) runs
    # the optimized graph and starts without seconds of passes.
    model = _small_model()
    traced = _forward(model).get_concrete_function(
        tf.TensorSpec([1, 64, 64, 3], tf.float32)
    )

    def op_counts(function):
        graph_def = function.graph.as_graph_def()
        return collections.Counter(node.op for node in graph_def.node)

    as_traced = op_counts(freeze_function(traced, optimize=False))
    frozen = freeze_function(traced)
    optimized = op_counts(frozen)
    assert as_traced["Rsqrt"] > 0 and optimized["Rsqrt"] == 0
    assert optimized["Identity"] <= 1
    assert optimized["Conv2D"] == as_traced["Conv2D"]
    assert sum(optimized.values()) < sum(as_traced.values()) / 3
    # Only ops every runtime and converter knows (no device fusions).
    assert not [op for op in optimized if op.startswith("_")]
    images = tf.random.stateless_normal([1, 64, 64, 3], seed=(3, 4))
    with frozen_graph_call_options():
        called = frozen(images)
    assert_network_close(called, model(images, training=False))


def test_frozen_function_keeps_nested_outputs_and_old_weights():
    model = _small_model()
    forward = tf.function(
        lambda images: {
            "logits": model(images, training=False),
            "images": images,
        }
    )
    frozen = freeze_function(
        forward.get_concrete_function(tf.TensorSpec([1, 32, 32, 3]))
    )
    images = tf.ones([1, 32, 32, 3])
    before = frozen(images)
    assert set(before) == {"logits", "images"}
    assert before["logits"].shape == (1, 32, 32, 5)
    # Frozen weights are a copy: changing the model does not reach them.
    kernel = model.head.classifier.kernel
    kernel.assign(kernel + 1.0)
    np.testing.assert_array_equal(
        frozen(images)["logits"].numpy(), before["logits"].numpy()
    )


def test_a_plain_forward_is_frozen_without_tensorflows_converter(
    monkeypatch,
):
    # TensorFlow's converter holds several copies of the weights while it
    # works; a forward pass that reads its variables itself (and captures
    # a tensor) is frozen with one copy.
    from gff_keras.evaluation import frozen_graph

    def refuse(*args, **kwargs):
        raise AssertionError("convert_variables_to_constants_v2 was used")

    monkeypatch.setattr(
        frozen_graph, "convert_variables_to_constants_v2", refuse
    )
    model = _small_model()
    shift = tf.constant(np.linspace(-1, 1, 5, dtype=np.float32))
    forward = tf.function(lambda images: model(images, training=False) + shift)
    frozen = freeze_function(
        forward.get_concrete_function(tf.TensorSpec([None, 32, 32, 3]))
    )
    images = tf.random.stateless_normal((2, 32, 32, 3), seed=(3, 4))
    assert_network_close(frozen(images), model(images, training=False) + shift)
    assert not frozen.graph.variables


def test_variables_read_inside_a_loop_are_frozen_too():
    # The loop body reads the variables (as sliding-window inference does):
    # TensorFlow's converter freezes those.
    model = _small_model()

    @tf.function
    def twice(images):
        def body(step, total):
            return step + 1, total + model(images, training=False)

        zeros = tf.zeros(tf.concat([tf.shape(images)[:3], [5]], 0))
        return tf.while_loop(lambda step, _: step < 2, body, (0, zeros))[1]

    frozen = freeze_function(
        twice.get_concrete_function(tf.TensorSpec([1, 32, 32, 3]))
    )
    images = tf.random.stateless_normal((1, 32, 32, 3), seed=(5, 6))
    assert_network_close(frozen(images), 2 * model(images, training=False))
    assert not frozen.graph.variables


def test_a_variable_read_at_the_top_and_inside_a_loop_is_frozen():
    # The converter's case, decided before any weight is copied.
    model = _small_model()

    @tf.function
    def plus_twice(images):
        def body(step, total):
            return step + 1, total + model(images, training=False)

        once = model(images, training=False)
        return tf.while_loop(lambda step, _: step < 2, body, (0, once))[1]

    frozen = freeze_function(
        plus_twice.get_concrete_function(tf.TensorSpec([1, 32, 32, 3]))
    )
    images = tf.random.stateless_normal((1, 32, 32, 3), seed=(7, 8))
    assert_network_close(frozen(images), 3 * model(images, training=False))


def test_a_captured_string_leaves_freezing_to_tensorflows_converter():
    model = _small_model()
    label = tf.constant("logits")
    forward = tf.function(
        lambda images: {"logits": model(images, training=False), "name": label}
    )
    frozen = freeze_function(
        forward.get_concrete_function(tf.TensorSpec([1, 32, 32, 3]))
    )
    outputs = frozen(tf.ones([1, 32, 32, 3]))
    assert outputs["name"].numpy() == b"logits"
    assert outputs["logits"].shape == (1, 32, 32, 5)
