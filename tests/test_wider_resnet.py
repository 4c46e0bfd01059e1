"""WiderResNet38 (A2): layout, strides, parameters, blocks in numpy, saving."""

import re

import keras
import numpy as np
import pytest

from gff_keras.backbones.wider_resnet38 import WIDER_RESNET38_LAYOUT
from gff_keras.backbones.wider_resnet38 import WiderResNet38
from tests.tolerances import assert_network_close

# inplace_abn's `WiderResNetA2` with structure [3, 3, 6, 3, 1, 1], written
# out independently of the module: mod -> (blocks, channels of the block's
# convolutions, dropout, {output stride: (stride of the first block,
# dilation of the 3x3 convolutions, stride of the mod's output)}).
LAYOUT = {
    "mod2": (3, (128, 128), 0.0, {8: (1, 1, 2), 32: (1, 1, 2)}),
    "mod3": (3, (256, 256), 0.0, {8: (1, 1, 4), 32: (1, 1, 4)}),
    "mod4": (6, (512, 512), 0.0, {8: (2, 1, 8), 32: (2, 1, 8)}),
    "mod5": (3, (512, 1024), 0.0, {8: (1, 2, 8), 32: (2, 1, 16)}),
    "mod6": (1, (512, 1024, 2048), 0.3, {8: (1, 4, 8), 32: (2, 1, 32)}),
    "mod7": (1, (1024, 2048, 4096), 0.5, {8: (1, 4, 8), 32: (1, 1, 32)}),
}
CHANNELS = {mod: row[1][-1] for mod, row in LAYOUT.items()}


@pytest.fixture(scope="module")
def backbones():
    return {stride: WiderResNet38(output_stride=stride) for stride in (8, 32)}


def test_module_layout_constant_matches_the_table():
    assert [
        (mod.name, mod.blocks, tuple(mod.channels), mod.dropout)
        for mod in WIDER_RESNET38_LAYOUT
    ] == [(mod, row[0], row[1], row[2]) for mod, row in LAYOUT.items()]


@pytest.mark.parametrize("output_stride", [8, 32])
def test_layers_follow_the_layout(backbones, output_stride):
    backbone = backbones[output_stride]
    stem = backbone.get_layer("mod1_conv")
    assert stem.filters == 64 and stem.kernel_size == (3, 3)
    assert stem.strides == (1, 1) and not stem.use_bias
    for pool in ("pool2", "pool3"):
        layer = backbone.get_layer(pool)
        assert (layer.pool_size, layer.strides) == ((3, 3), (2, 2))
    blocks_seen = {}
    for layer in backbone.layers:
        match = re.match(r"(mod\d)_block(\d+)_", layer.name)
        if match:
            blocks_seen.setdefault(match[1], set()).add(int(match[2]))
    assert sorted(blocks_seen) == list(LAYOUT)
    for mod, (blocks, channels, dropout, plan) in LAYOUT.items():
        first_stride, dilation, _ = plan[output_stride]
        assert blocks_seen[mod] == set(range(1, blocks + 1)), mod
        kernels = (3, 3) if len(channels) == 2 else (1, 3, 1)
        for block in range(1, blocks + 1):
            prefix = f"{mod}_block{block}"
            stride = first_stride if block == 1 else 1
            for index, (width, kernel) in enumerate(zip(channels, kernels)):
                conv = backbone.get_layer(f"{prefix}_conv{index + 1}")
                assert conv.filters == width, conv.name
                assert conv.kernel_size == (kernel, kernel), conv.name
                assert not conv.use_bias, conv.name
                expected_stride = stride if index == 0 else 1
                assert conv.strides == (expected_stride,) * 2, conv.name
                expected_dilation = dilation if kernel == 3 else 1
                assert conv.dilation_rate == (expected_dilation,) * 2
            # Each mod's first block changes the width, so it projects.
            names = {layer.name for layer in backbone.layers}
            assert (f"{prefix}_proj" in names) == (block == 1), prefix
            if block == 1:
                proj = backbone.get_layer(f"{prefix}_proj")
                assert proj.filters == channels[-1]
                assert proj.strides == (stride, stride)
            if dropout:
                layer = backbone.get_layer(f"{prefix}_dropout")
                assert isinstance(layer, keras.layers.SpatialDropout2D)
                assert layer.rate == dropout
            else:
                assert f"{prefix}_dropout" not in names
    bn_out = backbone.get_layer("bn_out")
    assert bn_out.synchronized and bn_out.epsilon == 1e-5


