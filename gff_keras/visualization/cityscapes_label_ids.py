import numpy as np

from gff_keras.data import catalog

# Written for ignored pixels: Cityscapes' "unlabeled" id, ignored by the
# official evaluation.
UNLABELED_ID = 0


def cityscapes_label_ids(train_ids, ignore_label: int = 255) -> np.ndarray:
    """Maps Cityscapes train ids (0..18) to the official label ids.

    The official evaluation (`cityscapesscripts`' pixel-level evaluation and
    the benchmark server) reads label ids, e.g. road = 7, car = 26.

    Args:
        train_ids: integer array of train ids.
        ignore_label: train id written as `UNLABELED_ID`. Defaults to `255`.

    Returns:
        uint8 array of label ids, shaped like `train_ids`.

    Raises:
        ValueError: for ids that are neither train ids nor `ignore_label`.

    Example:

    >>> cityscapes_label_ids(np.array([0, 13, 255])).tolist()
    [7, 26, 0]
    """
    train_ids = np.asarray(train_ids)
    table = np.full(max(256, ignore_label + 1), -1, np.int32)
    table[ignore_label] = UNLABELED_ID
    for label_id, train_id in catalog.CITYSCAPES_TRAIN_IDS.items():
        table[train_id] = label_id
    outside = (train_ids < 0) | (train_ids >= len(table))
    label_ids = table[np.where(outside, ignore_label, train_ids)]
    invalid = outside | (label_ids < 0)
    if invalid.any():
        raise ValueError(
            f"Not Cityscapes train ids: {np.unique(train_ids[invalid])[:10]}"
            f" (expected 0..{len(catalog.CITYSCAPES_TRAIN_IDS) - 1} or "
            f"{ignore_label})."
        )
    return label_ids.astype(np.uint8)
