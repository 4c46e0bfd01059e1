import numpy as np

from gff_keras.data.pipeline import normalize_images
from gff_keras.visualization._arrays import rgb_image
from gff_keras.visualization.gate_ablation import gate_ablation
from gff_keras.visualization.gate_heatmap import gate_heatmap
from gff_keras.visualization.overlay import overlay
from gff_keras.visualization.panel_grid import panel_grid

# Changed pixels are drawn in this colour over a darkened grayscale image,
# which no dataset palette colour can be confused with.
HIGHLIGHT = (255, 0, 0)
# Brightness of the grayscale background of the ablation panels.
BACKGROUND_BRIGHTNESS = 0.4


def gate_figure(
    model,
    image,
    palette,
    ignore_label: int = 255,
    alpha: float = 0.5,
    spacing: int = 4,
    captions: bool = True,
) -> np.ndarray:
    """The paper's gate figure (Fig. 6/7) for one image.

    Two rows of `L + 1` panels, `L` the number of gate levels:

    - row 1: the image, then each level's gate map `G1 .. GL` as a heat
      map (as `gate_grid`);
    - row 2: the prediction overlaid on the image, then for each level the
      pixels whose predicted class changes when that gate is set to 0
      (`gate_ablation`), in `HIGHLIGHT` over the darkened image; the
      caption gives their share.

    The result is `(L + 1) * W + L * spacing` wide and
    `2 * (H + caption) + spacing` tall, `caption` being
    `panel_grid.CAPTION_HEIGHT` with captions and 0 without.

    Args:
        model: a `GFFNet` with `fusion="gff"` or `"gated_fpn"`.
        image: uint8 RGB `[H, W, 3]` (or grayscale `[H, W]`).
        palette: RGB triples of the model's classes.
        ignore_label: label left out of the overlay. Defaults to `255`.
        alpha: weight of the mask in the overlay. Defaults to `0.5`.
        spacing: pixels between panels. Defaults to `4`.
        captions: bool, label the panels. Defaults to `True`.

    Returns:
        uint8 array `[height, width, 3]`.

    Raises:
        ValueError: if the model's fusion has no gates, or for a malformed
            image.

    Example:

    >>> from gff_keras import GFFNet
    >>> model = GFFNet(4, backbone="resnet18", output_stride=32)
    >>> image = np.zeros((64, 64, 3), np.uint8)
    >>> palette = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
    >>> gate_figure(model, image, palette, captions=False).shape
    (132, 336, 3)
    """
    image = rgb_image(image)
    if not hasattr(model, "gate_maps"):
        raise ValueError(
            f"{type(model).__name__} has no gate maps; a GFFNet with "
            "fusion='gff' or 'gated_fpn' is needed."
        )
    inputs = normalize_images(image[None])
    logits, gates = model.gate_maps(inputs)
    prediction = np.argmax(np.asarray(logits)[0], axis=-1)
    size = image.shape[:2]
    heatmaps = [gate_heatmap(np.asarray(g)[0], size) for g in gates]
    gray = image.astype(np.float32).mean(axis=-1, keepdims=True)
    dimmed = np.rint(np.repeat(gray, 3, axis=-1) * BACKGROUND_BRIGHTNESS)
    dimmed = dimmed.astype(np.uint8)
    ablations, shares = [], []
    for level in range(len(gates)):
        changed = gate_ablation(model, inputs, level, logits=logits)[0]
        ablations.append(np.where(changed[..., None], HIGHLIGHT, dimmed))
        shares.append(100.0 * changed.mean())
    rows = [
        [image] + heatmaps,
        [overlay(image, prediction, palette, alpha, ignore_label)]
        + [a.astype(np.uint8) for a in ablations],
    ]
    names = None
    if captions:
        names = [
            ["image"] + [f"G{level + 1}" for level in range(len(gates))],
            ["prediction"]
            + [
                f"G{level + 1}=0: {share:.1f}%"
                for level, share in enumerate(shares)
            ],
        ]
    return panel_grid(rows, spacing=spacing, captions=names)
