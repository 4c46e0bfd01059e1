"""DilatedDenseNet: keras.applications parity, dilation, weight import."""

import keras
import numpy as np
import pytest
from test_backbones import randomize_batch_norm_statistics
from test_backbones import write_legacy_h5

from gff_keras.backbones import DilatedDenseNet
from gff_keras.backbones import load_imagenet_weights
from gff_keras.data.pipeline import normalize_images
from tests.tolerances import assert_network_close

# keras.applications' tensors for the four dense block outputs.
REFERENCE_OUTPUTS = {
    "dense1": "conv2_block6_concat",
    "dense2": "conv3_block12_concat",
    "dense3": "conv4_block24_concat",
    "dense4": "relu",
}


def test_output_stride_32_equals_keras_applications(tmp_path):
    reference = keras.applications.DenseNet121(include_top=False, weights=None)
    randomize_batch_norm_statistics(reference)
    path = tmp_path / "densenet121.weights.h5"
    reference.save_weights(path)

    backbone = DilatedDenseNet(
        depth=121, output_stride=32, input_preprocessing="torch"
    )
    copied = load_imagenet_weights(backbone, str(path))
    assert copied == len([layer for layer in reference.layers if layer.weights])
    assert backbone.count_params() == reference.count_params()

    probe = keras.Model(
        reference.input,
        {
            name: reference.get_layer(layer).output
            for name, layer in REFERENCE_OUTPUTS.items()
        },
    )
    images = np.random.default_rng(0).normal(size=(2, 70, 64, 3))
    images = images.astype("float32")
    expected = probe(images, training=False)
    features = backbone(images, training=False)
    for name in REFERENCE_OUTPUTS:
        reference_value = np.asarray(expected[name])
        value = np.asarray(features[name])
        assert value.shape == reference_value.shape, name
        assert_network_close(value, reference_value, err_msg=name)


@pytest.mark.parametrize(
    "output_stride,strides,dilations",
    [
        (8, (4, 8, 8, 8), (1, 1, 2, 4)),
        (16, (4, 8, 16, 16), (1, 1, 1, 2)),
        (32, (4, 8, 16, 32), (1, 1, 1, 1)),
    ],
)
def test_strides_dilations_and_channels(output_stride, strides, dilations):
    backbone = DilatedDenseNet(output_stride=output_stride)
    assert backbone.feature_names == ("dense1", "dense2", "dense3", "dense4")
    assert tuple(backbone.feature_strides.values()) == strides
    for block, (dilation, layers) in enumerate(zip(dilations, (6, 12, 24, 16))):
        for layer in (1, layers):
            conv = backbone.get_layer(f"conv{block + 2}_block{layer}_2_conv")
            assert conv.dilation_rate == (dilation, dilation)
        bottleneck = backbone.get_layer(f"conv{block + 2}_block1_1_conv")
        assert bottleneck.dilation_rate == (1, 1)
    pools = {layer.name for layer in backbone.layers if "_pool" in layer.name}
    expected_pools = {
        f"pool{index + 2}_pool"
        for index, stride in enumerate(strides[1:])
        if stride > strides[index]
    }
    assert pools == expected_pools
    features = backbone(np.zeros((1, 64, 48, 3), "float32"))
    for name, stride in zip(backbone.feature_names, strides):
        assert tuple(features[name].shape) == (
            1,
            64 // stride,
            48 // stride,
            backbone.feature_channels[name],
        )
    assert tuple(backbone.feature_channels.values()) == (256, 512, 1024, 1024)
    # At odd sizes levels of one stride still share one size (GFFNet groups
    # them by stride); the stride-2 layers floor like keras.applications'.
    features = backbone(np.zeros((1, 65, 47, 3), "float32"))
    sizes = {}
    for name, stride in zip(backbone.feature_names, strides):
        sizes.setdefault(stride, set()).add(tuple(features[name].shape[1:3]))
    assert all(len(shapes) == 1 for shapes in sizes.values())
    assert sizes[4] == {(17, 12)}
    assert sizes[8] == {(8, 6)}


