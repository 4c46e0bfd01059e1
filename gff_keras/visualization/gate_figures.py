"""Gate maps as pictures: heat maps, grids and the paper's Fig. 6/7 panels."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from gff_keras.data.pipeline import normalize_images
from gff_keras.visualization.masks import overlay
from gff_keras.visualization.masks import rgb_image
from gff_keras.visualization.panels import class_legend
from gff_keras.visualization.panels import panel_grid


# A viridis-like ramp (dark blue-purple at 0, teal at 0.5, yellow at 1),
# linear between these five anchors: perceptually ordered and readable in
# grayscale, so gate values compare across panels.
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


GATE_COLORMAP = np.array(
    [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ],
    np.float64,
)


def gate_heatmap(gate, size=None) -> np.ndarray:
    """Renders one gate map as an RGB heat map.

    Gate values are mapped on the fixed range `[0, 1]` (not stretched per
    map), so a panel's colours mean the same in every level and image:
    `GATE_COLORMAP[0]` for a closed gate, `GATE_COLORMAP[-1]` for an open
    one, linear in between.

    Args:
        gate: `[h, w]` or `[h, w, gate_channels]` values in `[0, 1]`; a
            multi-channel gate (the authors' `gate_channels=C`) is averaged
            over channels.
        size: optional `(height, width)` to resize to, bilinearly with
            half-pixel centres (as the model resizes its features), before
            colouring. Defaults to the gate's own size.

    Returns:
        uint8 array `[height, width, 3]`.

    Raises:
        ValueError: if `gate` is not rank 2 or 3.

    Example:

    >>> gate_heatmap(np.array([[0.0, 1.0]])).tolist()
    [[[68, 1, 84], [253, 231, 37]]]
    """
    gate = np.asarray(gate, np.float32)
    if gate.ndim == 3:
        gate = gate.mean(axis=-1)
    if gate.ndim != 2:
        raise ValueError(
            "`gate` must be [h, w] or [h, w, channels]; received shape "
            f"{gate.shape}."
        )
    if size is not None and tuple(size) != gate.shape:
        resized = tf.image.resize(
            gate[None, :, :, None], tuple(int(s) for s in size), "bilinear"
        )
        gate = np.asarray(resized)[0, :, :, 0]
    positions = np.linspace(0.0, 1.0, len(GATE_COLORMAP))
    values = np.clip(gate.astype(np.float64), 0.0, 1.0)
    channels = [
        np.interp(values, positions, GATE_COLORMAP[:, c]) for c in range(3)
    ]
    return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)


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


def gate_ablation(model, images, level, logits=None) -> np.ndarray:
    """Pixels whose predicted class changes when gate `level` is zeroed.

    The paper's Fig. 7(b) experiment: the prediction with the learned gates
    is compared with the prediction after setting `G_level` to 0 (see
    `GFFNet.predict_with_zeroed_gate` for what that means in eq. 5).

    Args:
        model: a `GFFNet` with a gated fusion (`"gff"` or `"gated_fpn"`).
        images: `[batch, H, W, 3]` preprocessed images
            (`gff_keras.data.normalize_images`).
        level: int gate index, 0 the finest (or a sequence of indices
            zeroed together).
        logits: optional logits of `images` with the learned gates, to save
            one forward pass when they are already known.

    Returns:
        bool array `[batch, H, W]`, `True` where the class changed.

    Raises:
        ValueError: if the model has no gates or `level` is out of range.

    Example:

    >>> from gff_keras import GFFNet
    >>> model = GFFNet(4, backbone="resnet18", output_stride=32)
    >>> images = np.zeros((1, 64, 64, 3), np.float32)
    >>> gate_ablation(model, images, 0).shape
    (1, 64, 64)
    """
    if logits is None:
        logits, _ = model.gate_maps(images)
    ablated = model.predict_with_zeroed_gate(images, level)
    before = np.argmax(np.asarray(logits), axis=-1)
    after = np.argmax(np.asarray(ablated), axis=-1)
    return before != after


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
    dataset=None,
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
    `panel_grid.CAPTION_HEIGHT` with captions and 0 without; with a
    `dataset`, a legend of the predicted classes (`class_legend`) follows
    after another `spacing`.

    Args:
        model: a `GFFNet` with `fusion="gff"` or `"gated_fpn"`.
        image: uint8 RGB `[H, W, 3]` (or grayscale `[H, W]`).
        palette: RGB triples of the model's classes.
        ignore_label: label left out of the overlay. Defaults to `255`.
        alpha: weight of the mask in the overlay. Defaults to `0.5`.
        spacing: pixels between panels. Defaults to `4`.
        captions: bool, label the panels. Defaults to `True`.
        dataset: the `DatasetInfo` whose class names the legend shows;
            `None` draws no legend. Defaults to `None`.

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
    if not getattr(model, "has_gates", False):
        raise ValueError(
            f"{type(model).__name__} has no gates to draw; a GFFNet with "
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
    figure = panel_grid(rows, spacing=spacing, captions=names)
    if dataset is None:
        return figure
    legend = class_legend(np.unique(prediction), dataset, figure.shape[1])
    gap = np.full((spacing, figure.shape[1], 3), 255, np.uint8)
    return np.concatenate([figure, gap, legend])


FIGURE_SUFFIX = "_gates.png"


def write_gate_figures(
    model, named_images, output_dir: str, dataset, alpha: float = 0.5
) -> list:
    """Writes the paper's gate figure (`gate_figure`) for each image.

    Each figure ends with a legend of the classes it predicts.

    Args:
        model: a `GFFNet` with `fusion="gff"` or `"gated_fpn"`.
        named_images: iterable of `(name, uint8 RGB image)`; the figure of
            `name` is written to `<output_dir>/<name>_gates.png`. Images are
            taken one at a time, so a generator keeps memory flat.
        output_dir: folder to write to; created if missing.
        dataset: the `DatasetInfo` giving the palette and ignore label.
        alpha: mask weight in the prediction overlay. Defaults to `0.5`.

    Returns:
        List of the written files.

    Raises:
        ValueError: if the model has no gates or its class count differs
            from the dataset's (checked before any image is read), or when
            two images share a name.

    Example:

    >>> import numpy as np
    >>> from gff_keras import GFFNet
    >>> from gff_keras.data import dataset_info
    >>> model = GFFNet(8, backbone="resnet18", output_stride=32)
    >>> images = [("scene", np.zeros((64, 64, 3), np.uint8))]
    >>> write_gate_figures(model, images, "out",
    ...                    dataset_info("synthetic"))  # doctest: +SKIP
    ['out/scene_gates.png']
    """
    if not getattr(model, "has_gates", False):
        raise ValueError(
            f"{model.name!r} has no gates to visualize; gate maps exist for "
            "a head with a gated fusion (GatedFullyFusion, GatedFPNFusion)."
        )
    if model.num_classes != dataset.num_classes:
        raise ValueError(
            f"The model predicts {model.num_classes} classes but dataset "
            f"{dataset.name!r} has {dataset.num_classes}; pass the dataset "
            "the model was trained on."
        )
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for name, image in named_images:
        figure = gate_figure(
            model,
            image,
            dataset.palette,
            dataset.ignore_label,
            alpha,
            dataset=dataset,
        )
        target = os.path.join(output_dir, name + FIGURE_SUFFIX)
        if target in written:
            raise ValueError(
                f"Two images are named {name!r}; their figures would "
                "overwrite each other."
            )
        Image.fromarray(figure).save(target)
        written.append(target)
    return written