@pytest.mark.parametrize("output_stride", [8, 32])
def test_feature_shapes_and_strides(backbones, output_stride):
    backbone = backbones[output_stride]
    strides = {mod: row[3][output_stride][2] for mod, row in LAYOUT.items()}
    assert backbone.feature_names == tuple(LAYOUT)
    assert backbone.feature_strides == strides
    assert backbone.feature_channels == CHANNELS
    features = backbone(np.zeros((1, 64, 64, 3), "float32"))
    assert set(features) == set(LAYOUT)
    for mod, stride in strides.items():
        expected = (1, 64 // stride, 64 // stride, CHANNELS[mod])
        assert tuple(features[mod].shape) == expected, mod
    # Odd sizes round up at each stride-2 step ("same" padding).
    features = backbone(np.ones((1, 33, 29, 3), "float32"))
    for mod, stride in strides.items():
        size = (1, -(-33 // stride), -(-29 // stride), CHANNELS[mod])
        assert tuple(features[mod].shape) == size, mod
    assert np.asarray(features["mod7"]).min() >= 0.0  # after bn_out's ReLU


def expected_parameter_counts():
    """(all, trainable) parameters from LAYOUT: bias-free convolutions and
    BatchNorms (gamma, beta trainable; mean, variance not)."""
    convolutions = 3 * 3 * 3 * 64  # mod1
    normalized = 0  # channels that go through a BatchNorm
    channels_in = 64
    for blocks, channels, _, _ in LAYOUT.values():
        kernels = (3, 3) if len(channels) == 2 else (1, 3, 1)
        for block in range(blocks):
            normalized += channels_in  # bn1
            previous = channels_in
            for index, (width, kernel) in enumerate(zip(channels, kernels)):
                if index:
                    normalized += previous  # bn2, bn3
                convolutions += kernel * kernel * previous * width
                previous = width
            if block == 0:
                convolutions += channels_in * channels[-1]  # proj
            channels_in = channels[-1]
    normalized += channels_in  # bn_out
    return convolutions + 4 * normalized, convolutions + 2 * normalized


def test_parameter_count_matches_the_layout(backbones):
    total, trainable = expected_parameter_counts()
    backbone = backbones[8]
    print(f"WiderResNet38 parameters: {backbone.count_params():,}")
    assert backbone.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in backbone.trainable_weights) == (
        trainable
    )
    assert backbones[32].count_params() == total
    # About 105 million, 38 million of them in mod7's bottleneck.
    assert 105e6 < total < 105.2e6


def np_conv(x, kernel, stride=1, dilation=1):
    """PyTorch's convolution as inplace_abn configures it: `(size - 1) *
    dilation + 1` wide windows, `dilation * (size - 1) / 2` zeros on each
    side, `floor((in + 2 pad - span) / stride) + 1` outputs."""
    size = kernel.shape[0]
    span = (size - 1) * dilation + 1
    pad = dilation * (size - 1) // 2
    out_shape = [
        (length + 2 * pad - span) // stride + 1 for length in x.shape[1:3]
    ]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    result = 0.0
    for i in range(size):
        for j in range(size):
            window = padded[
                :,
                i * dilation : i * dilation + (out_shape[0] - 1) * stride + 1,
                j * dilation : j * dilation + (out_shape[1] - 1) * stride + 1,
            ][:, ::stride, ::stride]
            result = result + window @ kernel[i, j]
    return result


def np_block(backbone, prefix, x, stride, dilation, channels):
    """inplace_abn's pre-activation IdentityResidualBlock at inference."""

    def bn_relu(value, name):
        gamma, beta, mean, variance = backbone.get_layer(name).get_weights()
        scale = gamma / np.sqrt(variance + 1e-5)
        return np.maximum((value - mean) * scale + beta, 0.0)

    def weight(name):
        return backbone.get_layer(name).get_weights()[0].astype("float64")

    activated = bn_relu(x, f"{prefix}_bn1")
    kernels = (3, 3) if len(channels) == 2 else (1, 3, 1)
    y = activated
    for index, kernel in enumerate(kernels):
        if index:
            y = bn_relu(y, f"{prefix}_bn{index + 1}")
        y = np_conv(
            y,
            weight(f"{prefix}_conv{index + 1}"),
            stride if index == 0 else 1,
            dilation if kernel == 3 else 1,
        )
    if stride != 1 or x.shape[-1] != channels[-1]:
        shortcut = np_conv(activated, weight(f"{prefix}_proj"), stride)
    else:
        shortcut = x
    return shortcut + y


@pytest.mark.parametrize(
    "output_stride,mod,block,size",
    [
        (8, "mod4", 1, (6, 5)),  # two 3x3 convs, stride 2, projection
        (8, "mod5", 2, (6, 5)),  # two 3x3 convs, dilation 2, identity
        (8, "mod6", 1, (9, 8)),  # bottleneck, dilation 4, projection
        (32, "mod6", 1, (6, 5)),  # bottleneck, stride 2, projection
    ],
)
def test_block_matches_numpy(backbones, output_stride, mod, block, size):
    backbone = backbones[output_stride]
    blocks, channels, _, plan = LAYOUT[mod]
    first_stride, dilation, _ = plan[output_stride]
    prefix = f"{mod}_block{block}"
    previous = list(LAYOUT)[list(LAYOUT).index(mod) - 1]
    start = (
        f"{mod}_block{block - 1}_add"
        if block > 1
        else f"{previous}_block{LAYOUT[previous][0]}_add"
    )
    probe = keras.Model(
        backbone.get_layer(start).output,
        backbone.get_layer(f"{prefix}_add").output,
    )
    rng = np.random.default_rng(0)
    for layer in probe.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, w.shape)
                    if i in (0, 3)
                    else rng.normal(0, 0.5, w.shape)
                    for i, w in enumerate(layer.get_weights())
                ]
            )
    channels_in = probe.inputs[0].shape[-1]
    x = rng.normal(size=(2, *size, channels_in)).astype("float32")
    expected = np_block(
        backbone,
        prefix,
        x.astype("float64"),
        first_stride if block == 1 else 1,
        dilation,
        channels,
    )
    actual = np.asarray(probe(x, training=False))
    assert actual.shape == expected.shape
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, atol=1e-5 * scale, rtol=0)


