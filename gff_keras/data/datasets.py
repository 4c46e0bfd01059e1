from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from gff_keras.data import pipeline
from gff_keras.data import sources
from gff_keras.data.registry import canonical_split
from gff_keras.data.registry import dataset_info
from gff_keras.data.synthetic_scenes import DEFAULT_SIZES
from gff_keras.data.synthetic_scenes import SyntheticScenes

SHUFFLE_BUFFER = 1024


def _synthetic_examples(split, seed, num_examples, image_size):
    scenes = SyntheticScenes(image_size=image_size, seed=seed or 0)
    count = num_examples or DEFAULT_SIZES[split]

    def generate(index):
        return scenes.generate(split, int(index))

    def read(index):
        image, label = tf.numpy_function(
            generate, [index], (tf.uint8, tf.uint8), stateful=False
        )
        image.set_shape(scenes.image_size + (3,))
        label.set_shape(scenes.image_size)
        return image, label, tf.constant(True)

    return tf.range(count, dtype=tf.int64), read


def _file_examples(info, split, data_dir, skip_bad_examples, training, exclude):
    pairs = sources.list_examples(
        info, split, data_dir, skip_bad_examples, exclude
    )
    images = [image for image, _ in pairs]
    labels = [label or "" for _, label in pairs]
    table = pipeline.table_tensor(info.label_table)

    def read(paths):
        return pipeline.read_example(
            paths[0], paths[1], table, skip_bad_examples, fast_jpeg=training
        )

    return tf.constant(np.stack([images, labels], axis=1)), read


def _endless_epochs(items, seed, start):
    """Endless epochs of `items` (rows of a tensor), from position `start`.

    Epoch `e` is the permutation `index_shuffle(seed=[seed, e])`, a pure
    function of the position in the stream: the stream does not depend on
    how many iterators Keras or tf.distribute create (as a reshuffling
    `Dataset.shuffle` would), and skipping to a resumed position costs
    nothing.
    """
    count = int(items.shape[0])
    seed = np.random.randint(2**31) if seed is None else seed

    def pick(position):
        epoch, index = position // count, position % count
        shuffled = tf.random.experimental.index_shuffle(
            index,
            seed=tf.stack([tf.constant(seed, tf.int64), epoch]),
            max_index=count - 1,
        )
        return tf.gather(items, shuffled)

    return tf.data.Dataset.counter(start).map(pick)


