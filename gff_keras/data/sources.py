"""Lists the (image, label) files of each dataset's official layout."""

import glob
import logging
import os

from gff_keras.data.registry import DatasetInfo


def _missing_data_error(info: DatasetInfo, data_dir, detail: str):
    return FileNotFoundError(
        f"{info.name}: {detail} under data_dir={data_dir!r}. Expected "
        f"layout: {info.layout}. Download: {info.download}. See "
        "docs/datasets.md."
    )


def _find_root(info, data_dir, marker, candidates):
    """Returns the first of `candidates` (under data_dir) holding `marker`."""
    if data_dir is None:
        raise ValueError(
            f"Dataset {info.name!r} reads files: pass data_dir (the "
            f"--data_dir flag). Expected layout: {info.layout}. Download: "
            f"{info.download}."
        )
    if not os.path.isdir(data_dir):
        raise _missing_data_error(
            info, data_dir, "the directory does not exist"
        )
    for candidate in candidates:
        root = os.path.join(data_dir, candidate)
        if os.path.exists(os.path.join(root, marker)):
            return root
    raise _missing_data_error(info, data_dir, f"no {marker!r} found")


def _no_split(info, split, available):
    return ValueError(
        f"{info.name} has no {split!r} split with files on disk; available "
        f"splits: {', '.join(available)}."
    )


def _pairs(images, label_of):
    """Sorted `(image, label)` pairs; the files are not checked."""
    return [(image, label_of(image)) for image in sorted(images)]


def _no_label(image):
    return None


def _ade20k(info, split, data_dir):
    if split == "test":
        root = _find_root(
            info,
            data_dir,
            "testing",
            ["release_test", os.path.join("..", "release_test")],
        )
        images = glob.glob(os.path.join(root, "testing", "*.jpg"))
        return _pairs(images, _no_label)
    root = _find_root(info, data_dir, "images", ["", "ADEChallengeData2016"])
    folder = {"train": "training", "validation": "validation"}[split]
    images = glob.glob(os.path.join(root, "images", folder, "*.jpg"))

    def label_of(image):
        stem = os.path.splitext(os.path.basename(image))[0]
        return os.path.join(root, "annotations", folder, stem + ".png")

    return _pairs(images, label_of)


def _cityscapes(info, split, data_dir):
    root = _find_root(info, data_dir, "leftImg8bit", ["", "cityscapes"])
    folder = {"train": "train", "validation": "val", "test": "test"}[split]
    suffix = "_leftImg8bit.png"
    images = glob.glob(
        os.path.join(root, "leftImg8bit", folder, "*", "*" + suffix)
    )

    def label_of(image):
        city = os.path.basename(os.path.dirname(image))
        prefix = os.path.basename(image)[: -len(suffix)]
        return os.path.join(
            root, "gtFine", folder, city, prefix + "_gtFine_labelIds.png"
        )

    return _pairs(images, label_of)


def _read_list(path, info, data_dir):
    if not os.path.isfile(path):
        raise _missing_data_error(info, data_dir, f"split list {path} missing")
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def _listed_examples(info, data_dir, root, list_file):
    """Examples named in a split list: `images/ID.jpg`, `labels/ID.png`."""
    image_dir, label_dir = LISTED_FOLDERS[info.name]
    ids = _read_list(list_file, info, data_dir)
    images = [os.path.join(root, image_dir, i + ".jpg") for i in ids]
    return _pairs(
        images,
        lambda image: os.path.join(
            root,
            label_dir,
            os.path.splitext(os.path.basename(image))[0] + ".png",
        ),
    )


def _pascal_context(info, split, data_dir):
    if split == "test":
        raise _no_split(info, split, ["train", "validation"])
    root = _find_root(
        info,
        data_dir,
        "SegmentationClassContext",
        ["", "VOC2010", os.path.join("VOCdevkit", "VOC2010")],
    )
    list_file = os.path.join(
        root,
        "ImageSets",
        "SegmentationContext",
        {"train": "train.txt", "validation": "val.txt"}[split],
    )
    return _listed_examples(info, data_dir, root, list_file)


def _coco_stuff(info, split, data_dir):
    root = _find_root(info, data_dir, "images", ["", "coco_stuff164k"])
    folder = {"train": "train2017", "validation": "val2017", "test": "test2017"}
    folder = folder[split]
    images = glob.glob(os.path.join(root, "images", folder, "*.jpg"))
    if split == "test":
        return _pairs(images, _no_label)

    def label_of(image):
        stem = os.path.splitext(os.path.basename(image))[0]
        return os.path.join(root, "annotations", folder, stem + ".png")

    return _pairs(images, label_of)


