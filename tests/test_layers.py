"""Layer tests: one shared contract for every layer, then numpy parity."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from references import np_conv1x1
from references import np_resize_bilinear
from references import np_resize_like
from references import np_sigmoid

from gff_keras import layers
from gff_keras.layers.pyramid_pooling import adaptive_average_pool
from tests.tolerances import assert_network_close

CHANNELS = 8
# Three resolutions with non-integer ratios, finest first.
LEVEL_SIZES = ((16, 20), (8, 10), (5, 7))


def random_levels(sizes=LEVEL_SIZES, channels=CHANNELS, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(batch, h, w, channels)).astype("float32")
        for h, w in sizes
    ]


# (factory, list of input channel counts, per-level size scale).
MULTI_LEVEL_LAYERS = {
    "GatedFullyFusion": lambda: layers.GatedFullyFusion(),
    "GatedFullyFusionSequential": lambda: layers.GatedFullyFusion(
        gate_channels=CHANNELS, order="sequential"
    ),
    "GatedFullyFusionReference": lambda: layers.GatedFullyFusion(
        implementation="reference", level_strides=(4, 8, 16)
    ),
    "ConcatFusion": lambda: layers.ConcatFusion(),
    "AddFusion": lambda: layers.AddFusion(),
    "FPNFusion": lambda: layers.FPNFusion(),
    "GatedFPNFusion": lambda: layers.GatedFPNFusion(),
    "DenseFeaturePyramid": lambda: layers.DenseFeaturePyramid(filters=6),
    "DenseFeaturePyramidDilated": lambda: layers.DenseFeaturePyramid(
        filters=6, kernel_size=3, dilation_rates=(2, 1)
    ),
}
SINGLE_INPUT_LAYERS = {
    "ConvBNReLU": lambda: layers.ConvBNReLU(6, kernel_size=3),
    "PyramidPooling": lambda: layers.PyramidPooling(filters=6),
    "AtrousSpatialPyramidPooling": lambda: layers.AtrousSpatialPyramidPooling(
        filters=6, rates=(2, 3)
    ),
    "DenseAtrousSpatialPyramidPooling": (
        lambda: layers.DenseAtrousSpatialPyramidPooling(6, 4, rates=(2, 3))
    ),
}


def symbolic_model(factory, multi_level):
    """A functional model around the layer, on inputs of unknown size."""
    if multi_level:
        inputs = [
            keras.Input((None, None, CHANNELS)) for _ in range(len(LEVEL_SIZES))
        ]
        outputs = factory()(inputs)
    else:
        inputs = keras.Input((None, None, CHANNELS))
        outputs = factory()(inputs)
    return keras.Model(inputs, outputs)


def numeric_inputs(multi_level, sizes=LEVEL_SIZES):
    if multi_level:
        return random_levels(sizes)
    return random_levels(sizes[:1])[0]


def flatten_shapes(shapes):
    if all(isinstance(d, (int, type(None))) for d in shapes):
        return [tuple(shapes)]
    return [shape for nested in shapes for shape in flatten_shapes(nested)]


ALL_LAYERS = [(name, f, True) for name, f in MULTI_LEVEL_LAYERS.items()] + [
    (name, f, False) for name, f in SINGLE_INPUT_LAYERS.items()
]


@pytest.mark.parametrize(
    "factory,multi_level",
    [(f, m) for _, f, m in ALL_LAYERS],
    ids=[name for name, _, _ in ALL_LAYERS],
)
def test_layer_contract(factory, multi_level, tmp_path):
    """Build, call at two sizes, config round trip, save/load, train step."""
    layer = factory()
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config

    model = symbolic_model(factory, multi_level)
    small = numeric_inputs(multi_level)
    other = numeric_inputs(
        multi_level, sizes=((21, 13), (11, 7), (6, 4))
    )  # a second, unrelated size: nothing may depend on the first
    outputs = keras.tree.flatten(model(small))
    layer = model.layers[-1]
    expected_shapes = flatten_shapes(
        layer.compute_output_shape(
            [x.shape for x in small] if multi_level else small.shape
        )
    )
    assert len(expected_shapes) == len(outputs)
    for output, shape in zip(outputs, expected_shapes):
        assert tuple(output.shape) == tuple(shape)
        assert np.all(np.isfinite(np.asarray(output)))
    # Outputs match the last inputs (DenseFeaturePyramid's first input is
    # the context); gate maps come after the fused maps.
    other_inputs = other if multi_level else [other]
    other_outputs = keras.tree.flatten(model(other))
    expected_sizes = [x.shape[1:3] for x in other_inputs]
    expected_sizes = expected_sizes[len(expected_sizes) - len(other_outputs) :]
    if len(other_outputs) == 2 * len(other_inputs):
        expected_sizes = expected_sizes * 2
    for output, size in zip(other_outputs, expected_sizes):
        assert tuple(output.shape[1:3]) == size

    path = tmp_path / "layer.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    for a, b in zip(
        keras.tree.flatten(model(small)), keras.tree.flatten(reloaded(small))
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)

    if model.trainable_weights:
        before = [np.array(w) for w in model.trainable_weights]
        targets = [np.zeros_like(np.asarray(o)) for o in outputs]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(
            small,
            targets if len(targets) > 1 else targets[0],
            epochs=1,
            verbose=0,
        )
        after = [np.array(w) for w in model.trainable_weights]
        assert any(not np.allclose(a, b) for a, b in zip(before, after))


def reference_gff(features, gates, order):
    """Paper eq. 5 in numpy; `sequential` sends already fused levels."""
    current = list(features)
    fused = []
    for level, (x, gate) in enumerate(zip(features, gates)):
        source = current if order == "sequential" else features
        received = sum(
            np_resize_like(gates[i] * source[i], x)
            for i in range(len(features))
            if i != level
        )
        output = (1 + gate) * x + (1 - gate) * received
        fused.append(output)
        current[level] = output
    return fused


@pytest.mark.parametrize("order", ["simultaneous", "sequential"])
@pytest.mark.parametrize("gate_channels", [1, CHANNELS])
def test_gated_fully_fusion_matches_numpy_eq5(order, gate_channels):
    features = random_levels()
    layer = layers.GatedFullyFusion(
        gate_channels=gate_channels, order=order, return_gates=True
    )
    fused, gates = layer(features)
    # Random, non-trivial gate weights so the gates spread over (0, 1).
    rng = np.random.default_rng(1)
    for conv in layer.gate_convs:
        kernel, bias = conv.get_weights()
        conv.set_weights(
            [rng.normal(size=kernel.shape), rng.normal(size=bias.shape)]
        )
    fused, gates = layer(features)

    expected_gates = [
        np_sigmoid(np_conv1x1(x, conv))
        for x, conv in zip(features, layer.gate_convs)
    ]
    expected = reference_gff(features, expected_gates, order)
    for gate, expected_gate in zip(gates, expected_gates):
        gate = np.asarray(gate)
        assert gate.shape[-1] == gate_channels
        assert gate.min() >= 0.0 and gate.max() <= 1.0
        np.testing.assert_allclose(gate, expected_gate, rtol=1e-5, atol=1e-6)
    for output, reference in zip(fused, expected):
        np.testing.assert_allclose(
            np.asarray(output), reference, rtol=1e-4, atol=1e-4
        )


def test_gff_orders_differ():
    """Sequential fusion is a different function, not an alias."""
    features = random_levels()
    simultaneous = layers.GatedFullyFusion(order="simultaneous")
    sequential = layers.GatedFullyFusion(order="sequential")
    simultaneous(features)
    sequential(features)
    sequential.set_weights(simultaneous.get_weights())
    a = simultaneous(features)
    b = sequential(features)
    np.testing.assert_allclose(np.asarray(a[0]), np.asarray(b[0]), atol=1e-6)
    assert not np.allclose(np.asarray(a[-1]), np.asarray(b[-1]), atol=1e-3)


@pytest.mark.parametrize("order", ["simultaneous", "sequential"])
def test_gff_closed_gates_return_inputs(order):
    features = random_levels()
    layer = layers.GatedFullyFusion(order=order, return_gates=True)
    layer(features)
    for conv in layer.gate_convs:
        kernel, bias = conv.get_weights()
        conv.set_weights([np.zeros_like(kernel), np.full_like(bias, -200.0)])
    fused, gates = layer(features)
    for gate in gates:
        assert np.asarray(gate).max() < 1e-30
    for output, x in zip(fused, features):
        np.testing.assert_allclose(np.asarray(output), x, atol=1e-6)


# Level strides of a ResNet at output stride 8, 16 and 32, and of every
# level resized to 1/8 first (GFFNet's `level_resolution="output_stride"`).
STRIDE_LAYOUTS = {
    "os8": (4, 8, 8, 8),
    "os16": (4, 8, 16, 16),
    "os32": (4, 8, 16, 32),
    "one_size": (8, 8, 8, 8),
}


def level_sizes(height, width, strides):
    """Sizes of ResNet levels for an image: each stride-2 step rounds up."""
    sizes = []
    for stride in strides:
        steps = stride.bit_length() - 1
        h, w = height, width
        for _ in range(steps):
            h, w = -(-h // 2), -(-w // 2)
        sizes.append((h, w))
    return sizes


def gff_pair(strides, gate_channels, features):
    """Grouped and reference fusions with equal, spread gate weights."""
    kwargs = dict(gate_channels=gate_channels, return_gates=True)
    grouped = layers.GatedFullyFusion(level_strides=strides, **kwargs)
    reference = layers.GatedFullyFusion(implementation="reference", **kwargs)
    grouped(features)
    reference(features)
    rng = np.random.default_rng(1)
    grouped.set_weights(
        [rng.normal(size=w.shape) for w in grouped.get_weights()]
    )
    reference.set_weights(grouped.get_weights())
    return grouped, reference


def unknown_size_model(layer):
    inputs = [keras.Input((None, None, CHANNELS)) for _ in range(4)]
    return keras.Model(inputs, layer(inputs))


def assert_same_fusion(a, b):
    # Two orderings of the same sums: the float32 bound of tolerances.py.
    for x, y in zip(keras.tree.flatten(a), keras.tree.flatten(b)):
        assert_network_close(x, y)


@pytest.mark.parametrize("gate_channels", [1, CHANNELS])
@pytest.mark.parametrize("layout", list(STRIDE_LAYOUTS))
def test_grouped_gff_equals_reference(layout, gate_channels):
    strides = STRIDE_LAYOUTS[layout]
    # An odd image size, so that the levels' sizes are not exact ratios.
    features = random_levels(level_sizes(75, 53, strides))
    grouped, reference = gff_pair(strides, gate_channels, features)
    expected = reference(features)
    assert_same_fusion(grouped(features), expected)
    # Static sizes unknown: grouped by `level_strides`.
    assert_same_fusion(unknown_size_model(grouped)(features), expected)
    for zeroed in [(0,), (2,), (1, 3)]:
        grouped.zeroed_levels = reference.zeroed_levels = zeroed
        assert_same_fusion(grouped(features), reference(features))
    grouped.zeroed_levels = ()
    # Without strides, levels of unknown size are groups of one.
    grouped.level_strides = None
    assert_same_fusion(unknown_size_model(grouped)(features), expected)


def count_resizes(layer, channels=CHANNELS, levels=4, sizes=None):
    """Resize ops in the graph of one call, on static or unknown sizes."""
    sizes = sizes or [(None, None)] * levels
    specs = [tf.TensorSpec((1, h, w, channels)) for h, w in sizes]
    graph = tf.function(layer).get_concrete_function(specs).graph
    return sum(op.type == "ResizeBilinear" for op in graph.get_operations())


@pytest.mark.parametrize(
    "layout,reference_count,grouped_count",
    [("os8", 12, 2), ("os16", 12, 6), ("os32", 12, 12), ("one_size", 12, 0)],
)
def test_grouped_gff_resizes_once_per_pair_of_groups(
    layout, reference_count, grouped_count
):
    strides = STRIDE_LAYOUTS[layout]
    features = random_levels(level_sizes(75, 53, strides))
    grouped, reference = gff_pair(strides, 1, features)
    assert count_resizes(reference) == reference_count
    assert count_resizes(grouped) == grouped_count
    # With known sizes and no strides, levels group by size.
    grouped.level_strides = None
    sizes = [x.shape[1:3] for x in features]
    assert count_resizes(grouped, sizes=sizes) == grouped_count
    # The sequential order keeps the direct loop.
    sequential = layers.GatedFullyFusion(
        order="sequential", level_strides=strides
    )
    sequential(features)
    assert count_resizes(sequential) == reference_count


def test_gff_config_keeps_implementation_and_strides():
    layer = layers.GatedFullyFusion(
        implementation="reference", level_strides=[4, 8, 8]
    )
    config = layer.get_config()
    assert config["implementation"] == "reference"
    assert tuple(config["level_strides"]) == (4, 8, 8)
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert restored.implementation == "reference"
    assert restored.level_strides == (4, 8, 8)
    assert layers.GatedFullyFusion().get_config()["implementation"] == (
        "grouped"
    )


def test_baseline_fusions_match_numpy():
    features = random_levels()
    add = [np.asarray(x) for x in layers.AddFusion()(features)]
    concat = [np.asarray(x) for x in layers.ConcatFusion()(features)]
    fpn = [np.asarray(x) for x in layers.FPNFusion()(features)]
    for level, x in enumerate(features):
        resized = [np_resize_like(other, x) for other in features]
        np.testing.assert_allclose(add[level], sum(resized), atol=1e-4)
        np.testing.assert_allclose(
            concat[level], np.concatenate(resized, axis=-1), atol=1e-4
        )
    expected = [features[-1]]
    for x in reversed(features[:-1]):
        expected.append(x + np_resize_like(expected[-1], x))
    for output, reference in zip(fpn, expected[::-1]):
        np.testing.assert_allclose(output, reference, atol=1e-4)


def test_gated_fpn_matches_numpy():
    features = random_levels()
    layer = layers.GatedFPNFusion(return_gates=True)
    fused, gates = layer(features)
    gates = [
        np_sigmoid(np_conv1x1(x, conv))
        for x, conv in zip(features, layer.gate_convs)
    ]
    expected = [features[-1]]
    for level in reversed(range(len(features) - 1)):
        x, gate = features[level], gates[level]
        message = np_resize_like(gates[level + 1] * expected[-1], x)
        expected.append((1 + gate) * x + (1 - gate) * message)
    for output, reference in zip(fused, expected[::-1]):
        np.testing.assert_allclose(np.asarray(output), reference, atol=1e-4)


def test_dense_feature_pyramid_matches_numpy():
    """Eq. 6 with 1x1 blocks; fresh BatchNorm in inference is x/sqrt(1+eps)."""
    rng = np.random.default_rng(3)
    context = rng.normal(size=(2, 5, 7, 12)).astype("float32")
    levels = random_levels()
    layer = layers.DenseFeaturePyramid(filters=4)
    outputs = layer([context] + levels, training=False)

    def block(x, level):
        conv = layer.blocks[level].conv
        scale = 1.0 / np.sqrt(1.0 + layer.blocks[level].batch_norm.epsilon)
        return np.maximum(x @ np.asarray(conv.kernel)[0, 0] * scale, 0.0)

    above = [context]
    expected = [None] * len(levels)
    for level in reversed(range(len(levels))):
        x = levels[level]
        dense = np.concatenate(
            [np_resize_like(y, x) for y in above] + [x], axis=-1
        )
        expected[level] = block(dense, level)
        above.append(expected[level])
    assert [tuple(b.conv.kernel.shape[2:]) for b in layer.blocks] == [
        (12 + 2 * 4 + 8, 4),  # context, two pyramid levels above, own
        (12 + 4 + 8, 4),
        (12 + 8, 4),
    ]
    for output, reference in zip(outputs, expected):
        np.testing.assert_allclose(np.asarray(output), reference, atol=1e-4)


@pytest.mark.parametrize("height,width", [(13, 17), (6, 6), (64, 48)])
@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_adaptive_average_pool_matches_pytorch_definition(height, width, bins):
    x = np.random.default_rng(0).normal(size=(2, height, width, 3))
    x = x.astype("float32")
    expected = np.zeros((2, bins, bins, 3), "float32")
    for i in range(bins):
        r0, r1 = (i * height) // bins, -(-((i + 1) * height) // bins)
        for j in range(bins):
            c0, c1 = (j * width) // bins, -(-((j + 1) * width) // bins)
            expected[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    np.testing.assert_allclose(
        np.asarray(adaptive_average_pool(x, bins)), expected, atol=1e-5
    )


def test_pyramid_pooling_structure():
    ppm = layers.PyramidPooling(filters=16, bins=(1, 2, 3, 6))
    out = ppm(np.zeros((1, 9, 11, 32), "float32"))
    assert out.shape == (1, 9, 11, 16)
    assert [b.conv.kernel.shape for b in ppm.branches] == [(1, 1, 32, 8)] * 4
    assert ppm.bottleneck.conv.kernel.shape == (3, 3, 32 + 4 * 8, 16)


def test_bilinear_resize_matches_numpy():
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype("float32")
    reference = np.zeros((2, 13, 4, 1), "float32")
    out = layers.BilinearResize()(x, reference)
    np.testing.assert_allclose(
        np.asarray(out), np_resize_bilinear(x, 13, 4), atol=1e-5
    )


@pytest.mark.parametrize(
    "layer,inputs,message",
    [
        (
            layers.GatedFullyFusion(),
            [np.zeros((1, 4, 4, 8)), np.zeros((1, 2, 2, 6))],
            "same known channel count",
        ),
        (layers.AddFusion(), [np.zeros((1, 4, 4, 8))], "at least 2"),
        (layers.ConvBNReLU(4), np.zeros((4, 4, 8)), "rank-4"),
        (
            layers.GatedFullyFusion(gate_channels=3),
            [np.zeros((1, 4, 4, 8)), np.zeros((1, 2, 2, 8))],
            "gate_channels",
        ),
        (
            layers.GatedFullyFusion(level_strides=(4, 8, 8)),
            [np.zeros((1, 4, 4, 8)), np.zeros((1, 2, 2, 8))],
            "one stride per level",
        ),
        (
            layers.GatedFullyFusion(level_strides=(8, 8)),
            [np.zeros((1, 4, 4, 8)), np.zeros((1, 2, 2, 8))],
            "same height and width",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(layer, inputs, message):
    with pytest.raises(ValueError, match=message):
        layer(inputs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="order"):
        layers.GatedFullyFusion(order="parallel")
    with pytest.raises(ValueError, match="implementation"):
        layers.GatedFullyFusion(implementation="fast")
    with pytest.raises(ValueError, match="level_strides"):
        layers.GatedFullyFusion(level_strides=(4, 0))
    with pytest.raises(ValueError, match="bins"):
        layers.PyramidPooling(bins=(0, 2))