@pytest.mark.parametrize(
    "depth",
    [
        121,
        pytest.param(169, marks=pytest.mark.slow),
        pytest.param(201, marks=pytest.mark.slow),
    ],
)
def test_layers_match_keras_applications(depth):
    application = getattr(keras.applications, f"DenseNet{depth}")
    reference = application(include_top=False, weights=None)
    backbone = DilatedDenseNet(depth=depth, output_stride=8)
    assert backbone.count_params() == reference.count_params()

    def weighted(model):
        return [
            (layer.name, [tuple(w.shape) for w in layer.weights])
            for layer in model.layers
            if layer.weights
        ]

    assert weighted(backbone) == weighted(reference)
    assert backbone.feature_channels["dense4"] == reference.output.shape[-1]


@pytest.mark.parametrize(
    "include_top,file_format", [(True, "weights.h5"), (False, "legacy.h5")]
)
def test_load_weight_files(include_top, file_format, tmp_path):
    reference = keras.applications.DenseNet121(
        include_top=include_top, weights=None
    )
    randomize_batch_norm_statistics(reference)
    path = tmp_path / f"densenet121.{file_format}"
    if file_format == "weights.h5":
        reference.save_weights(path)
    else:
        # The layout of the files keras.applications downloads.
        write_legacy_h5(reference, path)
    backbone = DilatedDenseNet(depth=121, output_stride=8)
    load_imagenet_weights(backbone, str(path))
    for name in ("conv1_conv", "pool3_bn", "conv5_block16_2_conv", "bn"):
        for a, b in zip(
            backbone.get_layer(name).get_weights(),
            reference.get_layer(name).get_weights(),
        ):
            np.testing.assert_array_equal(a, b)


def test_imagenet_source_downloads_through_keras_applications(monkeypatch):
    calls = []
    real = keras.applications.DenseNet121

    def fake(**kwargs):
        calls.append(kwargs)
        return real(include_top=False, weights=None)

    monkeypatch.setattr(keras.applications, "DenseNet121", fake)
    load_imagenet_weights(DilatedDenseNet(output_stride=8), "imagenet")
    assert calls == [{"include_top": False, "weights": "imagenet"}]


def test_bad_arguments_and_wrong_weights_raise(tmp_path):
    with pytest.raises(ValueError, match="depth"):
        DilatedDenseNet(depth=100)
    with pytest.raises(ValueError, match="output_stride"):
        DilatedDenseNet(output_stride=4)
    # DenseNet-169 weights do not fit a DenseNet-121: nothing is copied.
    backbone = DilatedDenseNet(depth=121)
    before = [np.array(weight) for weight in backbone.weights]
    other = keras.applications.DenseNet169(include_top=False, weights=None)
    with pytest.raises(ValueError, match="nothing was copied") as error:
        load_imagenet_weights(backbone, other)
    assert "not in backbone: conv4_block25_0_bn" in str(error.value)
    assert "stem" not in str(error.value)
    for a, b in zip(before, backbone.weights):
        np.testing.assert_array_equal(a, np.asarray(b))
    # A single mis-shaped layer is named.
    gray = DilatedDenseNet(
        depth=121, input_shape=(None, None, 1), input_preprocessing="torch"
    )
    with pytest.raises(ValueError, match="1 mismatches") as error:
        load_imagenet_weights(backbone, gray)
    assert "shape mismatch: conv1_conv" in str(error.value)


@pytest.mark.slow
def test_config_round_trip_and_save(tmp_path):
    backbone = DilatedDenseNet(depth=121, output_stride=16, name="densenet")
    config = backbone.get_config()
    assert DilatedDenseNet.from_config(config).get_config() == config
    path = tmp_path / "densenet.keras"
    backbone.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    images = np.random.default_rng(1).normal(size=(1, 40, 40, 3))
    for name in backbone.feature_names:
        assert_network_close(reloaded(images)[name], backbone(images)[name])


def test_pipeline_images_reach_densenet_preprocessed_as_imagenet_expects():
    """normalize_images (ResNet "caffe" input) then the default backbone
    equals keras.applications' DenseNet on densenet.preprocess_input."""
    reference = keras.applications.DenseNet121(include_top=False, weights=None)
    backbone = DilatedDenseNet(depth=121, output_stride=32)
    assert backbone.input_preprocessing == "caffe"
    load_imagenet_weights(backbone, reference)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 48, 40, 3)).astype("float32")
    expected = reference(
        keras.applications.densenet.preprocess_input(images.copy()),
        training=False,
    )
    features = backbone(normalize_images(images), training=False)
    assert_network_close(features["dense4"], expected)
    with pytest.raises(ValueError, match="input_preprocessing"):
        DilatedDenseNet(input_preprocessing="tf")
