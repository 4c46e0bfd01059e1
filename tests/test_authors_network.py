"""The authors' released GFFNet: exact structure, converted weights, logits.

`tests/fixtures/authors_gffnet/` holds the authors' `DeepWV3PlusGFFNet` run
unmodified in PyTorch on deterministic weights (README.md: the 97x129
fixture from the project's shared fixtures; README_even.md: 96x128 and
66x100, made the same way). Each test regenerates the weights from the
documented recipe, converts them, and compares logits.
"""

import json
import math
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from gff_keras import GFFNet
from gff_keras.convert import CheckpointMismatchError
from gff_keras.convert import authors_gffnet
from gff_keras.data import dataset_info
from gff_keras.export import export_saved_model
from gff_keras.imagenet_statistics import IMAGENET_BGR_MEAN
from gff_keras.imagenet_statistics import TORCH_RGB_MEAN
from gff_keras.imagenet_statistics import TORCH_RGB_STD
from gff_keras.visualization import Predictor
from gff_keras.visualization import predict_files
from tests.torch_files import write_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "authors_gffnet")
# The fixture README's tolerance; the logits' mean magnitude is 2.2.
LOGITS_ATOL = 1e-3


def fixture_weights():
    """The state dict of the fixture README's recipe, keyed as saved."""
    with open(os.path.join(FIXTURES, "state_dict_shapes.json")) as f:
        shapes = json.load(f)
    weights = {}
    for key, shape in shapes.items():
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            weights["module." + key] = np.zeros(shape, np.int64)
            continue
        if len(shape) == 4:
            fan_in = math.prod(shape[1:])
            value = rng.standard_normal(shape) / math.sqrt(fan_in)
        elif key.endswith("running_var") or (
            len(shape) == 1 and key.endswith("weight")
        ):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        weights["module." + key] = value.astype(np.float32)
    return weights


@pytest.fixture(scope="module")
def weights():
    return fixture_weights()


@pytest.fixture(scope="module")
def torch_input_model(weights):
    """The converted network taking the authors' normalized RGB input."""
    return authors_gffnet(weights, input_preprocessing="torch")


def nhwc(name):
    return np.load(os.path.join(FIXTURES, name)).transpose(0, 2, 3, 1)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["97x129", "96x128", "66x100"])
def test_converted_network_reproduces_the_authors_logits(
    torch_input_model, size
):
    """Odd sizes, and even ones where Keras' "same" padding would shift
    every stride-2 window by a pixel."""
    images = nhwc(f"input_{size}_nchw.npy")
    expected = nhwc(f"logits_{size}_nchw.npy")
    logits = torch_input_model(images, training=False).numpy()
    assert logits.shape == expected.shape
    assert np.abs(logits - expected).max() < LOGITS_ATOL


@pytest.mark.slow
def test_the_preset_is_the_authors_network_exactly():
    model = GFFNet.from_preset("deeplabv3plus_gff_dfp_wrn38", num_classes=19)
    with open(os.path.join(FIXTURES, "state_dict_shapes.json")) as f:
        shapes = json.load(f)
    # Their parameters: every key but the BatchNorm statistics.
    expected = sum(
        math.prod(shape)
        for key, shape in shapes.items()
        if not key.endswith(
            ("running_mean", "running_var", "num_batches_tracked")
        )
    )
    assert model.parameter_count() == expected == 141_103_808
    assert model.aux_head is None
    fusion = model.head.fusion
    assert (fusion.order, fusion.gate_input, fusion.align_corners) == (
        "sequential",
        "raw",
        True,
    )
    assert [c.kernel.shape for c in fusion.gate_convs] == [
        (1, 1, 128, 128),
        (1, 1, 1024, 128),
        (1, 1, 256, 128),
    ]
    assert model.context.image_pooling_first and not model.context.projection
    assert "bn_out" not in {layer.name for layer in model.backbone.layers}


