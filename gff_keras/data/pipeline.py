"""tf.data building blocks: read and validate, augment, normalize."""

import sys

import numpy as np
import tensorflow as tf

from gff_keras.data import catalog

# keras.applications.resnet preprocessing ("caffe"): BGR, ImageNet mean
# subtracted, not scaled; the ImageNet weights expect it.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
JPEG_HEADER = b"\xff\xd8\xff"
PNG_HEADER = b"\x89PNG\r\n\x1a\n"
PNG_TRAILER = b"IEND\xaeB`\x82"


def normalize_images(images):
    """RGB uint8/float images -> the backbone's input (keras.applications).

    Args:
        images: `[..., H, W, 3]` RGB values in `[0, 255]`.

    Returns:
        float32 BGR images minus the ImageNet mean, as
        `keras.applications.resnet.preprocess_input` produces.
    """
    images = tf.cast(images, tf.float32)
    return images[..., ::-1] - tf.constant(IMAGENET_BGR_MEAN, tf.float32)


def _is_complete_image(data):
    """True for JPEG/PNG bytes with their header and end marker.

    Catches empty, non-image and truncated files inside the graph, so the
    error can name the file (TensorFlow's decoder errors do not).
    """
    length = tf.strings.length(data)
    is_png = tf.logical_and(
        tf.equal(tf.strings.substr(data, 0, 8), PNG_HEADER),
        tf.equal(
            tf.strings.substr(data, tf.maximum(length - 8, 0), 8), PNG_TRAILER
        ),
    )
    # JPEG writers may append bytes after the end-of-image marker, so look
    # for FF D9 among the last 32 bytes.
    tail = tf.io.decode_raw(
        tf.strings.substr(data, tf.maximum(length - 32, 0), 32), tf.uint8
    )
    has_eoi = tf.reduce_any(
        tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9))
    )
    is_jpeg = tf.logical_and(
        tf.equal(tf.strings.substr(data, 0, 3), JPEG_HEADER), has_eoi
    )
    return tf.logical_and(length > 16, tf.logical_or(is_png, is_jpeg))


def read_example(image_path, label_path, label_table, skip_bad_examples):
    """Reads, decodes and checks one example; maps labels to train ids.

    Args:
        image_path: string tensor.
        label_path: string tensor, `""` for an unlabelled image (its label
            is all ignore).
        label_table: int32 `[256]` raw value -> train id table.
        skip_bad_examples: bool; when False a bad example stops with an error
            naming the file, when True it is flagged and later dropped.

    Returns:
        `(image uint8 [H, W, 3], label uint8 [H, W], ok bool)`.
    """
    image_bytes = tf.io.read_file(image_path)
    has_label = tf.strings.length(label_path) > 0
    label_bytes = tf.cond(
        has_label, lambda: tf.io.read_file(label_path), lambda: tf.constant(b"")
    )
    image_ok = _is_complete_image(image_bytes)
    label_readable = tf.logical_or(
        tf.logical_not(has_label), _is_complete_image(label_bytes)
    )
    checks = []
    if not skip_bad_examples:
        checks.append(
            tf.debugging.Assert(
                image_ok,
                ["Unreadable, empty or truncated image file:", image_path],
            )
        )
        checks.append(
            tf.debugging.Assert(
                label_readable,
                ["Unreadable, empty or truncated label file:", label_path],
            )
        )
    with tf.control_dependencies(checks):
        image = tf.cond(
            image_ok,
            lambda: tf.io.decode_image(
                image_bytes, channels=3, expand_animations=False
            ),
            lambda: tf.zeros([1, 1, 3], tf.uint8),
        )
        raw_label = tf.cond(
            tf.logical_and(has_label, label_readable),
            lambda: tf.io.decode_png(label_bytes, channels=0, dtype=tf.uint8),
            lambda: tf.fill(
                tf.concat([tf.shape(image)[:2], [1]], 0),
                tf.constant(catalog.IGNORE_LABEL, tf.uint8),
            ),
        )
    image.set_shape([None, None, 3])
    single_channel = tf.equal(tf.shape(raw_label)[-1], 1)
    same_size = tf.reduce_all(
        tf.equal(tf.shape(raw_label)[:2], tf.shape(image)[:2])
    )
    label = tf.gather(label_table, tf.cast(raw_label[..., 0], tf.int32))
    values_ok = tf.reduce_all(tf.not_equal(label, catalog.INVALID_LABEL))
    label_ok = tf.logical_and(
        label_readable,
        tf.logical_and(single_channel, tf.logical_and(same_size, values_ok)),
    )
    if not skip_bad_examples:
        checks = [
            tf.debugging.Assert(
                single_channel,
                [
                    "Label file must be a single-channel 8-bit PNG:",
                    label_path,
                ],
            ),
            tf.debugging.Assert(
                same_size,
                [
                    "Label size differs from image size:",
                    label_path,
                    tf.shape(raw_label)[:2],
                    image_path,
                    tf.shape(image)[:2],
                ],
            ),
            tf.debugging.Assert(
                values_ok,
                [
                    "Label file holds values outside the dataset's classes "
                    "and ignore label:",
                    label_path,
                    "max raw value",
                    tf.reduce_max(raw_label),
                ],
                summarize=3,
            ),
        ]
        with tf.control_dependencies(checks):
            label = tf.identity(label)
    ok = tf.logical_and(image_ok, label_ok)
    if skip_bad_examples:
        report = tf.cond(
            ok,
            lambda: tf.constant(True),
            lambda: _report_skipped(image_path, label_path),
        )
        with tf.control_dependencies([report]):
            ok = tf.identity(ok)
    return image, tf.cast(label, tf.uint8), ok


