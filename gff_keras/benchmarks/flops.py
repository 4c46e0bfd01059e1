import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

# Op types whose floating-point work is multiply-adds (the "FLOPs" of
# papers and of most FLOP counters, PyTorch's included).
MULTIPLY_ADD_OPS = (
    "Conv2D",
    "DepthwiseConv2dNative",
    "MatMul",
    "BatchMatMulV2",
)


def count_flops(
    model: keras.Model, input_shape: tuple, by_op_type: bool = False
) -> int | dict:
    """Counts the floating-point operations of one inference pass.

    The model is traced for a fixed input shape, its variables are frozen
    into constants, and TensorFlow's graph profiler adds up the FLOPs each
    op registers for its static shapes: a convolution or matrix product
    counts each multiply-add as 2 (`2 * outputs * kernel_h * kernel_w *
    in_channels`); bias adds and other element-wise arithmetic (BatchNorm's
    scale and shift, the gates' products and sums) count one per output
    element; resizes, pooling and activations count nothing. Dilated
    convolutions run as convolutions of space-to-batch blocks, so sizes
    that are not multiples of the dilation rate count the padded positions
    TensorFlow computes.

    Args:
        model: a Keras model called as `model(images, training=False)`.
        input_shape: the full input shape, batch included, e.g.
            `(1, 512, 512, 3)`.
        by_op_type: return `{op_type: flops}` instead of the total.

    Returns:
        The total FLOPs (int), or a dict by op type (`"Conv2D"`,
        `"BiasAdd"`, ...) with the total under `"total"` and the sum of the
        convolutions and matrix products (multiply-adds only, what papers
        and PyTorch FLOP counters report) under `"multiply_add"`.

    Raises:
        ValueError: if `input_shape` has an unknown dimension.

    Example:

    >>> inputs = keras.Input((8, 8, 3))
    >>> outputs = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(
    ...     inputs)
    >>> count_flops(keras.Model(inputs, outputs), (1, 8, 8, 3))
    13824
    """
    if any(d is None for d in input_shape):
        raise ValueError(
            f"input_shape={input_shape} must be fully known to count FLOPs."
        )
    # TF API: Keras has no graph freezing or profiler.
    forward = tf.function(lambda images: model(images, training=False))
    concrete = forward.get_concrete_function(
        tf.TensorSpec(input_shape, tf.float32)
    )
    graph = convert_variables_to_constants_v2(concrete).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(
        graph=graph, cmd="op", options=options
    )
    if not by_op_type:
        return int(profile.total_float_ops)
    # The "op" view nests op types under one another; each node's own
    # `float_ops` is its type's count.
    counts = {}
    pending = list(profile.children)
    while pending:
        node = pending.pop()
        pending.extend(node.children)
        if node.float_ops:
            counts[node.name] = counts.get(node.name, 0) + int(node.float_ops)
    counts["multiply_add"] = sum(counts.get(op, 0) for op in MULTIPLY_ADD_OPS)
    counts["total"] = int(profile.total_float_ops)
    return counts
