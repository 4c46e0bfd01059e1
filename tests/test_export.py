"""export_saved_model: signatures, parity with Keras, tools, bad input."""

import importlib
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from gff_keras import GFFNet
from gff_keras.data import normalize_images
from gff_keras.evaluation import predict_logits
from gff_keras.export import export_saved_model
from gff_keras.imagenet_statistics import IMAGENET_BGR_MEAN
from tests.tolerances import assert_probabilities_close
from tests.tolerances import decided_pixels
from tests.tolerances import probability_tolerance

NUM_CLASSES = 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVED_MODEL_CLI = os.path.join(
    os.path.dirname(sys.executable), "saved_model_cli"
)


def small_model():
    return GFFNet(
        NUM_CLASSES,
        backbone="resnet18",
        output_stride=32,
        fused_channels=16,
        context_channels=32,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export per module: `(model, version_path, loaded)`."""
    keras.utils.set_random_seed(0)  # module fixtures run before the seed one
    model = small_model()
    base = tmp_path_factory.mktemp("export")
    path = export_saved_model(model, str(base))
    return model, path, tf.saved_model.load(path)


def uint8_images(batch, height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)


def keras_outputs(model, images):
    logits = model(normalize_images(images), training=False).numpy()
    return logits, np.argmax(logits, -1), tf.nn.softmax(logits).numpy()


def assert_matches_keras(model, images, outputs):
    logits, predictions, probabilities = keras_outputs(model, images)
    assert outputs["predictions"].dtype == tf.int32
    assert outputs["confidence"].dtype == tf.float32
    assert outputs["predictions"].shape == images.shape[:3]
    # Pixels whose two best logits are closer than float noise may flip
    # between the eager and the exported graph; every other pixel (nearly
    # all of them) must not.
    decided = decided_pixels(logits)
    assert decided.mean() > 0.95
    np.testing.assert_array_equal(
        outputs["predictions"].numpy()[decided], predictions[decided]
    )
    assert_probabilities_close(
        outputs["confidence"], probabilities.max(-1), logits
    )


def swapped_mean_normalize(images):
    """A preprocessing bug: the mean subtracted in RGB order from BGR."""
    bgr = tf.reverse(tf.cast(images, tf.float32), [-1])
    return bgr - tf.constant(IMAGENET_BGR_MEAN[::-1], tf.float32)


def unswapped_channels_normalize(images):
    """A preprocessing bug: RGB images passed on without the swap to BGR."""
    return tf.cast(images, tf.float32) - tf.constant(
        IMAGENET_BGR_MEAN, tf.float32
    )


@pytest.mark.parametrize(
    "wrong_normalize", [swapped_mean_normalize, unswapped_channels_normalize]
)
def test_comparison_fails_on_a_wrongly_preprocessed_export(
    exported, tmp_path, monkeypatch, wrong_normalize
):
    """The float32 tolerance still tells a wrong export from a right one."""
    model, _, _ = exported
    module = importlib.import_module("gff_keras.export.saved_model_export")
    monkeypatch.setattr(module, "normalize_images", wrong_normalize)
    loaded = tf.saved_model.load(export_saved_model(model, str(tmp_path)))
    images = uint8_images(1, 37, 45, seed=37)
    outputs = loaded.signatures["serving_default"](inputs=tf.constant(images))
    with pytest.raises(AssertionError):
        assert_matches_keras(model, images, outputs)


def test_writes_integer_version_directories(exported, tmp_path):
    model, path, _ = exported
    assert os.path.basename(path) == "1"
    # Only the finished version is left, no temporary directory.
    assert os.listdir(os.path.dirname(path)) == ["1"]
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    (tmp_path / "3").mkdir()
    with pytest.raises(FileExistsError, match="immutable"):
        export_saved_model(model, str(tmp_path), version=3)
    with pytest.raises(ValueError, match="version"):
        export_saved_model(model, str(tmp_path), version=0)
    with pytest.raises(ValueError, match="mode"):
        export_saved_model(model, str(tmp_path), mode="tiles")
    assert sorted(os.listdir(tmp_path)) == ["3"]


@pytest.mark.parametrize("size", [(37, 45), (29, 61), (51, 33)])
def test_same_predictions_as_keras_for_odd_sizes(exported, size):
    model, _, loaded = exported
    images = uint8_images(1, *size, seed=size[0])
    outputs = loaded.signatures["serving_default"](inputs=tf.constant(images))
    assert_matches_keras(model, images, outputs)


def test_same_predictions_as_keras_for_a_batch(exported):
    model, _, loaded = exported
    images = uint8_images(3, 35, 47, seed=1)
    outputs = loaded.signatures["serving_default"](inputs=tf.constant(images))
    assert_matches_keras(model, images, outputs)
    # The restored tf.function (not only the signature) works as well.
    np.testing.assert_array_equal(
        loaded.serving_default(tf.constant(images))["predictions"],
        outputs["predictions"],
    )


def test_image_bytes_signature_matches_tensor_signature(exported):
    _, _, loaded = exported
    images = uint8_images(2, 33, 39, seed=2)
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    from_bytes = loaded.signatures["serving_image_bytes"](
        image_bytes=tf.constant(encoded)
    )
    from_tensor = loaded.signatures["serving_default"](
        inputs=tf.constant(images)
    )
    for key in ("predictions", "confidence"):
        np.testing.assert_array_equal(from_bytes[key], from_tensor[key])
    # Grayscale and RGBA files are decoded to RGB.
    gray = images[0, ..., :1]
    rgba = np.concatenate([images[0], np.full_like(gray, 7)], -1)
    for image, rgb in ((gray, np.repeat(gray, 3, -1)), (rgba, images[0])):
        outputs = loaded.signatures["serving_image_bytes"](
            image_bytes=tf.constant([tf.io.encode_png(image).numpy()])
        )
        expected = loaded.signatures["serving_default"](
            inputs=tf.constant(rgb[None])
        )
        np.testing.assert_array_equal(
            outputs["predictions"], expected["predictions"]
        )


def run_tool(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def signature_block(show_output, name):
    match = re.search(
        rf"signature_def\['{name}'\]:(.*?)(?=signature_def\[|\Z)",
        show_output,
        re.S,
    )
    assert match, show_output
    return match.group(1)


def assert_tensor(block, key, dtype, shape):
    match = re.search(
        rf"\['{key}'\] tensor_info:\s*dtype: {dtype}\s*shape: \({shape}\)",
        block,
    )
    assert match, f"{key} {dtype} ({shape}) not in:\n{block}"


def test_saved_model_cli_shows_both_signatures(exported, tmp_path):
    _, path, _ = exported
    output = run_tool(
        [SAVED_MODEL_CLI, "show", "--dir", path, "--all"], tmp_path
    )
    default = signature_block(output, "serving_default")
    assert_tensor(default, "inputs", "DT_UINT8", "-1, -1, -1, 3")
    image_bytes = signature_block(output, "serving_image_bytes")
    assert_tensor(image_bytes, "image_bytes", "DT_STRING", "-1")
    for block in (default, image_bytes):
        assert_tensor(block, "predictions", "DT_INT32", "-1, -1, -1")
        assert_tensor(block, "confidence", "DT_FLOAT", "-1, -1, -1")


def test_saved_model_cli_run(exported, tmp_path):
    model, path, _ = exported
    images = uint8_images(1, 27, 31, seed=3)
    assert_matches_keras(
        model, images, saved_model_cli_run(path, images, tmp_path)
    )


def saved_model_cli_run(path, images, tmp_path):
    """`serving_default` outputs of `saved_model_cli run` (TF1 loader)."""
    np.save(tmp_path / "images.npy", images)
    run_tool(
        [
            SAVED_MODEL_CLI,
            "run",
            "--dir",
            path,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"inputs={tmp_path / 'images.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        tmp_path,
    )
    return {
        key: tf.constant(np.load(tmp_path / "out" / f"{key}.npy"))
        for key in ("predictions", "confidence")
    }


def test_loads_and_runs_without_gff_keras(exported, monkeypatch):
    _, path, loaded = exported
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    identifiers = {
        node.user_object.identifier
        for node in proto.meta_graphs[0].object_graph_def.nodes
        if node.WhichOneof("kind") == "user_object"
    }
    # Only TensorFlow's own objects: no Keras layer needs reviving.
    assert identifiers and not any(
        "keras" in name or "gff" in name for name in identifiers
    ), identifiers
    # Any import of gff_keras during loading or running now fails.
    for name in [m for m in sys.modules if m.split(".")[0] == "gff_keras"]:
        monkeypatch.setitem(sys.modules, name, None)
    images = tf.constant(uint8_images(1, 21, 26, seed=4))
    reloaded = tf.saved_model.load(path)
    np.testing.assert_array_equal(
        reloaded.signatures["serving_default"](inputs=images)["predictions"],
        loaded.signatures["serving_default"](inputs=images)["predictions"],
    )


@pytest.mark.parametrize(
    "inputs,message",
    [
        (np.zeros((1, 9, 9, 4), np.uint8), "received shape.*1 9 9 4"),
        (np.zeros((1, 9, 9, 1), np.uint8), "received shape.*1 9 9 1"),
        (np.zeros((9, 9, 3), np.uint8), "received shape.*9 9 3"),
        (np.zeros((1, 0, 9, 3), np.uint8), "at least 1 x 1 pixels"),
        (np.zeros((1, 9, 9, 3), np.float32), "uint8"),
    ],
    ids=["4_channels", "1_channel", "rank_3", "empty", "float"],
)
def test_bad_tensor_inputs_raise_clear_errors(exported, inputs, message):
    _, _, loaded = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["serving_default"](inputs=tf.constant(inputs))


def test_bad_image_bytes_raise_clear_errors(exported):
    _, _, loaded = exported
    serve = loaded.signatures["serving_image_bytes"]
    png = [
        tf.io.encode_png(uint8_images(1, h, 20)[0]).numpy() for h in (20, 24)
    ]
    with pytest.raises(tf.errors.InvalidArgumentError, match="JPEG or PNG"):
        serve(image_bytes=tf.constant([png[0], b"not an image at all"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same height"):
        serve(image_bytes=tf.constant(png))
    with pytest.raises(tf.errors.InvalidArgumentError, match="no image"):
        serve(image_bytes=tf.constant([], tf.string))
    with pytest.raises(tf.errors.InvalidArgumentError, match="string"):
        serve(image_bytes=tf.constant([1, 2]))


@pytest.mark.slow
def test_export_script_writes_the_next_version(tmp_path):
    model = GFFNet(
        8,
        backbone="resnet18",
        output_stride=32,
        fused_channels=16,
        context_channels=32,
    )
    run = tmp_path / "run"
    (run / "export" / "3").mkdir(parents=True)  # an older version
    (run / "export" / "notes").mkdir()
    model.save(run / "model.keras")
    (run / "config.json").write_text('{"data": {"dataset": "synthetic"}}')
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "export.py"),
            f"--model_dir={run}",
            "--mode=slide",
            "--crop_size=32",
            "--stride=24",
        ],
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    path = run / "export" / "4"
    assert str(path) in result.stdout
    loaded = tf.saved_model.load(str(path))
    images = uint8_images(2, 45, 53, seed=5)
    outputs = loaded.signatures["serving_default"](inputs=tf.constant(images))
    options = dict(mode="slide", crop_size=32, stride=24)
    normalized = normalize_images(images)
    probabilities = predict_logits(model, normalized, **options).numpy()
    # The windows' logits set the bound of their averaged probabilities.
    logits = predict_logits(model, normalized, output="logits", **options)
    tolerance = probability_tolerance(logits)
    decided = decided_pixels(probabilities, tolerance)
    assert decided.mean() > 0.95
    np.testing.assert_array_equal(
        outputs["predictions"].numpy()[decided],
        np.argmax(probabilities, -1)[decided],
    )
    np.testing.assert_allclose(
        outputs["confidence"], probabilities.max(-1), atol=tolerance
    )


@pytest.mark.slow
def test_frozen_export_matches_keras_and_holds_no_variables(tmp_path):
    keras.utils.set_random_seed(1)
    model = small_model()
    path = export_saved_model(model, str(tmp_path / "frozen"), freeze=True)
    images = uint8_images(2, 33, 41, seed=5)
    encoded = [tf.io.encode_jpeg(image, quality=100) for image in images]
    decoded = np.stack([tf.io.decode_jpeg(data).numpy() for data in encoded])
    loaded = tf.saved_model.load(path)
    assert not loaded.signatures["serving_default"].variables
    assert_matches_keras(
        model,
        images,
        loaded.signatures["serving_default"](inputs=tf.constant(images)),
    )
    assert_matches_keras(
        model,
        decoded,
        loaded.signatures["serving_image_bytes"](image_bytes=tf.stack(encoded)),
    )
    # The TF1-style loader of TensorFlow Serving runs it too.
    assert_matches_keras(
        model, images, saved_model_cli_run(path, images, tmp_path)
    )
    # Both signatures run one frozen copy of the model: the weights are
    # stored once (a copy per signature doubled the file and loading
    # time). Batch normalization is folded into the filters, and the
    # auxiliary head is not served, so the copy is a little smaller.
    weight_bytes = sum(4 * int(np.prod(w.shape)) for w in model.weights)
    stored = os.path.getsize(os.path.join(path, "saved_model.pb"))
    assert 0.8 * weight_bytes < stored < 1.2 * weight_bytes