def _coco_stuff10k(info, split, data_dir):
    if split == "test":
        raise _no_split(info, split, ["train", "validation (test.txt)"])
    root = _find_root(info, data_dir, "imageLists", ["", "cocostuff-10k-v1.1"])
    list_file = os.path.join(
        root,
        "imageLists",
        {"train": "train.txt", "validation": "test.txt"}[split],
    )
    return _listed_examples(info, data_dir, root, list_file)


# (image folder, label folder) of the datasets read through split lists.
LISTED_FOLDERS = {
    "pascal_context": ("JPEGImages", "SegmentationClassContext"),
    "coco_stuff10k": ("images", "annotations"),
}
READERS = {
    "ade20k": _ade20k,
    "cityscapes": _cityscapes,
    "pascal_context": _pascal_context,
    "coco_stuff": _coco_stuff,
    "coco_stuff10k": _coco_stuff10k,
}


def normalize_path(path: str) -> str:
    """The form in which image paths are compared (`exclude`).

    Args:
        path: a file path, relative to the working directory or absolute.

    Returns:
        The absolute, normalized path, so that lists written with a
        relative `data_dir` match paths listed with an absolute one.
    """
    return os.path.abspath(path)


def list_files(info: DatasetInfo, split: str, data_dir) -> list:
    """Every `(image, label)` pair a split's layout names, unchecked.

    Unlike `list_examples`, listed images and labels may be missing.

    Args:
        info: the dataset's `DatasetInfo`.
        split: canonical split name (`train`, `validation`, `test`).
        data_dir: the dataset's root directory.

    Returns:
        Sorted list of `(image_path, label_path_or_None)`; the label is
        `None` for unlabelled test splits.

    Raises:
        ValueError: if `data_dir` is `None` or the split does not exist.
        FileNotFoundError: if the layout is missing or names no image.
    """
    pairs = READERS[info.name](info, split, data_dir)
    if not pairs:
        raise _missing_data_error(info, data_dir, "no images found")
    return pairs


def list_examples(
    info: DatasetInfo,
    split: str,
    data_dir,
    skip_bad_examples: bool = False,
    exclude=None,
) -> list:
    """Returns sorted `(image_path, label_path_or_None)` pairs of a split.

    Args:
        info: the dataset's `DatasetInfo`.
        split: canonical split name (`train`, `validation`, `test`).
        data_dir: the dataset's root directory.
        skip_bad_examples: skip images whose label file is missing (with a
            warning that counts them) instead of raising.
        exclude: image paths to leave out (compared after
            `normalize_path`); their files are not looked at, so an
            excluded image may lack its label or be missing itself.

    Returns:
        List of pairs; the label is `None` for unlabelled test splits.

    Raises:
        ValueError: if `data_dir` is `None`, the split does not exist or
            `exclude` leaves no image.
        FileNotFoundError: if the layout, an image or a label is missing.
    """
    pairs = list_files(info, split, data_dir)
    if exclude:
        excluded = {normalize_path(path) for path in exclude}
        kept = [p for p in pairs if normalize_path(p[0]) not in excluded]
        if not kept:
            raise ValueError(
                f"{info.name} {split}: all {len(pairs)} images are excluded."
            )
        pairs = kept
    for image, _ in pairs:
        # Only split lists (Pascal Context, COCO-Stuff 10k) can name an
        # image that is not there.
        if not os.path.isfile(image):
            raise FileNotFoundError(
                f"{info.name}: image {image} listed in the split file does "
                "not exist."
            )
    kept, missing = [], []
    for image, label in pairs:
        if label is not None and not os.path.isfile(label):
            missing.append((image, label))
        else:
            kept.append((image, label))
    if missing and not skip_bad_examples:
        image, label = missing[0]
        raise FileNotFoundError(
            f"{info.name}: label file {label} for image {image} is missing "
            f"({len(missing)} images without labels). Pass "
            "skip_bad_examples=True to skip them."
        )
    if missing:
        logging.warning(
            "%s: skipped %d images without a label file, e.g. %s",
            info.name,
            len(missing),
            missing[0][0],
        )
    if not kept:
        raise _missing_data_error(info, data_dir, "no images found")
    return kept
