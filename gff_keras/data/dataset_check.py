"""Reads every file of a dataset and lists the examples the pipeline cannot
use, with a reason each; stores such lists as JSON."""

import json
import os
import re
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from gff_keras import atomic_files
from gff_keras.data import catalog
from gff_keras.data import pipeline
from gff_keras.data import sources
from gff_keras.data.bad_example import BadExample
from gff_keras.data.registry import canonical_split
from gff_keras.data.registry import dataset_info

# The PNG colour types of the IHDR chunk.
PNG_COLOUR_TYPES = {
    0: "grayscale",
    2: "RGB",
    3: "palette",
    4: "grayscale with alpha",
    6: "RGBA",
}
# At most this many offending label values are named in a reason.
MAX_LISTED_VALUES = 10
# Results come back in batches of this many files (one progress update each).
BATCH = 64


def _file_facts(data, is_label, invalid_values):
    """What the checks need to know about one file's bytes.

    Decoding is the pipeline's (`pipeline.read_example`): a file it
    accepts decodes here, and one it rejects is flagged.

    Args:
        data: scalar string tensor, the file's bytes.
        is_label: scalar bool tensor.
        invalid_values: bool `[256]`, the raw label values the dataset does
            not define.

    Returns:
        A dict of tensors: `length`, `is_jpeg`, `is_png`, `complete`,
        `bit_depth` and `colour_type` (of a PNG's IHDR chunk),
        `shape` (`[height, width, channels]` decoded, `-1` when the file
        is incomplete) and `invalid` (bool `[256]`: raw values present in a
        single-channel label that the dataset does not define).
    """
    # The first 26 bytes, zero-padded: a PNG's signature and IHDR (bit
    # depth at byte 24, colour type at 25), also for shorter files.
    head = tf.strings.substr(
        tf.strings.join([tf.strings.substr(data, 0, 26), b"\0" * 26]), 0, 26
    )
    head = tf.io.decode_raw(head, tf.uint8)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), pipeline.JPEG_HEADER)
    is_png = tf.equal(tf.strings.substr(data, 0, 8), pipeline.PNG_HEADER)
    complete = pipeline._is_complete_image(data)
    no_values = tf.zeros([256], tf.bool)

    def image_shape():
        image = tf.cond(
            is_jpeg,
            # Only the size is used; the fast DCT fails on the same files.
            lambda: tf.io.decode_jpeg(
                data, channels=3, dct_method="INTEGER_FAST"
            ),
            lambda: tf.io.decode_png(data, channels=3),
        )
        return tf.shape(image), no_values

    def label_shape():
        raw = tf.io.decode_png(data, channels=0, dtype=tf.uint8)
        shape = tf.shape(raw)

        def values():
            counts = tf.math.bincount(
                tf.cast(tf.reshape(raw, [-1]), tf.int32),
                minlength=256,
                maxlength=256,
            )
            return tf.logical_and(counts > 0, invalid_values)

        single = tf.equal(shape[2], 1)
        return shape, tf.cond(single, values, lambda: no_values)

    shape, invalid = tf.cond(
        complete,
        lambda: tf.cond(is_label, label_shape, image_shape),
        lambda: (tf.constant([-1, -1, 0]), no_values),
    )
    return {
        "length": tf.strings.length(data),
        "is_jpeg": is_jpeg,
        "is_png": is_png,
        "complete": complete,
        "bit_depth": tf.cast(head[24], tf.int32),
        "colour_type": tf.cast(head[25], tf.int32),
        "shape": shape,
        "invalid": invalid,
    }


def _op_message(error):
    """An `OpError`'s message without TensorFlow's node and op names."""
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", error.message)
    message = re.sub(r"\s*\[Op:\w+\].*$", "", message, flags=re.S)
    return message.strip().splitlines()[0] if message.strip() else "error"


def _facts_eagerly(path, is_label, invalid_values):
    """`_file_facts` of one file, or the error that stops reading it."""
    try:
        data = tf.io.read_file(path)
    except tf.errors.OpError as error:
        return {"error": f"cannot be read: {_op_message(error)}"}
    try:
        facts = _file_facts(data, tf.constant(is_label), invalid_values)
    except tf.errors.OpError as error:
        return {"error": f"cannot be decoded: {_op_message(error)}"}
    return {key: value.numpy() for key, value in facts.items()}


