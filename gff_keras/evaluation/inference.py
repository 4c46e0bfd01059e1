"""Whole-image, sliding-window and multi-scale + flip inference.

This function runs eagerly, inside evaluation `tf.function`s and inside the
exported serving function, where height and width are known only at run
time. Sizes, offsets and the number of windows are therefore
tensors, and the code uses TensorFlow ops (`tf.pad`, `tf.slice`,
`tf.while_loop`, `tf.image.resize`) where Keras ops would need static sizes or
fail to export with tensor-valued sizes (keras issues 22079, 23315; see
`gff_keras/layers/resizing.py`).
"""

import math

import keras
import tensorflow as tf

MODES = ("whole", "slide", "ms_flip")
OUTPUTS = ("probabilities", "logits")
# Paper, "Ablation Study for Improvement Strategies": scales of the
# multi-scale inference.
PAPER_SCALES = (0.75, 1.0, 1.25, 1.5, 1.75)


def predict_logits(
    model,
    images,
    *,
    mode: str = "whole",
    crop_size=None,
    stride=None,
    scales=PAPER_SCALES,
    flip: bool = True,
    num_classes: int | None = None,
    output: str = "probabilities",
) -> tf.Tensor:
    """Per-pixel class scores at the input's resolution, by inference mode.

    Every forward pass's logits are turned into scores (softmax
    probabilities by default) at the resolution they were computed at, then:

    - `"whole"`: one forward pass over the full image.
    - `"slide"`: the image is padded at the bottom and right with 0 (the
      mean colour, in normalized space) to at least `crop_size`, cut into
      `crop_size` windows every `stride` pixels (the last window of a row or
      column is aligned with the padded image's edge), and each pixel's
      score is the mean over the windows that cover it. The padding is
      cropped off again. This is PSPNet's and mmsegmentation's sliding
      inference.
    - `"ms_flip"`: the image is bilinearly resized by each of `scales`
      (size rounded to the nearest pixel), predicted whole (or by sliding
      windows when `crop_size` is given), and the score map is resized back
      to the input's size; with `flip`, the horizontally flipped image is
      predicted in the same batch and its scores flipped back. The result
      is the mean over scales and flips (the paper's "MS", averaged
      probability maps).

    Args:
        model: a callable `model(images, training=False)` returning logits
            `[batch, h, w, classes]` at its input's resolution, such as
            `GFFNet`.
        images: float `[batch, H, W, 3]`, already normalized
            (`gff_keras.data.normalize_images`).
        mode: `"whole"`, `"slide"` or `"ms_flip"`. Defaults to `"whole"`.
        crop_size: int or `(height, width)` of the sliding windows; required
            for `"slide"`, optional for `"ms_flip"`.
        stride: int or `(height, width)` between windows, at most
            `crop_size`. Defaults to `ceil(2 * crop_size / 3)` (PSPNet).
        scales: image scales for `"ms_flip"`. Defaults to the paper's
            `(0.75, 1.0, 1.25, 1.5, 1.75)`.
        flip: add horizontally flipped predictions in `"ms_flip"`.
            Defaults to `True`.
        num_classes: int, classes of the model's output; needed for
            sliding windows when the model has neither `num_classes` nor a
            static `output_shape`.
        output: `"probabilities"` (softmax per pass, probabilities averaged)
            or `"logits"` (logits averaged). Defaults to `"probabilities"`.

    Returns:
        float32 `[batch, H, W, classes]`: probabilities (each pixel sums to
        1) or logits, as `output` asks.

    Raises:
        ValueError: for an unknown `mode` or `output`, a missing or
            non-positive `crop_size`, a `stride` larger than the crop, empty
            or non-positive `scales`, images that are not rank 4, or an
            unknown number of classes in sliding mode.

    Example:

    >>> model = gff_keras.GFFNet(5, backbone="resnet18")
    >>> images = keras.ops.zeros((1, 45, 61, 3))
    >>> predict_logits(model, images, mode="slide", crop_size=32).shape
    TensorShape([1, 45, 61, 5])
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}; received {mode!r}.")
    if output not in OUTPUTS:
        raise ValueError(
            f"`output` must be one of {OUTPUTS}; received {output!r}."
        )
    crop = _pair(crop_size, "crop_size")
    if mode == "slide" and crop is None:
        raise ValueError("mode='slide' needs `crop_size`.")
    window_stride = None
    if crop is not None:
        window_stride = _pair(stride, "stride") or tuple(
            math.ceil(2 * c / 3) for c in crop
        )
        if any(s > c for s, c in zip(window_stride, crop)):
            raise ValueError(
                f"`stride` {window_stride} must not exceed `crop_size` "
                f"{crop}: pixels between windows would get no prediction."
            )
        num_classes = _num_classes(model, num_classes)
    scales = tuple(float(s) for s in scales)
    if mode == "ms_flip" and (not scales or min(scales) <= 0):
        raise ValueError(
            f"`scales` must be positive numbers; received {scales!r}."
        )
    images = tf.cast(images, tf.float32)
    if images.shape.rank != 4:
        raise ValueError(
            "`images` must be [batch, height, width, channels]; received "
            f"shape {images.shape}."
        )

    def forward(x):
        if mode == "whole" or crop is None:
            return _scores(model(x, training=False), output)
        return _slide(model, x, crop, window_stride, num_classes, output)

    if mode != "ms_flip":
        return forward(images)

    size = tf.shape(images)[1:3]
    batch = tf.shape(images)[0]
    total = None
    for scale in scales:
        scaled = images
        if scale != 1.0:
            scaled_size = tf.cast(
                tf.floor(tf.cast(size, tf.float64) * scale + 0.5), tf.int32
            )
            scaled = tf.image.resize(
                images, tf.maximum(scaled_size, 1), method="bilinear"
            )
        if flip:
            # One pass over [image, mirrored image]: a batch of two costs
            # less than two calls, and inference-mode BatchNorm makes every
            # example independent of the others.
            both = forward(tf.concat([scaled, tf.reverse(scaled, [2])], 0))
            scores = both[:batch] + tf.reverse(both[batch:], [2])
        else:
            scores = forward(scaled)
        if scale != 1.0:
            scores = tf.image.resize(scores, size, method="bilinear")
        total = scores if total is None else total + scores
    return total / float(len(scales) * (2 if flip else 1))


def _scores(logits, output):
    logits = keras.ops.cast(logits, "float32")
    if output == "logits":
        return logits
    return keras.ops.softmax(logits, axis=-1)


def _slide(model, images, crop, stride, num_classes, output):
    """Averages window scores over the windows covering each pixel."""
    crop_h, crop_w = crop
    stride_h, stride_w = stride
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded_h = tf.maximum(height, crop_h)
    padded_w = tf.maximum(width, crop_w)
    padded = tf.pad(
        images,
        [[0, 0], [0, padded_h - height], [0, padded_w - width], [0, 0]],
    )
    rows = (padded_h - crop_h + stride_h - 1) // stride_h + 1
    cols = (padded_w - crop_w + stride_w - 1) // stride_w + 1

    def body(index, total, count):
        # The last row/column of windows ends at the padded image's edge.
        top = tf.minimum((index // cols) * stride_h, padded_h - crop_h)
        left = tf.minimum((index % cols) * stride_w, padded_w - crop_w)
        window = tf.slice(padded, [0, top, left, 0], [-1, crop_h, crop_w, -1])
        scores = _scores(model(window, training=False), output)
        placement = [
            [0, 0],
            [top, padded_h - top - crop_h],
            [left, padded_w - left - crop_w],
            [0, 0],
        ]
        total += tf.pad(scores, placement)
        count += tf.pad(tf.ones([1, crop_h, crop_w, 1]), placement)
        return index + 1, total, count

    total = tf.zeros([batch, padded_h, padded_w, num_classes])
    count = tf.zeros([1, padded_h, padded_w, 1])
    _, total, count = tf.while_loop(
        lambda index, total, count: index < rows * cols,
        body,
        [tf.constant(0), total, count],
        # One window at a time: parallel iterations would hold several
        # windows' activations in memory at once.
        parallel_iterations=1,
        shape_invariants=[
            tf.TensorShape([]),
            tf.TensorShape([None, None, None, num_classes]),
            tf.TensorShape([1, None, None, 1]),
        ],
    )
    return (total / count)[:, :height, :width, :]


def _pair(value, name):
    if value is None:
        return None
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(int(v) <= 0 for v in pair):
        raise ValueError(
            f"`{name}` must be a positive int or (height, width); received "
            f"{value!r}."
        )
    return tuple(int(v) for v in pair)


def _num_classes(model, num_classes):
    if num_classes is not None:
        return int(num_classes)
    if getattr(model, "num_classes", None) is not None:
        return int(model.num_classes)
    try:
        channels = model.output_shape[-1]
    except (AttributeError, ValueError, TypeError):
        channels = None
    if channels is None:
        raise ValueError(
            "Cannot tell the model's number of classes; pass `num_classes`."
        )
    return int(channels)