def _report_skipped(image_path, label_path):
    printed = tf.print(
        "WARNING gff_keras: skipping bad example (unreadable image or label, "
        "size mismatch or undefined label value):",
        image_path,
        label_path,
        output_stream=sys.stderr,
    )
    with tf.control_dependencies([printed]):
        return tf.constant(False)


def random_scale(image, label, seed, scale_range):
    """Scales image (bilinear) and label (nearest) by one random factor."""
    scale = tf.random.stateless_uniform(
        [], seed, minval=scale_range[0], maxval=scale_range[1]
    )
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    new_size = tf.maximum(tf.cast(tf.round(size * scale), tf.int32), 1)
    image = tf.image.resize(tf.cast(image, tf.float32), new_size, "bilinear")
    label = tf.image.resize(label[..., None], new_size, "nearest")[..., 0]
    return image, label


def pad_and_random_crop(image, label, crop_size, seed):
    """Pads to at least `crop_size` (0 / ignore label), then crops jointly."""
    crop_h, crop_w = crop_size
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    pad_h = tf.maximum(crop_h - height, 0)
    pad_w = tf.maximum(crop_w - width, 0)
    paddings = [[0, pad_h], [0, pad_w]]
    image = tf.pad(image, paddings + [[0, 0]], constant_values=0.0)
    label = tf.pad(label, paddings, constant_values=catalog.IGNORE_LABEL)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    top = tf.random.stateless_uniform(
        [], seeds[0], maxval=height + pad_h - crop_h + 1, dtype=tf.int32
    )
    left = tf.random.stateless_uniform(
        [], seeds[1], maxval=width + pad_w - crop_w + 1, dtype=tf.int32
    )
    image = image[top : top + crop_h, left : left + crop_w]
    label = label[top : top + crop_h, left : left + crop_w]
    image.set_shape([crop_h, crop_w, 3])
    label.set_shape([crop_h, crop_w])
    return image, label


def random_flip(image, label, seed):
    """Flips image and label left-right together with probability 0.5."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
    label = tf.cond(flip, lambda: label[:, ::-1], lambda: label)
    return image, label


def color_jitter(image, seed, max_delta=10.0):
    """Adds one uniform value in `[-max_delta, max_delta]` per channel."""
    delta = tf.random.stateless_uniform(
        [3], seed, minval=-max_delta, maxval=max_delta
    )
    return tf.clip_by_value(image + delta, 0.0, 255.0)


def augment(image, label, seed, crop_size, scale_range=(0.75, 2.0)):
    """The paper's training augmentation, from decoded uint8 to model input.

    Random scale, pad to the crop (0 for images, the ignore label for
    labels), random crop, horizontal flip, colour jitter in [-10, 10] and
    normalization. Labels are only resampled with nearest neighbour.

    Args:
        image: uint8 `[H, W, 3]`.
        label: uint8 `[H, W]` train ids.
        seed: int `[2]` stateless seed; equal seeds give equal outputs.
        crop_size: `(height, width)`.
        scale_range: `(min, max)` scale factors.

    Returns:
        `(image float32 [crop_h, crop_w, 3], label int32 [crop_h, crop_w])`.
    """
    seeds = tf.random.experimental.stateless_split(seed, 4)
    image, label = random_scale(image, label, seeds[0], scale_range)
    image, label = pad_and_random_crop(image, label, crop_size, seeds[1])
    image, label = random_flip(image, label, seeds[2])
    image = color_jitter(image, seeds[3])
    return normalize_images(image), tf.cast(label, tf.int32)


def table_tensor(table: np.ndarray):
    return tf.constant(np.asarray(table, np.int32))
