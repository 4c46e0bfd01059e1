import numpy as np


def colorize(mask, palette, ignore_label: int = 255) -> np.ndarray:
    """Turns a class-id mask into an RGB image with one colour per class.

    Args:
        mask: integer array `[..., H, W]` of class ids (train ids).
        palette: `num_classes` RGB triples, e.g. `dataset_info(name).palette`.
        ignore_label: id drawn black (unlabelled pixels). Defaults to `255`.

    Returns:
        uint8 array `[..., H, W, 3]`.

    Raises:
        ValueError: if `mask` is not integer, `palette` is not a list of RGB
            triples, or `mask` holds an id that is neither a palette index
            nor `ignore_label` (the message lists the offending ids).

    Example:

    >>> colorize(np.array([[0, 1], [255, 1]]), [(10, 20, 30), (0, 0, 255)])
    array([[[ 10,  20,  30],
            [  0,   0, 255]],
    <BLANKLINE>
           [[  0,   0,   0],
            [  0,   0, 255]]], dtype=uint8)
    """
    mask = np.asarray(mask)
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(
            f"`mask` must hold integer class ids; received dtype {mask.dtype}."
        )
    colors = np.asarray(palette)
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise ValueError(
            "`palette` must be a list of RGB triples; received shape "
            f"{colors.shape}."
        )
    if colors.min(initial=0) < 0 or colors.max(initial=0) > 255:
        raise ValueError("`palette` values must lie in [0, 255].")
    colors = colors.astype(np.uint8)
    labelled = mask != ignore_label
    invalid = labelled & ((mask < 0) | (mask >= len(colors)))
    if invalid.any():
        raise ValueError(
            f"`mask` holds ids {np.unique(mask[invalid])[:10].tolist()} "
            f"outside 0..{len(colors) - 1} and the ignore label "
            f"{ignore_label}."
        )
    image = np.zeros(mask.shape + (3,), np.uint8)
    image[labelled] = colors[mask[labelled]]
    return image
