import os

import numpy as np
from PIL import Image

from gff_keras.data.pipeline import normalize_images
from gff_keras.visualization.overlay import overlay
from gff_keras.visualization.panel_grid import panel_grid

PANEL_SUFFIX = "_prediction.png"


def write_prediction_panels(
    model, examples, output_dir: str, dataset, alpha: float = 0.5
) -> list:
    """Writes image | ground truth | prediction panels for labelled images.

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
        image = np.asarray(image, np.uint8)
        logits = model(normalize_images(image[None]), training=False)
        prediction = np.argmax(np.asarray(logits)[0], axis=-1)
        panels = [image] + [
            overlay(image, mask, dataset.palette, alpha, dataset.ignore_label)
            for mask in (np.asarray(label), prediction)
        ]
        grid = panel_grid(
            [panels],
            captions=[["image", "ground truth", "prediction"]],
        )
        target = os.path.join(output_dir, name + PANEL_SUFFIX)
        if target in written:
            raise ValueError(f"Two examples are named {name!r}.")
        Image.fromarray(grid).save(target)
        written.append(target)
    return written
