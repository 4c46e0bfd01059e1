"""Captioned panel grids and the image / label / prediction / overlay panels."""

import os

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from gff_keras.data.pipeline import normalize_images
from gff_keras.visualization.masks import overlay

# Height of the caption strip above each row of panels when captions are
# drawn (PIL's default font is about 10 px tall).
CAPTION_HEIGHT = 14
CAPTION_COLOR = (0, 0, 0)


def panel_grid(
    rows, spacing: int = 4, background: int = 255, captions=None
) -> np.ndarray:
    """Tiles equally sized RGB panels into one image, row by row.

    The result is `columns * W + (columns - 1) * spacing` wide and
    `rows * (H + caption) + (rows - 1) * spacing` tall, where `caption` is
    `CAPTION_HEIGHT` when `captions` is given and 0 otherwise; `columns` is
    the longest row's length. Cells left `None` (or missing at the end of a
    short row) stay `background`.

    Args:
        rows: list of rows, each a list of uint8 `[H, W, 3]` panels or
            `None`; every panel has the same `H` and `W`.
        spacing: int, pixels between panels. Defaults to `4`.
        background: int grey level of the gaps and empty cells. Defaults to
            `255` (white).
        captions: optional list of rows of strings (or `None`), drawn with
            PIL's default font in a strip above each panel.

    Returns:
        uint8 array `[height, width, 3]`.

    Raises:
        ValueError: if there are no panels, panels differ in size or are not
            RGB, or `captions` does not match `rows`.

    Example:

    >>> panel = np.zeros((8, 10, 3), np.uint8)
    >>> panel_grid([[panel, panel], [panel]], spacing=2).shape
    (18, 22, 3)
    """
    shapes = {np.shape(p) for row in rows for p in row if p is not None}
    if not shapes:
        raise ValueError("`rows` holds no panels.")
    if len(shapes) != 1:
        raise ValueError(
            f"Every panel must have the same shape; received {sorted(shapes)}."
        )
    shape = shapes.pop()
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"Panels must be [H, W, 3] RGB; received {shape}.")
    height, width = shape[:2]
    if captions is not None and (
        len(captions) != len(rows)
        or any(len(c) > len(r) for c, r in zip(captions, rows))
    ):
        raise ValueError("`captions` must have one row per row of panels.")
    caption = CAPTION_HEIGHT if captions is not None else 0
    columns = max(len(row) for row in rows)
    grid = np.full(
        (
            len(rows) * (height + caption) + (len(rows) - 1) * spacing,
            columns * width + (columns - 1) * spacing,
            3,
        ),
        background,
        np.uint8,
    )
    for r, row in enumerate(rows):
        top = r * (height + caption + spacing) + caption
        for c, panel in enumerate(row):
            if panel is not None:
                left = c * (width + spacing)
                grid[top : top + height, left : left + width] = panel
    if captions is not None:
        font = ImageFont.load_default()
        for r, row in enumerate(captions):
            for c, text in enumerate(row):
                if text:
                    top = r * (height + caption + spacing)
                    left = c * (width + spacing)
                    grid[top : top + caption, left : left + width] = _caption(
                        text, width, background, font
                    )
    return grid


def _caption(text, width, background, font):
    """Draws `text` on a strip one panel wide; longer text is cut off."""
    strip = Image.new("RGB", (width, CAPTION_HEIGHT), (background,) * 3)
    ImageDraw.Draw(strip).text((1, 1), text, fill=CAPTION_COLOR, font=font)
    return np.asarray(strip)


PANEL_SUFFIX = "_prediction.png"
# Width of one legend entry: a colour swatch and a class name.
LEGEND_ENTRY_WIDTH = 120


