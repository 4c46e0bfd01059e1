import numpy as np
from PIL import Image


def read_image(path: str) -> np.ndarray:
    """Reads an image file as uint8 RGB.

    Grayscale, palette, RGBA and CMYK images are converted to RGB (alpha is
    dropped, as `tf.io.decode_image(channels=3)` does in the data pipeline).

    Args:
        path: a JPEG, PNG or any other file Pillow reads.

    Returns:
        uint8 array `[H, W, 3]`.

    Raises:
        ValueError: naming `path`, when the file is missing, empty,
            truncated or not an image.

    Example:

    >>> read_image("street.jpg").shape  # doctest: +SKIP
    (1024, 2048, 3)
    """
    try:
        with Image.open(path) as picture:
            # Decode now: Image.open only reads the header, and a truncated
            # file must fail here, where the error can name it.
            picture.load()
            return np.array(picture.convert("RGB"), np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"Cannot read image {path!r}: {error}") from error
