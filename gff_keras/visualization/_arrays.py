"""Argument checks shared by the visualization functions."""

import numpy as np


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


def single_gate(gate):
    """Drops the batch axis of a batch-of-one gate map."""
    gate = np.asarray(gate)
    if gate.ndim == 4:
        if gate.shape[0] != 1:
            raise ValueError(
                "Pass one image's gate maps; received a batch of "
                f"{gate.shape[0]}."
            )
        gate = gate[0]
    return gate
