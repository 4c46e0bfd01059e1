"""The parts the authors' network is made of, against numpy: corner-aligned
resizing, raw-feature gates, PyTorch padding, their dense feature pyramid."""

import keras
import numpy as np
import pytest

from gff_keras import layers
from gff_keras.layers.resizing import resize_bilinear
from tests.references import np_resize_align_corners
from tests.references import np_sigmoid


@pytest.mark.parametrize(
    "size,target",
    [
        ((5, 7), (13, 17)),
        ((49, 65), (13, 17)),
        ((1, 1), (4, 6)),
        ((6, 4), (1, 9)),
    ],
    ids=["up", "down", "broadcast", "to_one"],
)
def test_align_corners_resize_matches_numpy(size, target):
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    expected = np_resize_align_corners(x.astype("float64"), *target)
    actual = np.asarray(resize_bilinear(x, list(target), align_corners=True))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    # Half-pixel sampling is another function (except for the broadcast).
    if size != (1, 1):
        other = np.asarray(resize_bilinear(x, list(target)))
        assert np.abs(other - expected).max() > 1e-2


def test_raw_gates_read_the_unreduced_levels():
    """Eq. 5 on the reduced levels, gates from the raw ones, sequential."""
    rng = np.random.default_rng(1)
    reduced = [
        rng.normal(size=(1, 8, 10, 4)).astype("float32"),
        rng.normal(size=(1, 4, 5, 4)).astype("float32"),
    ]
    raw = [
        rng.normal(size=(1, 8, 10, 3)).astype("float32"),
        rng.normal(size=(1, 4, 5, 7)).astype("float32"),
    ]
    fusion = layers.GatedFullyFusion(
        gate_channels=4,
        order="sequential",
        gate_input="raw",
        align_corners=True,
        return_gates=True,
    )
    fused, gates = fusion(reduced, raw)
    kernels = [np.asarray(conv.kernel)[0, 0] for conv in fusion.gate_convs]
    assert [k.shape for k in kernels] == [(3, 4), (7, 4)]
    g = [
        np_sigmoid(x @ k + np.asarray(conv.bias))
        for x, k, conv in zip(raw, kernels, fusion.gate_convs)
    ]
    fine = reduced[0] * (1 + g[0]) + (1 - g[0]) * np_resize_align_corners(
        g[1] * reduced[1], 8, 10
    )
    # Sequential: the coarse level receives the fine level's fused value.
    coarse = reduced[1] * (1 + g[1]) + (1 - g[1]) * np_resize_align_corners(
        g[0] * fine, 4, 5
    )
    np.testing.assert_allclose(np.asarray(gates[1]), g[1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(fused[0]), fine, atol=1e-5)
    np.testing.assert_allclose(np.asarray(fused[1]), coarse, atol=1e-5)
    config = fusion.get_config()
    assert (config["gate_input"], config["align_corners"]) == ("raw", True)
    with pytest.raises(ValueError, match="needs `raw_inputs`"):
        layers.GatedFullyFusion(gate_input="raw")(reduced)
    with pytest.raises(ValueError, match="gate_input"):
        layers.GatedFullyFusion(gate_input="backbone")


@pytest.mark.parametrize("size", [(8, 6), (7, 9)], ids=["even", "odd"])
def test_max_pool_padding_is_pytorchs(size):
    """PyTorch's MaxPool2d(3, 2, padding=1): a pixel of -inf on each side."""
    x = np.random.default_rng(2).normal(size=(1, *size, 2)).astype("float32")
    padded = layers.ConstantPadding2D(1, float("-inf"))(x)
    pooled = np.asarray(keras.layers.MaxPooling2D(3, strides=2)(padded))
    height, width = [(n + 2 - 3) // 2 + 1 for n in size]
    wide = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    expected = np.stack(
        [
            np.stack(
                [
                    wide[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max((0, 1))
                    for j in range(width)
                ]
            )
            for i in range(height)
        ]
    )[None]
    np.testing.assert_array_equal(pooled, expected)
    layer = layers.ConstantPadding2D(2, value=-1.0)
    assert layers.ConstantPadding2D.from_config(layer.get_config()).value == -1
    with pytest.raises(ValueError, match="padding"):
        layers.ConstantPadding2D(-1)


def np_dense_block(x, block):
    norm1, conv1, norm2, conv2 = block

    def bn_relu(value, norm):
        gamma, beta, mean, variance = (np.asarray(w) for w in norm.weights)
        scaled = (value - mean) / np.sqrt(variance + norm.epsilon)
        return np.maximum(scaled * gamma + beta, 0.0)

    y = bn_relu(x, norm1) @ np.asarray(conv1.kernel)[0, 0] + np.asarray(
        conv1.bias
    )
    y = bn_relu(y, norm2)
    kernel, rate = np.asarray(conv2.kernel), conv2.dilation_rate[0]
    padded = np.pad(y, ((0, 0), (rate, rate), (rate, rate), (0, 0)))
    height, width = y.shape[1:3]
    out = np.asarray(conv2.bias) + 0.0
    for i in range(3):
        for j in range(3):
            window = padded[
                :, i * rate : i * rate + height, j * rate : j * rate + width
            ]
            out = out + window @ kernel[i, j]
    return out


def test_authors_dense_feature_pyramid_matches_numpy(tmp_path):
    rng = np.random.default_rng(3)
    context = rng.normal(size=(1, 4, 5, 9)).astype("float32")
    levels = [
        rng.normal(size=(1, 8, 10, 4)).astype("float32"),
        rng.normal(size=(1, 4, 5, 4)).astype("float32"),
    ]
    pyramid = layers.DenseASPPFeaturePyramid(
        filters=3,
        bottleneck_filters=5,
        dilation_rates=(2, 3),
        align_corners=True,
    )
    pyramid([context] + levels)
    for weight in pyramid.weights:
        low = 0.5 if "variance" in weight.path or "gamma" in weight.path else -1
        weight.assign(rng.uniform(low, 1.5, weight.shape))
    outputs = [np.asarray(y) for y in pyramid([context] + levels)]
    coarse = np_resize_align_corners(levels[1], 8, 10)
    top = np_dense_block(coarse, pyramid.blocks[1])
    bottom = np_dense_block(
        np.concatenate([top, levels[0]], -1), pyramid.blocks[0]
    )
    assert [b[3].dilation_rate for b in pyramid.blocks] == [(3, 3), (2, 2)]
    np.testing.assert_allclose(outputs[1], top, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs[0], bottom, rtol=1e-4, atol=1e-4)
    # Config round trip and a saved model reproduce the outputs.
    config = pyramid.get_config()
    rebuilt = type(pyramid).from_config(config)
    assert rebuilt.get_config() == config
    inputs = [keras.Input((None, None, 9))] + [
        keras.Input((None, None, 4)) for _ in levels
    ]
    model = keras.Model(inputs, pyramid(inputs))
    model.save(tmp_path / "pyramid.keras")
    loaded = keras.models.load_model(tmp_path / "pyramid.keras", safe_mode=True)
    for a, b in zip(loaded([context] + levels), outputs):
        np.testing.assert_allclose(np.asarray(a), b, atol=1e-6)
    with pytest.raises(ValueError, match="one rate per level"):
        layers.DenseASPPFeaturePyramid(dilation_rates=(3,))([context] + levels)