def class_legend(
    class_ids, dataset, width: int, background: int = 255
) -> np.ndarray:
    """A strip naming the colour of each class in `class_ids`.

    Entries (a swatch in the dataset's palette and the class name) fill
    rows of `width` pixels, as many rows as needed, in `class_ids` order.

    Args:
        class_ids: train ids to list (the ignore label is left out).
        dataset: the `DatasetInfo` giving palette, class names and ignore
            label.
        width: the strip's width in pixels.
        background: int grey level behind the entries. Defaults to `255`.

    Returns:
        uint8 array `[rows * CAPTION_HEIGHT, width, 3]` (zero rows when
        there is no class to list).

    Example:

    >>> from gff_keras.data import dataset_info
    >>> class_legend([0, 2], dataset_info("synthetic"), 300).shape
    (14, 300, 3)
    """
    ids = [int(i) for i in class_ids if int(i) != dataset.ignore_label]
    per_row = max(1, width // LEGEND_ENTRY_WIDTH)
    rows = -(-len(ids) // per_row)
    strip = Image.new("RGB", (width, rows * CAPTION_HEIGHT), (background,) * 3)
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default()
    swatch = CAPTION_HEIGHT - 4
    for index, class_id in enumerate(ids):
        top = (index // per_row) * CAPTION_HEIGHT + 2
        left = (index % per_row) * LEGEND_ENTRY_WIDTH + 1
        color = tuple(int(c) for c in dataset.palette[class_id])
        draw.rectangle(
            [left, top, left + swatch, top + swatch],
            fill=color,
            outline=CAPTION_COLOR,
        )
        draw.text(
            (left + swatch + 3, top - 1),
            dataset.class_names[class_id],
            fill=CAPTION_COLOR,
            font=font,
        )
    return np.asarray(strip)


def prediction_panel(
    model, image, label, dataset, alpha: float = 0.5, spacing: int = 4
) -> np.ndarray:
    """Image | ground truth | prediction, with a legend of their classes.

    Args:
        model: a segmentation model taking normalized images and returning
            logits at the input's size (e.g. `GFFNet`).
        image: uint8 RGB `[H, W, 3]`.
        label: `[H, W]` train ids (the ignore label is not drawn).
        dataset: the `DatasetInfo` giving palette, class names and ignore
            label.
        alpha: mask weight in the overlays. Defaults to `0.5`.
        spacing: pixels between panels and above the legend.

    Returns:
        uint8 array `[height, width, 3]`: the captioned panels, then a
        legend of every class in the label or the prediction.
    """
    image = np.asarray(image, np.uint8)
    label = np.asarray(label)
    logits = model(normalize_images(image[None]), training=False)
    prediction = np.argmax(np.asarray(logits)[0], axis=-1)
    panels = [image] + [
        overlay(image, mask, dataset.palette, alpha, dataset.ignore_label)
        for mask in (label, prediction)
    ]
    grid = panel_grid(
        [panels],
        spacing=spacing,
        captions=[["image", "ground truth", "prediction"]],
    )
    classes = np.union1d(np.unique(label), np.unique(prediction))
    legend = class_legend(classes, dataset, grid.shape[1])
    gap = np.full((spacing, grid.shape[1], 3), 255, np.uint8)
    return np.concatenate([grid, gap, legend])


def write_prediction_panels(
    model, examples, output_dir: str, dataset, alpha: float = 0.5
) -> list:
    """Writes image | ground truth | prediction panels for labelled images.

    Each panel (`prediction_panel`) ends with a legend of the classes it
    shows.

    Args:
        model: a segmentation model taking normalized images and returning
            logits at the input's size (e.g. `GFFNet`).
        examples: iterable of `(name, uint8 RGB image [H, W, 3], label
            [H, W])` with labels as train ids (255 ignored); each is written
            to `<output_dir>/<name>_prediction.png`.
        output_dir: folder to write to; created if missing.
        dataset: the `DatasetInfo` giving the palette and ignore label.
        alpha: mask weight in the overlays. Defaults to `0.5`.

    Returns:
        List of the written files.

    Raises:
        ValueError: when two examples share a name.

    Example:

    >>> write_prediction_panels(model, [("a", image, label)], "out",
    ...                         dataset_info("synthetic"))  # doctest: +SKIP
    ['out/a_prediction.png']
    """
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for name, image, label in examples:
        target = os.path.join(output_dir, name + PANEL_SUFFIX)
        if target in written:
            raise ValueError(f"Two examples are named {name!r}.")
        panel = prediction_panel(model, image, label, dataset, alpha)
        Image.fromarray(panel).save(target)
        written.append(target)
    return written
