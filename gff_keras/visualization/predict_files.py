import os

import numpy as np
from PIL import Image

from gff_keras.visualization._files import unique_stems
from gff_keras.visualization.cityscapes_label_ids import cityscapes_label_ids
from gff_keras.visualization.colorize import colorize
from gff_keras.visualization.overlay import overlay
from gff_keras.visualization.read_image import read_image

# Sub-folder for the official Cityscapes evaluation. Its scripts look for
# `{city}_{sequence}_{frame}*.png` anywhere below the results folder and
# stop when two files match, so the label-id PNGs must not share a folder
# with the colour masks and overlays.
CITYSCAPES_DIR = "cityscapes_label_ids"


def predict_files(
    segmenter,
    paths,
    output_dir: str,
    dataset,
    alpha: float = 0.5,
    write_cityscapes_label_ids: bool = False,
) -> list:
    """Segments image files and writes colour-coded PNG masks and overlays.

    For every input `<stem>.<ext>` it writes, in `output_dir`:

    - `<stem>_mask.png`: the predicted classes in the dataset's palette;
    - `<stem>_overlay.png`: the mask blended over the image (`overlay`);
    - with `write_cityscapes_label_ids`, also
      `cityscapes_label_ids/<stem>_labelIds.png`: Cityscapes label ids
      (uint8, e.g. road = 7) for the official evaluation scripts and server
      (point `CITYSCAPES_RESULTS` at that folder, or zip it).

    Args:
        segmenter: a `Segmenter` (or any object with `predict(image)`
            returning class ids `[H, W]`).
        paths: image files (see `find_images`).
        output_dir: folder to write to; created if missing.
        dataset: the `DatasetInfo` giving the palette and ignore label.
        alpha: mask weight in the overlay. Defaults to `0.5`.
        write_cityscapes_label_ids: bool, also write label-id PNGs; needs
            `dataset.name == "cityscapes"`. Defaults to `False`.

    Returns:
        List of the written files, in input order.

    Raises:
        ValueError: for an unreadable image (naming it), two inputs with
            the same file stem (their outputs would collide), a model whose
            class count differs from the dataset's, or label ids asked for
            another dataset than Cityscapes.

    Example:

    >>> segmenter = Segmenter.load("runs/cityscapes")  # doctest: +SKIP
    >>> predict_files(segmenter, ["a.png"], "out",
    ...               dataset_info("cityscapes"))  # doctest: +SKIP
    ['out/a_mask.png', 'out/a_overlay.png']
    """
    if write_cityscapes_label_ids and dataset.name != "cityscapes":
        raise ValueError(
            "Cityscapes label ids need a Cityscapes model; the dataset is "
            f"{dataset.name!r}."
        )
    num_classes = getattr(segmenter, "num_classes", None)
    if num_classes is not None and num_classes != dataset.num_classes:
        raise ValueError(
            f"The model predicts {num_classes} classes but dataset "
            f"{dataset.name!r} has {dataset.num_classes}; pass the dataset "
            "the model was trained on."
        )
    stems = unique_stems(paths)
    os.makedirs(output_dir, exist_ok=True)
    if write_cityscapes_label_ids:
        os.makedirs(os.path.join(output_dir, CITYSCAPES_DIR), exist_ok=True)
    written = []
    for stem, path in stems.items():
        image = read_image(path)
        prediction = segmenter.predict(image)
        outputs = {
            f"{stem}_mask.png": colorize(
                prediction, dataset.palette, dataset.ignore_label
            ),
            f"{stem}_overlay.png": overlay(
                image, prediction, dataset.palette, alpha, dataset.ignore_label
            ),
        }
        if write_cityscapes_label_ids:
            name = os.path.join(CITYSCAPES_DIR, f"{stem}_labelIds.png")
            outputs[name] = cityscapes_label_ids(
                prediction, dataset.ignore_label
            )
        for name, array in outputs.items():
            target = os.path.join(output_dir, name)
            Image.fromarray(np.ascontiguousarray(array)).save(target)
            written.append(target)
    return written