def build_dataset(
    name: str,
    split: str,
    *,
    data_dir: str | None = None,
    training: bool,
    crop_size=None,
    batch_size: int,
    seed: int | None = None,
    skip_bad_examples: bool = False,
    deterministic: bool | None = None,
    scale_range=(0.75, 2.0),
    num_examples: int | None = None,
    synthetic_image_size=(192, 192),
    repeat: bool = False,
    initial_step: int = 0,
    exclude: Iterable[str] | None = None,
) -> tf.data.Dataset:
    """Builds the training or evaluation `tf.data` pipeline of a dataset.

    Training: shuffle, decode, random scale in `scale_range`, pad (0 / 255)
    and random crop to `crop_size`, horizontal flip, colour jitter in
    [-10, 10], normalization, batches of `batch_size` (one epoch; call
    `.repeat()` for more). Evaluation: full images and labels, normalized,
    batches padded with 0 / 255 when sizes differ.

    Args:
        name: a dataset name from `dataset_info` (`"tfds:cityscapes"` reads
            TensorFlow Datasets).
        split: `"train"`, `"validation"` (`"val"`) or `"test"`.
        data_dir: the dataset's root directory (unused for `synthetic`).
        training: bool, build the training (augmented) pipeline.
        crop_size: int or `(height, width)`, required when `training`.
        batch_size: int.
        seed: int or `None`; with a seed, shuffling and augmentation are
            reproducible and the pipeline is deterministic.
        skip_bad_examples: skip unreadable images, missing or mis-sized
            labels and labels with undefined values (each logged with its
            file name) instead of stopping with an error.
        deterministic: keep element order under parallel decoding; defaults
            to `True` for evaluation (files in sorted order) and, for
            training, to `seed is not None`.
        scale_range: `(min, max)` of the random scale.
        num_examples: synthetic only: scenes in the split.
        synthetic_image_size: synthetic only: `(height, width)` of scenes.
        repeat: training only: repeat epochs without end, reshuffled each
            epoch (batches may then span two epochs).
        initial_step: training only: start at this batch of the stream.
            The skipped examples are neither read nor augmented, and with a
            seed the batches that follow equal those of a stream started at
            0, which makes resumed runs reproduce uninterrupted ones.
        exclude: image paths to leave out of the split, as `check_dataset`
            reports them (`BadExample.image`); compared as absolute,
            normalized paths, so a relative and an absolute `data_dir`
            match. Their files are never opened: an excluded image without
            a label file is not an error. Paths of other splits are
            ignored; synthetic and TFDS datasets ignore it.

    Returns:
        A dataset of `(images float32 [B, h, w, 3], labels int32 [B, h, w])`
        with labels as train ids and 255 for ignored pixels.

    Raises:
        ValueError: for an unknown dataset or split, a missing `data_dir` or
            `crop_size`, or an `exclude` that leaves no image.
        FileNotFoundError: when the expected layout or a label is missing.

    Example:

    >>> ds = build_dataset("synthetic", "train", training=True,
    ...                    crop_size=64, batch_size=2, seed=0)
    >>> images, labels = next(iter(ds))
    >>> images.shape, labels.shape
    (TensorShape([2, 64, 64, 3]), TensorShape([2, 64, 64]))

    Leaving out the examples a check found bad (`check_dataset`, or the
    file `scripts/prepare_data.py --check` writes):

    >>> bad = read_bad_examples("bad_examples_ade20k.json")  # doctest: +SKIP
    >>> ds = build_dataset("ade20k", "train", data_dir="/data",
    ...                    training=True, crop_size=512, batch_size=16,
    ...                    exclude=[b.image for b in bad])  # doctest: +SKIP
    """
    info = dataset_info(name)
    split = canonical_split(split)
    if training and crop_size is None:
        raise ValueError("crop_size is required when training=True.")
    if isinstance(crop_size, int):
        crop_size = (crop_size, crop_size)
    if deterministic is None:
        deterministic = seed is not None or not training

    if name.startswith("tfds:"):
        from gff_keras.data import tfds_source

        examples, read = tfds_source.tfds_examples(info, split, data_dir)
    elif info.name == "synthetic":
        examples, read = _synthetic_examples(
            split, seed, num_examples, synthetic_image_size
        )
    else:
        examples, read = _file_examples(
            info, split, data_dir, skip_bad_examples, training, exclude
        )

    if not training and (repeat or initial_step):
        raise ValueError("repeat and initial_step apply to training only.")
    skipped = initial_step * batch_size
    indexable = isinstance(examples, tf.Tensor)
    if training and repeat and indexable:
        examples = _endless_epochs(examples, seed, skipped)
    else:
        if indexable:
            examples = tf.data.Dataset.from_tensor_slices(examples)
        if training:
            examples = examples.shuffle(
                SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True
            )
        if repeat:
            # TFDS sources: the order of later epochs depends on the
            # iterator, so resumed runs see other (equally random) batches.
            examples = examples.repeat()
        examples = examples.skip(skipped)
    dataset = examples.map(
        read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
    )
    if skip_bad_examples:
        # A file with intact start and end markers can still fail to
        # decode (a damaged body): the read raises instead of flagging it.
        dataset = dataset.ignore_errors(log_warning=True)
        dataset = dataset.filter(lambda image, label, ok: ok)
    if training:
        # A seeded random stream (new each epoch) gives every example its own
        # augmentation seed, independent of parallelism.
        randoms = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=not repeat
        )
        randoms = randoms.batch(2).skip(skipped)
        dataset = tf.data.Dataset.zip((dataset, randoms)).map(
            lambda example, rng: pipeline.augment(
                example[0], example[1], rng, crop_size, scale_range
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
        dataset = dataset.batch(batch_size, drop_remainder=True)
    else:
        dataset = dataset.map(
            lambda image, label, ok: (
                pipeline.normalize_images(image),
                tf.cast(label, tf.int32),
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
        dataset = dataset.padded_batch(
            batch_size,
            padding_values=(0.0, info.ignore_label),
        )
    options = tf.data.Options()
    options.deterministic = deterministic
    # Each map call runs on one core; parallelism comes from parallel calls.
    # Letting every op also fan out over the intra-op pool oversubscribes
    # the CPU and slows decoding and augmentation down.
    options.threading.max_intra_op_parallelism = 1
    # Multi-worker input: every worker reads the file list and keeps its
    # share of the elements (the list is not split into files per worker).
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
