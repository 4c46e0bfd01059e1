"""Reads datasets through TensorFlow Datasets (`tfds:` names)."""

import os

import tensorflow as tf

from gff_keras.data import catalog
from gff_keras.data import pipeline

# TFDS builders whose data is the dataset's own. TFDS `scene_parse150` is
# not ADE20K's 150-class benchmark (SPEC 9), so it is not offered.
TFDS_BUILDERS = {"cityscapes": "cityscapes/semantic_segmentation"}
TFDS_SPLITS = {"train": "train", "validation": "validation", "test": "test"}


def tfds_examples(info, split, data_dir):
    """Prepares the TFDS builder and returns `(examples, read_fn)`.

    Args:
        info: the dataset's `DatasetInfo`.
        split: canonical split name.
        data_dir: TFDS manual download directory holding the official zips
            (`leftImg8bit_trainvaltest.zip`, `gtFine_trainvaltest.zip`);
            TFDS writes its prepared records to `data_dir/tfds`.

    Returns:
        A dataset of TFDS examples and the function mapping one to
        `(image uint8, label uint8 train ids, ok)`.

    Raises:
        ValueError: for a dataset TFDS does not provide correctly, or no
            `data_dir`.
        FileNotFoundError: if the manual directory lacks the zips.
    """
    import tensorflow_datasets as tfds

    if info.name not in TFDS_BUILDERS:
        raise ValueError(
            f"'tfds:{info.name}' is not supported; TensorFlow Datasets is "
            f"used for: {', '.join('tfds:' + n for n in TFDS_BUILDERS)}. "
            f"Read {info.name} from its official layout with data_dir."
        )
    if data_dir is None or not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"tfds:{info.name} needs data_dir: the manual download directory "
            f"(got {data_dir!r}). {info.download}"
        )
    builder = tfds.builder(
        TFDS_BUILDERS[info.name], data_dir=os.path.join(data_dir, "tfds")
    )
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=data_dir)
        )
    except AssertionError as error:  # TFDS reports missing zips this way
        raise FileNotFoundError(str(error)) from error
    examples = builder.as_dataset(split=TFDS_SPLITS[split], shuffle_files=False)
    table = pipeline.table_tensor(info.label_table)

    def read(example):
        label = tf.gather(
            table, tf.cast(example["segmentation_label"][..., 0], tf.int32)
        )
        check = tf.debugging.Assert(
            tf.reduce_all(tf.not_equal(label, catalog.INVALID_LABEL)),
            ["Undefined label value in TFDS example", example["image_id"]],
        )
        with tf.control_dependencies([check]):
            label = tf.cast(label, tf.uint8)
        return example["image_left"], label, tf.constant(True)

    return examples, read
