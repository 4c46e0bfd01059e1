"""predict_logits: whole, sliding-window and multi-scale + flip inference."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gff_keras import GFFNet
from gff_keras.evaluation import predict_logits
from tests.references import np_resize_bilinear
from tests.tolerances import assert_probabilities_close

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)  # module fixtures run before the seed one
    return GFFNet(
        NUM_CLASSES,
        backbone="resnet18",
        output_stride=32,
        fused_channels=16,
        context_channels=32,
    )


def normalized_images(batch, height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 60.0, (batch, height, width, 3)).astype("float32")


class PositionModel:
    """Logits that depend on the window's content and on the position inside
    the window, so a window placed or counted wrongly changes the result."""

    num_classes = 2

    def __call__(self, images, training=False):
        rows = tf.cast(tf.range(tf.shape(images)[1]), tf.float32)
        cols = tf.cast(tf.range(tf.shape(images)[2]), tf.float32)
        return tf.stack(
            [
                images[..., 0] + rows[None, :, None],
                images[..., 1] * (1.0 + cols[None, None, :]),
            ],
            axis=-1,
        )


def np_position_model(images):
    rows = np.arange(images.shape[1], dtype=np.float32)
    cols = np.arange(images.shape[2], dtype=np.float32)
    return np.stack(
        [
            images[..., 0] + rows[None, :, None],
            images[..., 1] * (1.0 + cols[None, None, :]),
        ],
        axis=-1,
    )


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_slide(images, crop, stride, fn):
    """Independent reference: mmsegmentation's window grid, by loops."""
    (ch, cw), (sh, sw) = crop, stride
    _, h, w, _ = images.shape
    ph, pw = max(h, ch), max(w, cw)
    padded = np.zeros((images.shape[0], ph, pw, 3), np.float32)
    padded[:, :h, :w] = images
    total, count = None, np.zeros((ph, pw))
    for r in range(max(ph - ch + sh - 1, 0) // sh + 1):
        for c in range(max(pw - cw + sw - 1, 0) // sw + 1):
            y2, x2 = min(r * sh + ch, ph), min(c * sw + cw, pw)
            y1, x1 = y2 - ch, x2 - cw
            out = fn(padded[:, y1:y2, x1:x2])
            if total is None:
                total = np.zeros(padded.shape[:3] + out.shape[-1:])
            total[:, y1:y2, x1:x2] += out
            count[y1:y2, x1:x2] += 1
    assert count.min() >= 1
    return (total / count[None, :, :, None])[:, :h, :w]


def test_slide_with_one_window_equals_whole(model):
    images = normalized_images(1, 37, 45)
    whole = predict_logits(model, images)
    slide = predict_logits(model, images, mode="slide", crop_size=(37, 45))
    np.testing.assert_array_equal(slide.numpy(), whole.numpy())
    # A window larger than the image sees it padded with 0 (the mean
    # colour) at the bottom and right; the padding is cropped off again.
    padded = np.zeros((1, 48, 48, 3), np.float32)
    padded[:, :37, :45] = images
    expected = predict_logits(model, padded)[:, :37, :45]
    larger = predict_logits(model, images, mode="slide", crop_size=48)
    assert larger.shape == (1, 37, 45, NUM_CLASSES)
    logits = predict_logits(model, padded, output="logits")
    assert_probabilities_close(larger, expected, logits)


def test_ms_flip_single_scale_without_flip_equals_whole(model):
    images = normalized_images(2, 33, 41)
    whole = predict_logits(model, images)
    single = predict_logits(
        model, images, mode="ms_flip", scales=(1.0,), flip=False
    )
    np.testing.assert_array_equal(single.numpy(), whole.numpy())
    logits = predict_logits(model, images, output="logits")
    np.testing.assert_array_equal(
        logits.numpy(), model(images, training=False).numpy()
    )
    np.testing.assert_allclose(whole, np_softmax(logits.numpy()), atol=1e-6)


def test_flip_averaging_is_symmetric(model):
    images = normalized_images(1, 35, 43)
    # Logits: an untrained model's probabilities are often saturated.
    kwargs = dict(mode="ms_flip", scales=(0.75, 1.0), output="logits")
    result = predict_logits(model, images, **kwargs).numpy()
    mirrored = predict_logits(model, images[:, :, ::-1], **kwargs).numpy()
    np.testing.assert_allclose(mirrored, result[:, :, ::-1], atol=1e-4)
    # The averaging does something: the whole-image prediction is not
    # mirror-symmetric in the same way.
    whole = predict_logits(model, images, output="logits").numpy()
    whole_mirrored = predict_logits(
        model, images[:, :, ::-1], output="logits"
    ).numpy()
    assert np.abs(whole_mirrored - whole[:, :, ::-1]).max() > 1e-2


def test_slide_with_small_windows_on_odd_sizes(model):
    images = normalized_images(2, 37, 53)
    eager = predict_logits(model, images, mode="slide", crop_size=24)
    assert eager.shape == (2, 37, 53, NUM_CLASSES)
    np.testing.assert_allclose(eager.numpy().sum(-1), 1.0, atol=1e-5)
    # The same function traced for unknown sizes, as the export uses it.
    traced = tf.function(
        lambda x: predict_logits(model, x, mode="slide", crop_size=24),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
    )
    logits = predict_logits(
        model, images, mode="slide", crop_size=24, output="logits"
    )
    assert_probabilities_close(traced(images), eager, logits)
    # Resizing, flipping and padded windows with sizes known at run time.
    ms_traced = tf.function(
        lambda x: predict_logits(
            model, x, mode="ms_flip", scales=(0.5,), crop_size=24
        ),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
    )
    ms_eager = predict_logits(
        model, images[:1, :29], mode="ms_flip", scales=(0.5,), crop_size=24
    )
    assert ms_eager.shape == (1, 29, 53, NUM_CLASSES)
    ms_logits = predict_logits(
        model,
        images[:1, :29],
        mode="ms_flip",
        scales=(0.5,),
        crop_size=24,
        output="logits",
    )
    assert_probabilities_close(ms_traced(images[:1, :29]), ms_eager, ms_logits)


@pytest.mark.parametrize(
    "size,crop,stride",
    [((23, 30), (8, 12), (5, 7)), ((6, 30), (8, 12), (8, 12))],
    ids=["overlapping", "padded"],
)
def test_slide_matches_numpy_window_average(size, crop, stride):
    images = normalized_images(2, *size)
    result = predict_logits(
        PositionModel(),
        images,
        mode="slide",
        crop_size=crop,
        stride=stride,
        output="logits",
    )
    expected = np_slide(images, crop, stride, np_position_model)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-4)


def test_ms_flip_matches_numpy_reference():
    images = normalized_images(1, 15, 22) / 60.0
    result = predict_logits(
        PositionModel(), images, mode="ms_flip", scales=(0.5, 1.5)
    )
    expected = 0.0
    for scale in (0.5, 1.5):
        # Sizes rounded half up: 15 * 0.5 = 7.5 -> 8.
        h, w = int(15 * scale + 0.5), int(22 * scale + 0.5)
        scaled = np_resize_bilinear(images, h, w)
        for flipped in (False, True):
            x = scaled[:, :, ::-1] if flipped else scaled
            probs = np_softmax(np_position_model(x))
            probs = probs[:, :, ::-1] if flipped else probs
            expected = expected + np_resize_bilinear(probs, 15, 22)
    np.testing.assert_allclose(result, expected / 4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(mode="tiles"), "mode"),
        (dict(mode="slide"), "crop_size"),
        (dict(mode="slide", crop_size=8, stride=9), "stride"),
        (dict(mode="slide", crop_size=(8, 0)), "crop_size"),
        (dict(mode="ms_flip", scales=()), "scales"),
        (dict(output="labels"), "output"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        predict_logits(PositionModel(), normalized_images(1, 8, 8), **kwargs)


def test_rank_and_unknown_classes_are_reported():
    with pytest.raises(ValueError, match="batch, height, width"):
        predict_logits(PositionModel(), np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="num_classes"):
        predict_logits(
            lambda x, training=False: x,
            np.zeros((1, 8, 8, 3), np.float32),
            mode="slide",
            crop_size=4,
        )