def test_bad_output_stride_config_and_saving(backbones, tmp_path):
    with pytest.raises(ValueError, match="output_stride"):
        WiderResNet38(output_stride=4)
    backbone = backbones[8]
    config = backbone.get_config()
    assert config["output_stride"] == 8
    assert config["bn_momentum"] == backbone.bn_momentum == 0.9
    assert config["input_shape"] == backbone.image_shape == (None, None, 3)

    path = tmp_path / "wider_resnet38.keras"
    backbone.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, WiderResNet38)
    assert restored.get_config() == config
    assert restored.feature_strides == backbone.feature_strides
    images = np.random.default_rng(1).normal(size=(1, 33, 29, 3))
    expected = backbone(images, training=False)
    actual = restored(images, training=False)
    for name in LAYOUT:
        assert_network_close(actual[name], expected[name], err_msg=name)


def test_output_stride_16_config_round_trip():
    backbone = WiderResNet38(output_stride=16, bn_momentum=0.99, name="wrn")
    rebuilt = WiderResNet38.from_config(backbone.get_config())
    assert rebuilt.get_config() == backbone.get_config()
    assert rebuilt.name == "wrn" and rebuilt.bn_momentum == 0.99
    assert rebuilt.feature_strides == {
        "mod2": 2,
        "mod3": 4,
        "mod4": 8,
        "mod5": 16,
        "mod6": 16,
        "mod7": 16,
    }
    for mod, dilation in (("mod5", 1), ("mod6", 2), ("mod7", 2)):
        conv = rebuilt.get_layer(f"{mod}_block1_conv2")
        assert conv.dilation_rate == (dilation, dilation)
    assert rebuilt.get_layer("mod5_block1_conv1").strides == (2, 2)
    assert rebuilt.get_layer("mod6_block1_conv1").strides == (1, 1)
