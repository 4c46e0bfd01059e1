import dataclasses

import numpy as np

from gff_keras.data import catalog

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "val": "validation",
    "test": "test",
}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model and a visualizer need to know about a dataset.

    Attributes:
        name: registered dataset name.
        num_classes: number of train ids (`0 .. num_classes - 1`).
        class_names: one name per train id.
        palette: one RGB triple per train id, for colour-coded masks.
        ignore_label: label value excluded from loss and metrics.
        label_table: 256-entry table mapping raw label values on disk to
            train ids (`ignore_label` for ignored, `catalog.INVALID_LABEL`
            for values the dataset does not define).
        download: where to get the data, for error messages and docs.
        layout: the directory layout `build_dataset` reads.
    """

    name: str
    num_classes: int
    class_names: tuple
    palette: tuple
    ignore_label: int = catalog.IGNORE_LABEL
    label_table: np.ndarray = dataclasses.field(default=None, repr=False)
    download: str = ""
    layout: str = ""


def _registry() -> dict:
    ade = catalog.ADE20K_CLASSES
    context = catalog.PASCAL_CONTEXT_CLASSES
    coco = catalog.COCO_STUFF_CLASSES
    synthetic = catalog.SYNTHETIC_CLASSES
    coco_common = dict(
        num_classes=len(coco),
        class_names=coco,
        palette=catalog.pascal_voc_palette(len(coco)),
        label_table=catalog.coco_stuff_table(),
        download="https://github.com/nightrome/cocostuff",
    )
    infos = [
        DatasetInfo(
            name="ade20k",
            num_classes=len(ade),
            class_names=ade,
            palette=catalog.pascal_voc_palette(len(ade)),
            label_table=catalog.shifted_table(len(ade)),
            download="http://sceneparsing.csail.mit.edu/ "
            "(ADEChallengeData2016.zip)",
            layout="ADEChallengeData2016/images/{training,validation}/*.jpg "
            "and ADEChallengeData2016/annotations/{training,validation}/*.png"
            " (test: release_test/testing/*.jpg)",
        ),
        DatasetInfo(
            name="cityscapes",
            num_classes=len(catalog.CITYSCAPES_CLASSES),
            class_names=catalog.CITYSCAPES_CLASSES,
            palette=catalog.CITYSCAPES_PALETTE,
            label_table=catalog.cityscapes_table(),
            download="https://www.cityscapes-dataset.com/downloads/ "
            "(leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip)",
            layout="leftImg8bit/{train,val,test}/CITY/*_leftImg8bit.png and "
            "gtFine/{train,val,test}/CITY/*_gtFine_labelIds.png",
        ),
        DatasetInfo(
            name="pascal_context",
            num_classes=len(context),
            class_names=context,
            palette=catalog.pascal_voc_palette(len(context)),
            label_table=catalog.shifted_table(len(context)),
            download="https://cs.stanford.edu/~roozbeh/pascal-context/ and "
            "VOC2010; convert with scripts/prepare_data.py or mmseg's "
            "pascal_context.py",
            layout="VOCdevkit/VOC2010/JPEGImages/*.jpg, "
            "VOCdevkit/VOC2010/SegmentationClassContext/*.png (0 = "
            "background/ignored, 1..59 = classes) and "
            "VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt",
        ),
        DatasetInfo(
            name="coco_stuff",
            layout="images/{train2017,val2017}/*.jpg and "
            "annotations/{train2017,val2017}/*.png (stuffthingmaps: "
            "category_id - 1, 255 unlabelled)",
            **coco_common,
        ),
        DatasetInfo(
            name="coco_stuff10k",
            layout="images/*.jpg, annotations/*.png (stuffthingmaps "
            "convention, converted from the .mat files by "
            "scripts/prepare_data.py) and imageLists/{train,test}.txt",
            **coco_common,
        ),
        DatasetInfo(
            name="synthetic",
            num_classes=len(synthetic),
            class_names=synthetic,
            palette=catalog.pascal_voc_palette(len(synthetic)),
            label_table=catalog.identity_table(len(synthetic)),
            download="built in: generated on the fly, no download",
            layout="none",
        ),
    ]
    return {info.name: info for info in infos}


DATASETS = _registry()


def dataset_info(name: str) -> DatasetInfo:
    """Returns the `DatasetInfo` of a registered dataset.

    Args:
        name: `"ade20k"`, `"cityscapes"`, `"pascal_context"`,
            `"coco_stuff"` (164k), `"coco_stuff10k"` or `"synthetic"`; a
            `"tfds:"` prefix names the same dataset read through TensorFlow
            Datasets.

    Returns:
        The dataset's `DatasetInfo`.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).

    Example:

    >>> dataset_info("cityscapes").num_classes
    19
    """
    key = name[len("tfds:") :] if name.startswith("tfds:") else name
    if key not in DATASETS:
        raise ValueError(
            f"Unknown dataset {name!r}; known datasets: "
            f"{', '.join(sorted(DATASETS))} (and 'tfds:cityscapes')."
        )
    return DATASETS[key]


def canonical_split(split: str) -> str:
    """Maps `train`/`training`/`val`/`validation`/`test` to one name."""
    if split not in SPLIT_ALIASES:
        raise ValueError(
            f"Unknown split {split!r}; use 'train', 'validation' (or 'val') "
            "or 'test'."
        )
    return SPLIT_ALIASES[split]