def _read_facts(files, invalid_values, progress):
    """`_file_facts` of every `(path, is_label)`, in parallel.

    A file whose reading or decoding raises is dropped by the parallel pass
    and read again alone, eagerly, to get its error message.
    """
    facts = [None] * len(files)
    paths = [path for path, _ in files]
    kinds = [is_label for _, is_label in files]
    data = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(files), dtype=tf.int64), paths, kinds)
    )
    data = data.map(
        lambda index, path, is_label: (
            index,
            _file_facts(tf.io.read_file(path), is_label, invalid_values),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    data = data.ignore_errors(log_warning=False).batch(BATCH)
    options = tf.data.Options()
    options.deterministic = False
    # One core per call, parallel calls for throughput (as build_dataset).
    options.threading.max_intra_op_parallelism = 1
    data = data.with_options(options).prefetch(tf.data.AUTOTUNE)
    done = 0
    for indices, batch in data.as_numpy_iterator():
        for row, index in enumerate(indices):
            facts[index] = {key: value[row] for key, value in batch.items()}
        done += len(indices)
        if progress is not None:
            progress.update(done)
    for index, found in enumerate(facts):
        if found is None:
            facts[index] = _facts_eagerly(*files[index], invalid_values)
    if progress is not None and done < len(files):
        progress.update(len(files))
    return facts


def _file_problem(kind, facts):
    """The problem that stops a file from being decoded, or `None`."""
    if "error" in facts:
        return f"{kind} {facts['error']}"
    if facts["length"] == 0:
        return f"{kind} file is empty"
    if not (facts["is_jpeg"] or facts["is_png"]):
        return f"{kind} is not a JPEG or PNG file"
    if facts["complete"]:
        return None
    if facts["length"] <= 16:
        return f"{kind} file is too short ({facts['length']} bytes)"
    if facts["is_png"]:
        return f"{kind} is truncated (no PNG IEND chunk at the end)"
    return f"{kind} is truncated (no JPEG end-of-image marker at the end)"


def _size(shape):
    return f"{shape[0]}x{shape[1]}"


def _label_problems(facts, image_shape):
    problems = []
    file_problem = _file_problem("label", facts)
    if file_problem:
        return [file_problem]
    if not facts["is_png"]:
        return ["label is a JPEG file, not a PNG"]
    colour = PNG_COLOUR_TYPES.get(
        int(facts["colour_type"]), f"colour type {facts['colour_type']}"
    )
    single = facts["shape"][2] == 1
    well_formed = (
        facts["bit_depth"] == 8 and facts["colour_type"] == 0 and single
    )
    if not well_formed:
        problems.append(
            "label is not a single-channel 8-bit PNG "
            f"({facts['bit_depth']}-bit {colour})"
        )
    if image_shape is not None and tuple(facts["shape"][:2]) != tuple(
        image_shape[:2]
    ):
        problems.append(
            f"label size {_size(facts['shape'])} differs from image size "
            f"{_size(image_shape)} (height x width)"
        )
    values = np.flatnonzero(facts["invalid"])
    if values.size and well_formed:
        listed = ", ".join(str(v) for v in values[:MAX_LISTED_VALUES])
        if values.size > MAX_LISTED_VALUES:
            listed += f", ... ({values.size} values)"
        problems.append(
            f"label holds raw values {listed} outside the dataset's "
            "classes and ignore label"
        )
    return problems


def _check_split(info, split, pairs, invalid_values, progress):
    """The `BadExample`s of one split's `(image, label)` pairs."""
    files, image_at, label_at = [], {}, {}
    for index, (image, label) in enumerate(pairs):
        if not os.path.isfile(image):
            continue
        image_at[index] = len(files)
        files.append((image, False))
        if label is not None and os.path.isfile(label):
            label_at[index] = len(files)
            files.append((label, True))
    bar = None
    if progress:
        print(
            f"{info.name} {split}: reading {len(image_at)} images and "
            f"{len(label_at)} labels"
        )
        bar = keras.utils.Progbar(len(files), unit_name="file")
    facts = _read_facts(files, invalid_values, bar) if files else []
    bad = []
    for index, (image, label) in enumerate(pairs):
        image_shape = None
        if index not in image_at:
            problems = ["image file is missing"]
        else:
            image_facts = facts[image_at[index]]
            problem = _file_problem("image", image_facts)
            problems = [problem] if problem else []
            if not problems:
                image_shape = image_facts["shape"]
        if label is not None and index in image_at:
            if index not in label_at:
                problems.append("label file is missing")
            else:
                problems += _label_problems(facts[label_at[index]], image_shape)
        if problems:
            bad.append(BadExample(split, image, label, "; ".join(problems)))
    return bad


def check_dataset(
    name: str,
    data_dir: str | None,
    splits: Sequence[str] = ("train", "validation"),
    *,
    progress: bool = True,
) -> list[BadExample]:
    """Reads every image and label of the splits; lists the bad examples.

    Every file is read and decoded (in parallel, `tf.data` with `AUTOTUNE`)
    the way `build_dataset` does, and an example is bad when the pipeline
    would stop on it (or skip it with `skip_bad_examples=True`): an image
    or label that is missing, unreadable, empty, not a JPEG/PNG, truncated
    (checked by its end marker, as the pipeline does) or undecodable; a
    label that is not a PNG, not single-channel 8-bit (palette, RGB and
    16-bit PNGs decode to other values than the class indices), of another
    size than its image, or holding raw values outside the dataset's
    classes and ignore label (`DatasetInfo.label_table`).

    Synthetic and TFDS datasets (`"tfds:..."`) have nothing on disk to
    check: they return `[]`.

    Args:
        name: a dataset name from `dataset_info`.
        data_dir: the dataset's root directory, as for `build_dataset`.
        splits: split names (`"train"`, `"validation"` or `"val"`,
            `"test"`). Defaults to `("train", "validation")`.
        progress: print a line and a progress bar per split. Defaults to
            `True`.

    Returns:
        The bad examples, sorted by split name, then image path; paths as
        the layout lists them (under `data_dir` as given). Each reason
        joins every problem found with `"; "` (image first), except that
        a label is not compared with an unreadable image nor read for a
        missing one, and its values are checked only in a single-channel
        8-bit PNG.

    Raises:
        ValueError: for an unknown dataset or split, or a file dataset
            without `data_dir`.
        FileNotFoundError: when the layout of a split is missing or holds
            no image (every split is listed before any file is read).

    Example:

    >>> bad = check_dataset("ade20k", "/data/ADEChallengeData2016")
    ...     # doctest: +SKIP
    >>> for example in bad:  # doctest: +SKIP
    ...     print(example.describe())
    /data/.../ADE_train_00001234.png: label size 512x683 differs from ...
    """
    info = dataset_info(name)
    splits = list(dict.fromkeys(canonical_split(split) for split in splits))
    if name.startswith("tfds:") or info.name == "synthetic":
        return []
    listed = {
        split: sources.list_files(info, split, data_dir) for split in splits
    }
    invalid_values = tf.constant(info.label_table == catalog.INVALID_LABEL)
    bad = []
    for split, pairs in listed.items():
        bad += _check_split(info, split, pairs, invalid_values, progress)
    return sorted(bad, key=lambda example: (example.split, example.image))


def write_bad_examples(
    path: str,
    bad_examples: Sequence[BadExample],
    *,
    dataset: str,
    data_dir: str | None,
) -> None:
    """Writes a list of bad examples as JSON, atomically.

    The file holds `{"dataset", "data_dir", "bad_examples": [{"split",
    "image", "label", "reason"}, ...]}` with absolute paths, so that it can
    be used from any working directory. It is written to
    `path + ".partial"` and renamed, so a reader never sees half a list.

    Args:
        path: the JSON file; missing parent folders are created.
        bad_examples: what `check_dataset` returned.
        dataset: the dataset's name.
        data_dir: the `data_dir` that was checked.

    Raises:
        OSError: when the file cannot be written.

    Example:

    >>> write_bad_examples("bad_examples_ade20k.json", bad,
    ...                    dataset="ade20k", data_dir="/data")
    ...     # doctest: +SKIP
    """
    content = {
        "dataset": dataset,
        "data_dir": None if data_dir is None else os.path.abspath(data_dir),
        "bad_examples": [
            {
                "split": example.split,
                "image": sources.normalize_path(example.image),
                "label": None
                if example.label is None
                else sources.normalize_path(example.label),
                "reason": example.reason,
            }
            for example in bad_examples
        ],
    }
    atomic_files.write_json(path, content)


def read_bad_examples(path: str) -> list[BadExample]:
    """Reads a list written by `write_bad_examples`.

    Args:
        path: the JSON file.

    Returns:
        The `BadExample`s, in the file's order.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: naming the file, when it is not such a list.

    Example:

    >>> bad = read_bad_examples("runs/ade20k/bad_examples.json")
    ...     # doctest: +SKIP
    >>> exclude = [example.image for example in bad]  # doctest: +SKIP
    """
    expected = (
        'expected JSON {"dataset", "data_dir", "bad_examples": [{"split", '
        '"image", "label", "reason"}, ...]} as scripts/prepare_data.py '
        "--check writes"
    )
    try:
        with open(path) as f:
            content = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} is not a bad-examples list ({error}); {expected}."
        ) from None
    entries = content.get("bad_examples") if isinstance(content, dict) else None
    if not isinstance(entries, list):
        raise ValueError(
            f"{path} is not a bad-examples list (no 'bad_examples' list); "
            f"{expected}."
        )
    bad = []
    for number, entry in enumerate(entries):
        fields = ("split", "image", "reason")
        if (
            not isinstance(entry, dict)
            or not all(isinstance(entry.get(key), str) for key in fields)
            or not isinstance(entry.get("label", ""), (str, type(None)))
        ):
            raise ValueError(
                f"{path}: entry {number} of 'bad_examples' is not "
                f"{{'split', 'image', 'label', 'reason'}} strings ('label' "
                f"may be null): {json.dumps(entry)[:200]}"
            )
        bad.append(
            BadExample(
                entry["split"],
                entry["image"],
                entry.get("label"),
                entry["reason"],
            )
        )
    return bad
