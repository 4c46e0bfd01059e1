import numpy as np

from gff_keras.visualization._arrays import rgb_image
from gff_keras.visualization._arrays import single_gate
from gff_keras.visualization.gate_heatmap import gate_heatmap
from gff_keras.visualization.panel_grid import panel_grid


def gate_grid(
    image, gates, spacing: int = 4, captions: bool = True
) -> np.ndarray:
    """The image followed by one heat-map panel per gate level (Fig. 7a).

    Each gate map is resized bilinearly to the image's size and coloured
    with `gate_heatmap` on the fixed range `[0, 1]`. With `L` levels the
    result is `(L + 1) * W + L * spacing` wide and `H` tall, plus
    `panel_grid.CAPTION_HEIGHT` with captions.

    Args:
        image: uint8 RGB `[H, W, 3]` (or grayscale `[H, W]`).
        gates: list of one image's gate maps, finest first, each
            `[h_i, w_i]`, `[h_i, w_i, gate_channels]` or
            `[1, h_i, w_i, gate_channels]` (as `GFFNet.gate_maps` returns
            for a batch of one).
        spacing: int, pixels between panels. Defaults to `4`.
        captions: bool, label the panels "image", "G1", "G2", ...
            (the paper's 1-based names). Defaults to `True`.

    Returns:
        uint8 array `[height, width, 3]`.

    Raises:
        ValueError: if `gates` is empty or a gate map is malformed.

    Example:

    >>> image = np.zeros((32, 48, 3), np.uint8)
    >>> gates = [np.ones((8, 12, 1)), np.zeros((4, 6, 1))]
    >>> gate_grid(image, gates, spacing=2, captions=False).shape
    (32, 148, 3)
    """
    image = rgb_image(image)
    if not gates:
        raise ValueError("`gates` is empty: the model has no gate maps.")
    panels = [image] + [
        gate_heatmap(single_gate(gate), image.shape[:2]) for gate in gates
    ]
    names = ["image"] + [f"G{level + 1}" for level in range(len(gates))]
    return panel_grid(
        [panels], spacing=spacing, captions=[names] if captions else None
    )