@pytest.mark.slow
def test_one_error_names_every_renamed_missing_and_reshaped_key(weights):
    broken = dict(weights)
    broken["module.gff_head.gate_1.0.weight"] = broken.pop(
        "module.gff_head.gate1.0.weight"
    )
    del broken["module.aspp.img_conv.1.running_var"]
    broken["module.bot_aspp.weight"] = np.zeros((256, 1280, 1, 1), "float32")
    with pytest.raises(CheckpointMismatchError) as error:
        authors_gffnet(broken)
    message = str(error.value)
    assert "missing: aspp.img_conv.1.running_var, gff_head.gate1.0.weight" in (
        message
    )
    assert "unexpected: gff_head.gate_1.0.weight" in message
    assert "wrong shape: bot_aspp.weight (256, 1280, 1, 1)" in message
    assert "(256, 1280, 3, 3)" in message
    with pytest.raises(ValueError, match="input_preprocessing"):
        authors_gffnet(weights, input_preprocessing="bgr")
    with pytest.raises(ValueError, match="num_classes=21"):
        authors_gffnet(weights, num_classes=21)


def authors_normalization(images):
    """The authors' input: RGB scaled to [0, 1], ImageNet mean and std."""
    rgb = images.astype("float32") / 255.0
    return (rgb - np.array(TORCH_RGB_MEAN)) / np.array(TORCH_RGB_STD)


@pytest.mark.slow
def test_export_of_the_converted_network_serves_the_authors_predictions(
    weights, torch_input_model, tmp_path
):
    """uint8 requests through the SavedModel (the pipelines' preprocessing
    inside, converted by the model) give the authors' predictions."""
    model = authors_gffnet(weights)  # input_preprocessing="caffe"
    loaded = tf.saved_model.load(export_saved_model(model, str(tmp_path)))
    images = np.random.default_rng(7).integers(0, 256, (1, 64, 80, 3))
    images = images.astype("uint8")
    outputs = loaded.signatures["serving_default"](inputs=tf.constant(images))
    expected = torch_input_model(authors_normalization(images)).numpy()
    agree = outputs["predictions"].numpy() == expected.argmax(-1)
    assert agree.mean() > 0.999


def convert_script(checkpoint, output):
    return subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "convert_checkpoint.py"),
            f"--checkpoint={checkpoint}",
            f"--output={output}",
        ],
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_convert_script_writes_a_loadable_model(weights, tmp_path):
    checkpoint = write_state_dict(
        tmp_path / "GFFNet_best.pth", weights, epoch=175, mean_iu=0.8123
    )
    output = tmp_path / "gffnet_wrn38_cityscapes.keras"
    result = convert_script(checkpoint, output)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch: 175" in result.stdout
    assert "mean_iu: 0.8123" in result.stdout
    assert "parameters: 141,103,808" in result.stdout
    # The converted file predicts Cityscapes masks and labelIds PNGs.
    predictor = Predictor.load(str(output))
    image = np.random.default_rng(3).integers(0, 256, (40, 56, 3))
    Image.fromarray(image.astype("uint8")).save(tmp_path / "frame.png")
    written = predict_files(
        predictor,
        [str(tmp_path / "frame.png")],
        str(tmp_path / "predictions"),
        dataset_info("cityscapes"),
        write_cityscapes_label_ids=True,
    )
    assert [os.path.basename(path) for path in written] == [
        "frame_mask.png",
        "frame_overlay.png",
        "frame_labelIds.png",
    ]
    model = predictor.model
    images = nhwc("input_66x100_nchw.npy")
    # The default input is the pipelines' ("caffe"): convert the fixture.
    rgb = images * np.array(TORCH_RGB_STD) + np.array(TORCH_RGB_MEAN)
    bgr = rgb[..., ::-1] * 255.0 - np.array(IMAGENET_BGR_MEAN)
    logits = model(bgr.astype("float32"), training=False).numpy()
    expected = nhwc("logits_66x100_nchw.npy")
    assert np.abs(logits - expected).max() < LOGITS_ATOL
    # A missing checkpoint is one line naming it, not a traceback.
    again = convert_script(tmp_path / "missing.pth", tmp_path / "other.keras")
    assert again.returncode != 0
    assert "Traceback" not in again.stderr
    assert "missing.pth" in again.stderr.strip().splitlines()[-1]
