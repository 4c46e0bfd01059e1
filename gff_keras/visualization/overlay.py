import numpy as np

from gff_keras.visualization._arrays import rgb_image
from gff_keras.visualization.colorize import colorize


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
