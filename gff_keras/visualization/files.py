"""Images in from files and folders, masks and overlays out to files."""

import glob
import os
from collections.abc import Callable

import numpy as np
from PIL import Image

from gff_keras.visualization.masks import cityscapes_label_ids
from gff_keras.visualization.masks import colorize
from gff_keras.visualization.masks import overlay


def unique_stems(paths):
    """Maps each file's stem to its path, in order.

    Raises:
        ValueError: if two paths share a stem (their outputs would
            overwrite each other).
    """
    stems = {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in stems:
            raise ValueError(
                f"{stems[stem]!r} and {path!r} share the name {stem!r}; "
                "their outputs would overwrite each other."
            )
        stems[stem] = path
    return stems


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def find_images(patterns) -> list:
    """Expands image files, folders and glob patterns into a file list.

    A file is taken as given; a folder contributes its JPEG and PNG files
    (not its subfolders'); anything else is a glob pattern (`**` recurses)
    whose JPEG and PNG matches are taken. Every pattern must match. Each
    group is sorted; duplicates are dropped, keeping the first.

    Args:
        patterns: a path or pattern, or a list of them.

    Returns:
        List of file paths.

    Raises:
        FileNotFoundError: naming the first pattern that matches no image
            (or when `patterns` is empty).

    Example:

    >>> find_images(["photos/", "more/*.png"])  # doctest: +SKIP
    ['photos/a.jpg', 'photos/b.png', 'more/c.png']
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    found = []
    for pattern in patterns:
        if os.path.isfile(pattern):
            matches = [pattern]
        else:
            if os.path.isdir(pattern):
                names = os.listdir(pattern)
                candidates = [os.path.join(pattern, n) for n in names]
            else:
                candidates = glob.glob(pattern, recursive=True)
            matches = sorted(
                path
                for path in candidates
                if os.path.isfile(path)
                and path.lower().endswith(IMAGE_EXTENSIONS)
            )
        if not matches:
            # Every pattern must match, so a typo in one of several is not
            # silently skipped.
            raise FileNotFoundError(
                f"No image matches {pattern!r}: expected an image file, a "
                "folder or a glob pattern of "
                f"{'/'.join(IMAGE_EXTENSIONS)} files."
            )
        found.extend(path for path in matches if path not in found)
    if not found:
        raise FileNotFoundError("No input images given.")
    return found


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


# Sub-folder for the official Cityscapes evaluation. Its scripts look for
# `{city}_{sequence}_{frame}*.png` anywhere below the results folder and
# stop when two files match, so the label-id PNGs must not share a folder
# with the colour masks and overlays.
CITYSCAPES_DIR = "cityscapes_label_ids"


def predict_files(
    predictor,
    paths,
    output_dir: str,
    dataset,
    alpha: float = 0.5,
    write_cityscapes_label_ids: bool = False,
    on_unreadable: Callable[[str, str], None] | None = None,
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
        predictor: a `Predictor` (or any object with `predict(image)`
            returning class ids `[H, W]`).
        paths: image files (see `find_images`).
        output_dir: folder to write to; created if missing.
        dataset: the `DatasetInfo` giving the palette and ignore label.
        alpha: mask weight in the overlay. Defaults to `0.5`.
        write_cityscapes_label_ids: bool, also write label-id PNGs; needs
            `dataset.name == "cityscapes"`. Defaults to `False`.
        on_unreadable: `None` (the default) stops at an unreadable image
            with a `ValueError`; a function is called with the image's path
            and the reason instead, and the image is skipped.

    Returns:
        List of the written files, in input order.

    Raises:
        ValueError: for an unreadable image (naming it; unless
            `on_unreadable` is given), two inputs with
            the same file stem (their outputs would collide), a model whose
            class count differs from the dataset's, or label ids asked for
            another dataset than Cityscapes.

    Example:

    >>> predictor = Predictor.load("runs/cityscapes")  # doctest: +SKIP
    >>> predict_files(predictor, ["a.png"], "out",
    ...               dataset_info("cityscapes"))  # doctest: +SKIP
    ['out/a_mask.png', 'out/a_overlay.png']
    """
    if write_cityscapes_label_ids and dataset.name != "cityscapes":
        raise ValueError(
            "Cityscapes label ids need a Cityscapes model; the dataset is "
            f"{dataset.name!r}."
        )
    num_classes = getattr(predictor, "num_classes", None)
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
        try:
            image = read_image(path)
        except ValueError as error:
            if on_unreadable is None:
                raise
            on_unreadable(path, str(error.__cause__ or error))
            continue
        prediction = predictor.predict(image)
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
