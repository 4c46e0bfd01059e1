"""What the heads share: which backbone levels they read, input checks."""


def resolve_levels(argument, levels, available):
    """Returns the backbone features a head reads, finest first.

    Args:
        argument: the head's argument naming them, for error messages.
        levels: feature names, or `None` for all of `available`.
        available: the backbone's `feature_names`, finest first.

    Returns:
        A tuple of feature names.

    Raises:
        ValueError: if a name is not a backbone feature, or none is given.
    """
    names = tuple(available) if levels is None else tuple(levels)
    unknown = [name for name in names if name not in available]
    if unknown or not names:
        raise ValueError(
            f"`{argument}` must name backbone features from "
            f"{tuple(available)}; received {names!r}."
        )
    return names


def check_inputs(layer, input_shape, levels=None):
    """Checks a head's input: `[context, level_1, ..., level_L]` NHWC maps.

    Args:
        layer: the head, for its name in messages.
        input_shape: the list of shapes passed to `build`.
        levels: the number of levels expected after the context, or `None`
            for at least one.

    Raises:
        ValueError: if the input is not such a list.
    """
    name = type(layer).__name__
    if not isinstance(input_shape, (list, tuple)) or not all(
        isinstance(shape, (list, tuple)) and len(shape) == 4
        for shape in input_shape
    ):
        raise ValueError(
            f"`{name}` expects a list [context, level_1, ...] of "
            f"[batch, height, width, channels] maps; received {input_shape}."
        )
    received = len(input_shape) - 1
    if (levels is None and received < 1) or (
        levels is not None and received != levels
    ):
        expected = "at least one" if levels is None else levels
        raise ValueError(
            f"`{name}` expects the context and {expected} backbone "
            f"level(s); received {received} level(s): {input_shape}."
        )
