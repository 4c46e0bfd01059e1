"""Helpers shared by the layers that fuse a list of feature maps."""

import keras
from keras import ops


def validate_levels(input_shape, layer_name, min_levels=2):
    """Checks that a fusion layer receives a list of NHWC feature maps.

    Args:
        input_shape: the list of shapes passed to `build`.
        layer_name: the layer's name, for error messages.
        min_levels: the fewest levels the layer accepts.

    Returns:
        The channel count shared by all levels.

    Raises:
        ValueError: if the input is not a list of at least `min_levels`
            rank-4 shapes with one channel count.
    """
    if not isinstance(input_shape, (list, tuple)) or not all(
        isinstance(s, (list, tuple)) for s in input_shape
    ):
        raise ValueError(
            f"`{layer_name}` expects a list of feature maps "
            f"[batch, height, width, channels]; received shape {input_shape}."
        )
    if len(input_shape) < min_levels:
        raise ValueError(
            f"`{layer_name}` expects at least {min_levels} feature maps; "
            f"received {len(input_shape)}: {input_shape}."
        )
    for shape in input_shape:
        if len(shape) != 4:
            raise ValueError(
                f"`{layer_name}` expects rank-4 feature maps "
                f"[batch, height, width, channels]; received shapes "
                f"{input_shape}."
            )
    channels = {shape[-1] for shape in input_shape}
    if len(channels) != 1 or None in channels:
        raise ValueError(
            f"`{layer_name}` expects every level to have the same known "
            f"channel count (reduce them with a 1x1 `ConvBNReLU` first); "
            f"received shapes {input_shape}."
        )
    return channels.pop()


def build_gate_convs(layer, input_shape, gate_channels, gate_input_shape=None):
    """Creates and builds one 1x1 gate convolution per level.

    Args:
        layer: the fusion layer that owns the convolutions (for its name and
            dtype policy).
        input_shape: list of the levels' shapes.
        gate_channels: int, `1` or the levels' channel count.
        gate_input_shape: `None`, or the shapes of what the gates read
            instead of the levels (one per level, any channel counts).

    Returns:
        List of built `Conv2D` layers, named `gate0`, `gate1`, ...

    Raises:
        ValueError: if the levels are malformed, `gate_input_shape` does not
            have one rank-4 shape per level, or `gate_channels` is neither
            1 nor the levels' width.
    """
    name = type(layer).__name__
    channels = validate_levels(input_shape, name)
    if gate_input_shape is not None:
        if len(gate_input_shape) != len(input_shape) or any(
            len(shape) != 4 or shape[-1] is None for shape in gate_input_shape
        ):
            raise ValueError(
                f"`{name}`: the gates' inputs must be one rank-4 map with "
                f"known channels per level; received {gate_input_shape} for "
                f"levels {input_shape}."
            )
        input_shape = gate_input_shape
    if gate_channels not in (1, channels):
        raise ValueError(
            f"`{name}`: `gate_channels` must be 1 or the feature width "
            f"({channels}); received {gate_channels}."
        )
    gate_convs = []
    for level, shape in enumerate(input_shape):
        gate_conv = keras.layers.Conv2D(
            gate_channels,
            1,
            use_bias=True,
            dtype=layer.dtype_policy,
            name=f"gate{level}",
        )
        gate_conv.build(shape)
        gate_convs.append(gate_conv)
    return gate_convs


def compute_gates(gate_convs, inputs):
    """Returns `sigmoid(conv1x1(x))` for every level."""
    return [ops.sigmoid(conv(x)) for conv, x in zip(gate_convs, inputs)]


def zero_gates(gates, levels):
    """Replaces the gates of `levels` by zeros (the gate ablation).

    Args:
        gates: list of gate maps, one per level.
        levels: iterable of level indices to zero; empty leaves `gates`
            untouched (the same list is returned, so nothing changes in the
            normal forward pass).

    Returns:
        The list of gate maps to use.

    Raises:
        ValueError: for a level index outside `[0, len(gates))`.
    """
    levels = tuple(levels)
    if not levels:
        return gates
    for level in levels:
        if not 0 <= level < len(gates):
            raise ValueError(
                f"Cannot zero gate {level}: levels are 0..{len(gates) - 1}."
            )
    return [
        ops.zeros_like(gate) if index in levels else gate
        for index, gate in enumerate(gates)
    ]
