"""Independent numpy references the tests compare the layers with."""

import numpy as np


def _np_resample(x, rows, cols):
    """Bilinear sampling of `x` at source positions `rows` x `cols`."""

    def taps(src, in_size):
        src = np.clip(src, 0, in_size - 1)
        low = np.floor(src).astype(int)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, src - low

    rows_lo, rows_hi, row_w = taps(rows, x.shape[1])
    cols_lo, cols_hi, col_w = taps(cols, x.shape[2])
    top = (
        x[:, rows_lo] * (1 - row_w)[None, :, None, None]
        + x[:, rows_hi] * row_w[None, :, None, None]
    )
    return (
        top[:, :, cols_lo] * (1 - col_w)[None, None, :, None]
        + top[:, :, cols_hi] * col_w[None, None, :, None]
    )


def np_resize_bilinear(x, height, width):
    """Independent bilinear resize, half-pixel centres, edges clamped.

    The definition of PyTorch's `interpolate(align_corners=False)` and of
    `tf.image.resize(method="bilinear")` without antialiasing.
    """

    def positions(out_size, in_size):
        return (np.arange(out_size) + 0.5) * in_size / out_size - 0.5

    return _np_resample(
        x, positions(height, x.shape[1]), positions(width, x.shape[2])
    )


def np_resize_like(x, reference):
    return np_resize_bilinear(x, reference.shape[1], reference.shape[2])


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_conv1x1(x, conv):
    kernel, bias = (np.asarray(w) for w in conv.get_weights())
    return x @ kernel[0, 0] + bias


def np_gated_fully_fusion(features, gates):
    """Paper eq. 5, every level reading the un-fused inputs:

    X~_l = (1 + G_l) X_l + (1 - G_l) sum_{i != l} resize(G_i X_i).
    """
    fused = []
    for level, (x, gate) in enumerate(zip(features, gates)):
        received = sum(
            np_resize_like(gates[i] * features[i], x)
            for i in range(len(features))
            if i != level
        )
        fused.append((1 + gate) * x + (1 - gate) * received)
    return fused


def np_resize_align_corners(x, height, width):
    """Independent bilinear resize with corners aligned, PyTorch's
    `interpolate(align_corners=True)`: output `i` samples input position
    `i * (in - 1) / (out - 1)` (0 for a single output), no antialiasing."""

    def positions(out_size, in_size):
        if out_size == 1:
            return np.zeros(1)
        return np.arange(out_size) * (in_size - 1) / (out_size - 1)

    return _np_resample(
        x, positions(height, x.shape[1]), positions(width, x.shape[2])
    )
