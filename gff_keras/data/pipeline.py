"""tf.data building blocks: read and validate, augment, normalize."""

import sys

import numpy as np
import tensorflow as tf

from gff_keras.data import catalog
from gff_keras.imagenet_statistics import IMAGENET_BGR_MEAN

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
    # tf.reverse is about 5x faster than a [..., ::-1] strided slice here.
    return tf.reverse(images, [-1]) - tf.constant(IMAGENET_BGR_MEAN, tf.float32)


def denormalize_images(images):
    """Inverts `normalize_images`: RGB uint8 images for display.

    Args:
        images: `[..., H, W, 3]` normalized (BGR, mean-subtracted) images.

    Returns:
        uint8 RGB images (values clipped to `[0, 255]`).
    """
    images = tf.cast(images, tf.float32) + IMAGENET_BGR_MEAN
    images = tf.clip_by_value(tf.round(tf.reverse(images, [-1])), 0, 255)
    return tf.cast(images, tf.uint8)


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


def _decode_rgb(data, fast_jpeg):
    """Decodes JPEG or PNG bytes to uint8 RGB (gray and RGBA become RGB)."""
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), JPEG_HEADER)
    # The integer DCT decodes about 10% faster; its error (a few grey
    # levels) is below the colour jitter training applies, so only training
    # uses it and evaluation decodes exactly.
    dct_method = "INTEGER_FAST" if fast_jpeg else ""
    return tf.cond(
        is_jpeg,
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method=dct_method),
        lambda: tf.io.decode_png(data, channels=3),
    )


