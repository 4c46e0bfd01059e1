"""DilatedResNet structure, strides, and ImageNet weight import."""

import h5py
import keras
import numpy as np
import pytest

from gff_keras.backbones import DilatedResNet
from gff_keras.backbones import load_imagenet_weights
from tests.tolerances import assert_network_close


def write_legacy_h5(model, path):
    """Writes `model`'s weights in the legacy Keras `.h5` layout.

    This is the layout of the ImageNet files keras.applications downloads
    (`resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`): one group per
    layer, listed in `layer_names`, each with its `weight_names`.
    """
    with h5py.File(path, "w") as f:
        names = [layer.name for layer in model.layers]
        f.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = keras.__version__.encode()
        for layer in model.layers:
            group = f.create_group(layer.name)
            weight_names = []
            for index, weight in enumerate(layer.weights):
                name = f"{layer.name}/{weight.name}_{index}:0"
                group.create_dataset(name, data=np.asarray(weight))
                weight_names.append(name.encode())
            group.attrs["weight_names"] = weight_names


def randomize_batch_norm_statistics(model, seed=0):
    """Gives BatchNorm non-trivial moving statistics so they are compared."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.1, beta.shape),
                    rng.normal(0, 0.1, mean.shape),
                    rng.uniform(0.5, 1.5, var.shape),
                ]
            )


APPLICATIONS = {
    50: keras.applications.ResNet50,
    101: keras.applications.ResNet101,
}


@pytest.mark.parametrize(
    "depth,file_format",
    [
        (50, "weights.h5"),
        (50, "legacy.h5"),
        pytest.param(101, "weights.h5", marks=pytest.mark.slow),
    ],
)
def test_output_stride_32_equals_keras_applications(
    depth, file_format, tmp_path
):
    reference = APPLICATIONS[depth](include_top=False, weights=None)
    randomize_batch_norm_statistics(reference)
    path = tmp_path / f"resnet{depth}.{file_format}"
    if file_format == "weights.h5":
        reference.save_weights(path)
    else:
        write_legacy_h5(reference, path)

    backbone = DilatedResNet(depth=depth, output_stride=32)
    copied = load_imagenet_weights(backbone, str(path))
    assert copied == len([lr for lr in reference.layers if lr.weights])

    images = np.random.default_rng(0).normal(size=(2, 96, 64, 3)) * 50
    expected = np.asarray(reference(images, training=False))
    res5 = np.asarray(backbone(images, training=False)["res5"])
    assert res5.shape == expected.shape
    assert_network_close(res5, expected)


def test_load_from_model_instance():
    reference = keras.applications.ResNet50(include_top=False, weights=None)
    backbone = DilatedResNet(depth=50, output_stride=8)
    load_imagenet_weights(backbone, reference)
    for name in ("conv1_conv", "conv4_block6_2_conv", "conv5_block3_3_bn"):
        for a, b in zip(
            backbone.get_layer(name).get_weights(),
            reference.get_layer(name).get_weights(),
        ):
            np.testing.assert_array_equal(a, b)


def test_imagenet_source_downloads_through_keras_applications(monkeypatch):
    calls = []
    real_resnet50 = keras.applications.ResNet50

    def fake_resnet50(**kwargs):
        calls.append(kwargs)
        return real_resnet50(include_top=False, weights=None)

    monkeypatch.setattr(keras.applications, "ResNet50", fake_resnet50)
    load_imagenet_weights(DilatedResNet(depth=50), "imagenet")
    assert calls == [{"include_top": False, "weights": "imagenet"}]


@pytest.mark.parametrize(
    "output_stride,expected",
    [
        (8, {"res2": 4, "res3": 8, "res4": 8, "res5": 8}),
        (16, {"res2": 4, "res3": 8, "res4": 16, "res5": 16}),
        (32, {"res2": 4, "res3": 8, "res4": 16, "res5": 32}),
    ],
)
def test_feature_strides(output_stride, expected):
    backbone = DilatedResNet(depth=18, output_stride=output_stride)
    assert backbone.feature_strides == expected
    features = backbone(np.zeros((1, 128, 96, 3), "float32"))
    for name, stride in expected.items():
        assert features[name].shape[1:3] == (128 // stride, 96 // stride)
    # At odd sizes too, levels of one stride have one size (GatedFullyFusion
    # groups them by stride).
    features = backbone(np.zeros((1, 75, 53, 3), "float32"))
    for name, stride in expected.items():
        assert features[name].shape[1:3] == (-(-75 // stride), -(-53 // stride))


def test_output_stride_8_dilations_and_channels():
    backbone = DilatedResNet(depth=50, output_stride=8)
    dilation = {
        layer.name: layer.dilation_rate
        for layer in backbone.layers
        if layer.name.endswith("_2_conv")
    }
    assert dilation["conv3_block4_2_conv"] == (1, 1)
    assert dilation["conv4_block1_2_conv"] == (1, 1)  # replaces the stride
    assert dilation["conv4_block2_2_conv"] == (2, 2)
    assert dilation["conv5_block1_2_conv"] == (2, 2)
    assert dilation["conv5_block3_2_conv"] == (4, 4)
    features = backbone(np.zeros((1, 65, 97, 3), "float32"))
    assert {k: v.shape[-1] for k, v in features.items()} == {
        "res2": 256,
        "res3": 512,
        "res4": 1024,
        "res5": 2048,
    }
    assert features["res5"].shape[1:3] == (9, 13)  # ceil(65/8), ceil(97/8)


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_depth_layouts(depth):
    backbone = DilatedResNet(depth=depth, stem="deep")
    blocks = {"18": 8, "34": 16, "50": 16, "101": 33, "152": 50}[str(depth)]
    adds = [lr for lr in backbone.layers if lr.name.endswith("_add")]
    assert len(adds) == blocks
    assert backbone.get_layer("stem_conv3").conv.kernel.shape == (3, 3, 64, 128)


def test_keras_applications_parameter_count():
    reference = keras.applications.ResNet50(include_top=False, weights=None)
    assert DilatedResNet(depth=50).count_params() == reference.count_params()


def test_mismatched_weights_raise_and_copy_nothing(tmp_path):
    reference = keras.applications.ResNet50(include_top=False, weights=None)
    backbone = DilatedResNet(depth=50, stem="deep")
    before = [np.array(w) for w in backbone.weights]
    with pytest.raises(ValueError) as error:
        load_imagenet_weights(backbone, reference)
    message = str(error.value)
    assert "nothing was copied" in message
    assert "missing in source: stem_conv1" in message
    assert "not in backbone: conv1_conv" in message
    assert "shape mismatch: conv2_block1_0_conv" in message
    for a, b in zip(before, backbone.weights):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_wrong_depth_file_raises(tmp_path):
    path = tmp_path / "resnet50.weights.h5"
    keras.applications.ResNet50(include_top=False, weights=None).save_weights(
        path
    )
    with pytest.raises(ValueError, match=str(path)):
        load_imagenet_weights(DilatedResNet(depth=101), str(path))


def test_bad_sources_raise():
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load_imagenet_weights(DilatedResNet(depth=18), "missing.h5")
    with pytest.raises(ValueError, match="no ResNet-18"):
        load_imagenet_weights(DilatedResNet(depth=18), "imagenet")
    with pytest.raises(ValueError, match="depth"):
        DilatedResNet(depth=42)
    with pytest.raises(ValueError, match="output_stride"):
        DilatedResNet(depth=18, output_stride=4)
    with pytest.raises(ValueError, match="stem"):
        DilatedResNet(depth=18, stem="wide")


def test_config_round_trip_and_save(tmp_path):
    backbone = DilatedResNet(depth=18, output_stride=16, stem="deep")
    restored = DilatedResNet.from_config(backbone.get_config())
    assert restored.get_config() == backbone.get_config()
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    images = np.random.default_rng(0).normal(size=(1, 40, 56, 3))
    assert_network_close(loaded(images)["res5"], backbone(images)["res5"])
