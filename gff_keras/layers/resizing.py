"""Bilinear resizing helpers shared by the fusion layers.

Keras 3.14 to 3.15.1 cannot export `keras.ops.image.resize` or
`UpSampling2D(interpolation="bilinear")` when the target size is a tensor
known only at run time (keras issues 22079 and 23315), and every resize in
this model targets the run-time size of another feature map. `tf.image.resize`
inside a layer traces and exports correctly, so these helpers use it. Its
bilinear mode samples at half-pixel centres, which equals PyTorch's
`align_corners=False`. `align_corners=True` (PyTorch's `align_corners=True`,
which the GFF authors' code uses: output pixel `i` samples input position
`i * (in - 1) / (out - 1)`) runs TensorFlow's `ResizeBilinear` kernel with
that option, which Keras does not offer.
"""

import tensorflow as tf


def spatial_size(tensor):
    """Returns `[height, width]` of an NHWC tensor, static where known."""
    static = tensor.shape[1:3]
    if static[0] is not None and static[1] is not None:
        return [int(static[0]), int(static[1])]
    return tf.shape(tensor)[1:3]


def resize_bilinear(tensor, size, align_corners=False):
    """Bilinearly resizes an NHWC tensor to `size`, keeping its dtype.

    The resize is skipped when both sizes are known statically and equal;
    resizing to the same size is the identity anyway.

    Args:
        tensor: `[batch, height, width, channels]` tensor.
        size: `[height, width]` as Python ints or an int32 tensor.
        align_corners: bool, sample with corners aligned (PyTorch's
            `align_corners=True`) instead of half-pixel centres. Defaults
            to `False`.

    Returns:
        The resized tensor, in `tensor`'s dtype.
    """
    if isinstance(size, (list, tuple)) and all(
        isinstance(s, int) for s in size
    ):
        if list(tensor.shape[1:3]) == list(size):
            return tensor
    if align_corners:
        resized = tf.raw_ops.ResizeBilinear(
            images=tensor,
            size=size,
            align_corners=True,
            half_pixel_centers=False,
        )
    else:
        resized = tf.image.resize(tensor, size, method="bilinear")
    return tf.cast(resized, tensor.dtype)


def resize_like(tensor, reference, align_corners=False):
    """Bilinearly resizes `tensor` to the spatial size of `reference`."""
    return resize_bilinear(tensor, spatial_size(reference), align_corners)
