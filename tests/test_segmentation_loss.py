"""SegmentationLoss against a numpy cross-entropy with an ignore label."""

import numpy as np
import tensorflow as tf

from gff_keras.training import SegmentationLoss


def numpy_cross_entropy(labels, logits, ignore_label=255):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    valid = labels != ignore_label
    picked = np.take_along_axis(
        log_probs, np.where(valid, labels, 0)[..., None], axis=-1
    )[..., 0]
    return -(picked * valid).sum() / max(valid.sum(), 1)


def test_matches_numpy_with_ignored_pixels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 7, 5, 6)).astype("float32") * 3
    labels = rng.integers(0, 6, size=(3, 7, 5))
    labels[rng.random(labels.shape) < 0.3] = 255
    loss = SegmentationLoss()(labels, logits)
    np.testing.assert_allclose(
        float(loss), numpy_cross_entropy(labels, logits), rtol=1e-5
    )
    # Channel-last labels [B, H, W, 1] are accepted too.
    np.testing.assert_allclose(
        float(SegmentationLoss()(labels[..., None], logits)), float(loss)
    )


def test_ignored_pixels_do_not_matter_and_all_ignored_is_zero():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 4, 4, 3)).astype("float32")
    labels = np.full((1, 4, 4), 255)
    assert float(SegmentationLoss()(labels, logits)) == 0.0
    labels[0, 0, 0] = 2
    other = logits.copy()
    other[0, 1:] += 100.0  # change only ignored pixels
    assert float(SegmentationLoss()(labels, logits)) == float(
        SegmentationLoss()(labels, other)
    )


def test_custom_ignore_label_and_config():
    loss = SegmentationLoss(ignore_label=0)
    assert SegmentationLoss.from_config(loss.get_config()).ignore_label == 0
    logits = np.zeros((1, 1, 2, 3), "float32")
    np.testing.assert_allclose(
        float(loss(np.array([[[0, 1]]]), logits)), np.log(3), rtol=1e-6
    )


def test_float16_logits_give_float32_loss():
    logits = tf.cast(
        np.random.default_rng(2).normal(size=(1, 3, 3, 4)), "float16"
    )
    labels = np.zeros((1, 3, 3), "int32")
    value = SegmentationLoss(dtype="float32")(labels, logits)
    assert value.dtype == tf.float32
