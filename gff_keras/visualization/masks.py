"""Class masks in colour: palettes, overlays, Cityscapes label ids."""

import numpy as np

from gff_keras.data import catalog


def rgb_image(image):
    """Checks a uint8 RGB image; grayscale `[H, W]` becomes RGB."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(
            "`image` must be uint8 [H, W, 3] RGB; received "
            f"{image.dtype} {image.shape}."
        )
    return image


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


def overlay(
    image, mask, palette, alpha: float = 0.5, ignore_label: int = 255
) -> np.ndarray:
    """Blends a colour-coded mask over an image.

    Every labelled pixel becomes `round((1 - alpha) * image + alpha * color)`
    (half-way values round to even, as `numpy.rint`); pixels with
    `ignore_label` keep the image's colour.

    Args:
        image: uint8 RGB image `[H, W, 3]` (or `[H, W]` grayscale).
        mask: integer class ids `[H, W]`.
        palette: `num_classes` RGB triples.
        alpha: float in `[0, 1]`, the mask's weight. Defaults to `0.5`.
        ignore_label: id left unblended. Defaults to `255`.

    Returns:
        uint8 array `[H, W, 3]`.

    Raises:
        ValueError: for an `alpha` outside `[0, 1]`, an image that is not
            uint8 `[H, W]` or `[H, W, 3]`, a mask of another size, or ids
            outside the palette (see `colorize`).

    Example:

    >>> image = np.full((1, 2, 3), 100, np.uint8)
    >>> overlay(image, np.array([[0, 255]]), [(200, 0, 0)])[0].tolist()
    [[150, 50, 50], [100, 100, 100]]
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must lie in [0, 1]; received {alpha}.")
    image = rgb_image(image)
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"`mask` shape {mask.shape} does not match the image's "
            f"{image.shape[:2]}."
        )
    colors = colorize(mask, palette, ignore_label).astype(np.float64)
    blended = np.rint((1.0 - alpha) * image + alpha * colors)
    blended = np.clip(blended, 0, 255).astype(np.uint8)
    return np.where((mask == ignore_label)[..., None], image, blended).astype(
        np.uint8
    )


# Written for ignored pixels: Cityscapes' "unlabeled" id, ignored by the
# official evaluation.
UNLABELED_ID = 0


def cityscapes_label_ids(train_ids, ignore_label: int = 255) -> np.ndarray:
    """Maps Cityscapes train ids (0..18) to the official label ids.

    The official evaluation (`cityscapesscripts`' pixel-level evaluation and
    the benchmark server) reads label ids, e.g. road = 7, car = 26.

    Args:
        train_ids: integer array of train ids.
        ignore_label: train id written as `UNLABELED_ID`. Defaults to `255`.

    Returns:
        uint8 array of label ids, shaped like `train_ids`.

    Raises:
        ValueError: for ids that are neither train ids nor `ignore_label`.

    Example:

    >>> cityscapes_label_ids(np.array([0, 13, 255])).tolist()
    [7, 26, 0]
    """
    train_ids = np.asarray(train_ids)
    table = np.full(max(256, ignore_label + 1), -1, np.int32)
    table[ignore_label] = UNLABELED_ID
    for label_id, train_id in catalog.CITYSCAPES_TRAIN_IDS.items():
        table[train_id] = label_id
    outside = (train_ids < 0) | (train_ids >= len(table))
    label_ids = table[np.where(outside, ignore_label, train_ids)]
    invalid = outside | (label_ids < 0)
    if invalid.any():
        raise ValueError(
            f"Not Cityscapes train ids: {np.unique(train_ids[invalid])[:10]}"
            f" (expected 0..{len(catalog.CITYSCAPES_TRAIN_IDS) - 1} or "
            f"{ignore_label})."
        )
    return label_ids.astype(np.uint8)