def read_example(
    image_path, label_path, label_table, skip_bad_examples, fast_jpeg=False
):
    """Reads, decodes and checks one example; maps labels to train ids.

    Args:
        image_path: string tensor.
        label_path: string tensor, `""` for an unlabelled image (its label
            is all ignore).
        label_table: int32 `[256]` raw value -> train id table.
        skip_bad_examples: bool; when False a bad example stops with an error
            naming the file, when True it is flagged and later dropped.
        fast_jpeg: bool, decode JPEGs with the faster integer DCT
            (training).

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
            lambda: _decode_rgb(image_bytes, fast_jpeg),
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


def scale_crop_flip(
    image, label, seed, crop_size, scale_range, reverse_channels=False
):
    """Random scale, pad, random crop and horizontal flip of the crop only.

    Equivalent to resizing the whole image by a random factor in
    `scale_range` (bilinear for the image, nearest for the label), padding
    it at the bottom and right to `crop_size` (0 for the image, the ignore
    label for the label), cropping a random window and flipping it with
    probability 0.5 - but only the source pixels that land in the crop are
    resized: the window is chosen in source coordinates, rounded to whole
    pixels (so the scale is exact to within half a pixel over the window),
    flipped while still uint8, and resized straight to its place in the
    crop. Resizing a 2x-scaled whole image and cropping it would cost
    several times more.

    Args:
        image: `[H, W, 3]` uint8 or float image.
        label: `[H, W]` uint8 train ids.
        seed: int `[2]` stateless seed.
        crop_size: `(crop_h, crop_w)`.
        scale_range: `(min, max)` scale factors.
        reverse_channels: also reverse the channel order (RGB -> BGR) in
            the same pass as the flip.

    Returns:
        `(image float32 [crop_h, crop_w, 3], label uint8 [crop_h, crop_w])`.
    """
    image = tf.convert_to_tensor(image)
    label = tf.convert_to_tensor(label)
    crop_h, crop_w = crop_size
    crop = tf.constant([crop_h, crop_w])
    seeds = tf.random.experimental.stateless_split(seed, 4)
    scale = tf.random.stateless_uniform(
        [], seeds[0], minval=scale_range[0], maxval=scale_range[1]
    )
    size = tf.shape(image)[:2]
    scaled = tf.maximum(
        tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32), 1
    )
    # The resized extent inside the crop (the rest is padding) and the
    # source pixels that are resized to it.
    extent = tf.minimum(scaled, crop)
    window = tf.clip_by_value(
        tf.cast(tf.round(tf.cast(extent, tf.float32) / scale), tf.int32),
        1,
        size,
    )
    max_offset = size - window
    top = tf.random.stateless_uniform(
        [], seeds[1], maxval=max_offset[0] + 1, dtype=tf.int32
    )
    left = tf.random.stateless_uniform(
        [], seeds[2], maxval=max_offset[1] + 1, dtype=tf.int32
    )
    flip = tf.random.stateless_uniform([], seeds[3]) < 0.5

    pixels = image[top : top + window[0], left : left + window[1]]
    channel_axes = [2] if reverse_channels else []
    pixels = tf.cond(
        flip,
        lambda: tf.reverse(pixels, [1] + channel_axes),
        lambda: tf.reverse(pixels, channel_axes),
    )
    resized = tf.image.resize(pixels, extent, method="bilinear")
    padding = tf.stack([[0, crop_h - extent[0]], [0, crop_w - extent[1]]])
    image = tf.pad(resized, tf.concat([padding, [[0, 0]]], 0))

    # Nearest neighbour on the same half-pixel grid as the bilinear resize,
    # as two gathers: cheaper than resizing the label window.
    rows = top + _nearest_indices(extent[0], window[0])
    cols = left + _nearest_indices(extent[1], window[1])
    cols = tf.cond(flip, lambda: tf.reverse(cols, [0]), lambda: cols)
    label = tf.gather(tf.gather(label, rows, axis=0), cols, axis=1)
    label = tf.pad(label, padding, constant_values=catalog.IGNORE_LABEL)
    image.set_shape([crop_h, crop_w, 3])
    label.set_shape([crop_h, crop_w])
    return image, tf.cast(label, tf.uint8)


def _nearest_indices(output_size, input_size):
    """Source index of each output pixel centre when resizing 1-D."""
    centres = tf.cast(tf.range(output_size), tf.float32) + 0.5
    ratio = tf.cast(input_size, tf.float32) / tf.cast(output_size, tf.float32)
    indices = tf.cast(tf.floor(centres * ratio), tf.int32)
    return tf.minimum(indices, input_size - 1)


def color_jitter(image, seed, max_delta=10.0):
    """Adds one uniform value in `[-max_delta, max_delta]` per channel."""
    delta = _jitter_delta(seed, max_delta)
    return tf.clip_by_value(image + delta, 0.0, 255.0)


def augment(image, label, seed, crop_size, scale_range=(0.75, 2.0)):
    """The paper's training augmentation, from decoded uint8 to model input.

    Random scale, pad to the crop (0 for images, the ignore label for
    labels), random crop, horizontal flip, colour jitter in [-10, 10] and
    normalization. Labels are only resampled with nearest neighbour. The
    result equals `normalize_images(color_jitter(scale_crop_flip(...)))`
    but costs fewer passes over the float crop: channels are swapped to BGR
    on the uint8 window, in the same pass as the flip.

    Args:
        image: uint8 `[H, W, 3]`.
        label: uint8 `[H, W]` train ids.
        seed: int `[2]` stateless seed; equal seeds give equal outputs.
        crop_size: `(height, width)`.
        scale_range: `(min, max)` scale factors.

    Returns:
        `(image float32 [crop_h, crop_w, 3], label int32 [crop_h, crop_w])`.
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    bgr, label = scale_crop_flip(
        image, label, seeds[0], crop_size, scale_range, reverse_channels=True
    )
    return _jitter_and_normalize_bgr(bgr, seeds[1]), tf.cast(label, tf.int32)


def _jitter_and_normalize_bgr(bgr, seed, max_delta=10.0):
    """`normalize_images(color_jitter(rgb, seed))` for a BGR float image.

    Clipping with scalar bounds: per-channel bounds broadcast several times
    slower in TensorFlow.
    """
    delta = _jitter_delta(seed, max_delta)  # per RGB channel
    jittered = tf.clip_by_value(bgr + tf.reverse(delta, [0]), 0.0, 255.0)
    return jittered - tf.constant(IMAGENET_BGR_MEAN, tf.float32)


def _jitter_delta(seed, max_delta):
    return tf.random.stateless_uniform(
        [3], seed, minval=-max_delta, maxval=max_delta
    )


def table_tensor(table: np.ndarray):
    return tf.constant(np.asarray(table, np.int32))
