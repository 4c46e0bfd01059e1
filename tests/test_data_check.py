"""check_dataset, bad-example lists, build_dataset(exclude=...), and how
scripts/prepare_data.py --check, evaluate.py and predict.py handle bad
files and user errors."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from gff_keras import GFFNet
from gff_keras.data import BadExample
from gff_keras.data import build_dataset
from gff_keras.data import check_dataset
from gff_keras.data import read_bad_examples
from gff_keras.data import write_bad_examples
from gff_keras.evaluation import evaluate_dataset
from tests.script_runs import run_commands
from tests.test_data import random_rgb
from tests.test_data import write_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (30, 40)
GOOD = (0, 1, 2)
# TensorFlow's decode_jpeg error for a damaged body (2.16 to 2.21).
JPEG_ERROR = "jpeg::Uncompress failed. Invalid JPEG data or crop window."
# The problem planted at each index of both splits, and its reason. The
# corrupt JPEG differs: training's is cut in half (caught by its missing
# end marker), validation's has its Huffman tables and scan zeroed
# between intact start and end markers (caught by the decoder).
REASONS = {
    ("training", 3): "image is truncated (no JPEG end-of-image marker at "
    "the end)",
    ("validation", 3): f"image cannot be decoded: {JPEG_ERROR}",
    4: "label is truncated (no PNG IEND chunk at the end)",
    5: "label size 8x9 differs from image size 30x40 (height x width)",
    6: "label file is missing",
    7: "label holds raw values 151, 200 outside the dataset's classes and "
    "ignore label",
}
FOLDERS = {"train": "training", "validation": "validation"}


def paths(base, folder, index):
    stem = f"ADE_{folder[:5]}_{index:08d}"
    return (
        os.path.join(base, "images", folder, stem + ".jpg"),
        os.path.join(base, "annotations", folder, stem + ".png"),
    )


def reason(folder, index):
    return REASONS.get((folder, index)) or REASONS[index]


def build_bad_tree(root):
    """ADEChallengeData2016 with three good and five bad examples a split.

    Returns:
        `(base, labels)`: the dataset folder and the raw labels of the good
        examples by `(folder, index)`.
    """
    rng = np.random.default_rng(0)
    base = os.path.join(root, "ADEChallengeData2016")
    labels = {}
    for folder in FOLDERS.values():
        for index in range(8):
            image_path, label_path = paths(base, folder, index)
            write_image(image_path, random_rgb(rng, *SIZE))
            label = rng.integers(0, 151, SIZE)
            if index == 5:
                label = label[:8, :9]
            if index == 7:
                label[2, 3], label[4, 5] = 200, 151  # ADE20K has 0..150
            write_image(label_path, label)
            labels[(folder, index)] = label
            if index == 3:
                data = open(image_path, "rb").read()
                if folder == "training":
                    data = data[: len(data) // 2]
                else:
                    data = data[:200] + bytes(len(data) - 210) + data[-10:]
                open(image_path, "wb").write(data)
            elif index == 4:
                data = open(label_path, "rb").read()
                open(label_path, "wb").write(data[: len(data) // 2])
            elif index == 6:
                os.remove(label_path)
    return base, labels


@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory):
    return build_bad_tree(str(tmp_path_factory.mktemp("ade")))


def expected_bad(base):
    return [
        BadExample(
            split,
            paths(base, folder, index)[0],
            paths(base, folder, index)[1],
            reason(folder, index),
        )
        for split, folder in FOLDERS.items()
        for index in range(3, 8)
    ]


def test_check_dataset_lists_each_bad_example_with_its_reason(bad_tree):
    base, _ = bad_tree
    assert check_dataset("ade20k", base, progress=False) == expected_bad(base)
    only = check_dataset(
        "ade20k", os.path.dirname(base), ["val"], progress=False
    )
    assert [b.split for b in only] == ["validation"] * 5
    # Nothing on disk to check.
    assert check_dataset("synthetic", None) == []
    assert check_dataset("tfds:cityscapes", None) == []
    with pytest.raises(ValueError, match="data_dir"):
        check_dataset("ade20k", None)
    with pytest.raises(ValueError, match="Unknown split"):
        check_dataset("ade20k", base, ["dev"])


def test_check_dataset_label_formats_and_unreadable_images(tmp_path):
    """The other reasons, on a Cityscapes tree (labelIds 0..33)."""
    rng = np.random.default_rng(1)
    problems = {
        "empty": ("image file is empty", None),
        "text": ("image is not a JPEG or PNG file", None),
        "rgb": ("label is not a single-channel 8-bit PNG (8-bit RGB)", "RGB"),
        "palette": (
            "label is not a single-channel 8-bit PNG (8-bit palette)",
            "P",
        ),
        "deep": (
            "label is not a single-channel 8-bit PNG (16-bit grayscale)",
            "I;16",
        ),
        "jpeg": ("label is a JPEG file, not a PNG", "JPEG"),
        "good": (None, None),
    }
    expected = []
    for city, (problem, label_kind) in problems.items():
        prefix = f"{city}_000000_000019"
        image = tmp_path / "leftImg8bit" / "val" / city
        label = tmp_path / "gtFine" / "val" / city
        image_path = str(image / f"{prefix}_leftImg8bit.png")
        label_path = str(label / f"{prefix}_gtFine_labelIds.png")
        write_image(image_path, random_rgb(rng, 12, 16))
        values = rng.integers(0, 34, (12, 16)).astype(np.uint8)
        write_image(label_path, values)
        if city == "empty":
            open(image_path, "wb").close()
        elif city == "text":
            open(image_path, "w").write("not an image, but long enough")
        elif label_kind == "JPEG":
            Image.fromarray(values).save(label_path, format="JPEG")
        elif label_kind == "I;16":
            Image.fromarray(values.astype(np.uint16)).save(label_path)
        elif label_kind == "RGB":
            write_image(label_path, np.stack([values] * 3, -1))
        elif label_kind == "P":
            Image.fromarray(values).convert("P").save(label_path)
        if problem:
            expected.append(
                BadExample("validation", image_path, label_path, problem)
            )
    bad = check_dataset("cityscapes", str(tmp_path), ["val"], progress=False)
    assert bad == sorted(expected, key=lambda b: b.image)
    empty, rgb = bad[1], bad[-2]
    assert empty.describe() == f"{empty.image}: image file is empty"
    assert rgb.describe() == f"{rgb.label}: {rgb.reason}"


def test_bad_example_lists_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = [
        BadExample(
            "train", "data/a.jpg", "data/a.png", "label file is missing"
        ),
        BadExample("test", "data/b.jpg", None, "image file is empty"),
    ]
    path = str(tmp_path / "lists" / "bad.json")
    write_bad_examples(path, bad, dataset="ade20k", data_dir="data")
    assert os.listdir(tmp_path / "lists") == ["bad.json"]  # no .partial
    with open(path) as f:
        content = json.load(f)
    assert content["dataset"] == "ade20k"
    # Absolute paths: the list works from any working directory.
    assert content["data_dir"] == str(tmp_path / "data")
    assert content["bad_examples"][0] == {
        "split": "train",
        "image": str(tmp_path / "data" / "a.jpg"),
        "label": str(tmp_path / "data" / "a.png"),
        "reason": "label file is missing",
    }
    assert read_bad_examples(path) == [
        BadExample("train", str(tmp_path / "data" / "a.jpg"),
                   str(tmp_path / "data" / "a.png"), "label file is missing"),
        BadExample("test", str(tmp_path / "data" / "b.jpg"), None,
                   "image file is empty"),
    ]  # fmt: skip
    for content in ("{not json", "[]", '{"bad_examples": [{"split": 1}]}'):
        (tmp_path / "broken.json").write_text(content)
        with pytest.raises(ValueError, match="broken.json") as error:
            read_bad_examples(str(tmp_path / "broken.json"))
        assert "\n" not in str(error.value)


def test_build_dataset_excludes_bad_examples(bad_tree, monkeypatch):
    base, labels = bad_tree
    bad = check_dataset("ade20k", base, progress=False)
    # A list made with an absolute data_dir excludes from a relative one.
    monkeypatch.chdir(os.path.dirname(base))
    exclude = [b.image for b in bad]
    data = build_dataset(
        "ade20k",
        "val",
        data_dir="ADEChallengeData2016",
        training=False,
        batch_size=1,
        exclude=exclude,
    )
    batches = list(data)
    assert len(batches) == len(GOOD)
    for index, (_, label) in zip(GOOD, batches):
        expected = labels[("validation", index)].astype(np.int64) - 1
        expected[expected < 0] = 255
        np.testing.assert_array_equal(label[0].numpy(), expected)
    train = build_dataset(
        "ade20k",
        "train",
        data_dir=base,
        training=True,
        crop_size=16,
        batch_size=1,
        seed=0,
        exclude=exclude,
    )
    assert len(list(train)) == len(GOOD)
    # Without the list: the missing label stops listing; skipping still
    # drops every bad example.
    with pytest.raises(FileNotFoundError, match="ADE_valid_00000006.png"):
        build_dataset(
            "ade20k", "val", data_dir=base, training=False, batch_size=1
        )
    skipped = build_dataset(
        "ade20k",
        "val",
        data_dir=base,
        training=False,
        batch_size=1,
        skip_bad_examples=True,
    )
    assert len(list(skipped)) == len(GOOD)
    with pytest.raises(ValueError, match="all 8 images are excluded"):
        build_dataset(
            "ade20k",
            "val",
            data_dir=base,
            training=False,
            batch_size=1,
            exclude=[paths(base, "validation", i)[0] for i in range(8)],
        )


# === Scripts ===


def start_script(name, *flags, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", name), *flags],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process):
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory of a tiny ADE20K model: model.keras, config.json."""
    keras.utils.set_random_seed(0)
    directory = tmp_path_factory.mktemp("run")
    model = GFFNet(
        150,
        backbone="resnet18",
        output_stride=32,
        fused_channels=16,
        context_channels=32,
    )
    model.save(directory / "model.keras")
    (directory / "config.json").write_text(
        json.dumps({"data": {"dataset": "ade20k"}})
    )
    return directory


@pytest.mark.slow
def test_prepare_data_check_lists_writes_and_fails(bad_tree, tmp_path):
    base, _ = bad_tree
    process = start_script(
        "prepare_data.py",
        "--check",
        "--dataset=ade20k",
        f"--data_dir={base}",
        cwd=str(tmp_path),
    )
    code, stdout, stderr = finish(process)
    assert code == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    for example in expected_bad(base):
        assert f"  {example.split}: {example.describe()}" in stdout
    assert "train: 5 bad of 8 examples" in stdout
    assert "validation: 5 bad of 8 examples" in stdout
    # The default list goes to the working directory.
    written = read_bad_examples(str(tmp_path / "bad_examples_ade20k.json"))
    assert written == expected_bad(base)


@pytest.mark.slow
def test_evaluate_script_leaves_out_bad_examples(bad_tree, run_dir, tmp_path):
    base, _ = bad_tree
    good_image = paths(base, "validation", GOOD[0])[0]
    # The run directory's list names a good image: it is left out too.
    write_bad_examples(
        str(run_dir / "bad_examples.json"),
        [BadExample("validation", good_image, None, "flagged by hand")],
        dataset="ade20k",
        data_dir=base,
    )
    # A reused list that misses one bad example: the pipeline skips it.
    partial = expected_bad(base)[5:9]
    write_bad_examples(
        str(tmp_path / "partial.json"),
        partial,
        dataset="ade20k",
        data_dir=base,
    )
    common = (f"--model_dir={run_dir}", f"--data_dir={base}", "--nofreeze")
    checked = start_script(
        "evaluate.py", *common, f"--json_out={tmp_path / 'checked.json'}"
    )
    reused = start_script(
        "evaluate.py",
        *common,
        f"--bad_examples={tmp_path / 'partial.json'}",
        f"--json_out={tmp_path / 'reused.json'}",
    )
    bad = expected_bad(base)[5:]
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    expected = evaluate_dataset(
        model,
        "ade20k",
        data_dir=base,
        verbose=0,
        exclude=[b.image for b in bad] + [good_image],
    )
    checked, reused = finish(checked), finish(reused)
    os.remove(run_dir / "bad_examples.json")
    for (code, stdout, stderr), name, left_out in (
        (checked, "checked", len(bad) + 1),
        (reused, "reused", len(bad)),
    ):
        assert code == 1, stderr[-3000:]
        assert "Traceback" not in stderr
        with open(tmp_path / f"{name}.json") as f:
            result = json.load(f)
        assert result["num_images"] == 8 - left_out
        assert f"{left_out} bad examples left out" in stderr
    with open(tmp_path / "checked.json") as f:
        result = json.load(f)
    assert result["mean_iou"] == pytest.approx(expected["mean_iou"])
    assert len(result["bad_examples"]) == len(bad) + 1
    for example in bad:
        assert f"skipping {example.describe()}" in checked[2]
    assert f"skipping {good_image}: flagged by hand" in checked[2]
    # The example missing from the reused list is named by the pipeline.
    assert "ADE_valid_00000007" in reused[2]


@pytest.mark.slow
def test_predict_script_skips_unreadable_images(run_dir, tmp_path):
    rng = np.random.default_rng(2)
    inputs = tmp_path / "inputs"
    write_image(str(inputs / "a.png"), random_rgb(rng, *SIZE))
    write_image(str(inputs / "b.jpg"), random_rgb(rng, *SIZE))
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    code, stdout, stderr = finish(
        start_script(
            "predict.py",
            f"--model_dir={run_dir}",
            f"--input={inputs}",
            f"--output_dir={tmp_path / 'out'}",
        )
    )
    assert code == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    assert sorted(os.listdir(tmp_path / "out")) == [
        "a_mask.png",
        "a_overlay.png",
        "b_mask.png",
        "b_overlay.png",
    ]
    assert f"skipped {inputs / 'broken.jpg'}: " in stderr
    assert "skipped 1 of 3 images" in stderr.splitlines()[-1]


@pytest.mark.slow
def test_user_errors_are_one_line_naming_the_flag(bad_tree, run_dir, tmp_path):
    base, _ = bad_tree
    missing = tmp_path / "nope"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text('{"data": {"dataset": "ade20k"}}')
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_text("not a zip")
    model = f"--model_dir={run_dir}"
    out = f"--output_dir={tmp_path / 'out'}"
    inputs = f"--input={base}/images/validation/ADE_valid_00000000.jpg"
    cases = {
        ("evaluate.py", model): "--data_dir is required for ade20k",
        ("evaluate.py", f"--model_dir={missing}"): f"--model_dir={missing} "
        "does not exist",
        ("evaluate.py", f"--model_dir={corrupt}"): f"--model_dir={corrupt}: "
        f"{corrupt} is not a Keras model",
        ("evaluate.py", model, "--dataset=kitti"): "--dataset=kitti: Unknown",
        ("predict.py", f"--model_dir={missing}", inputs, out): "--model_dir="
        f"{missing} does not exist",
        ("predict.py", f"--model_dir={empty}", inputs, out): "--model_dir="
        f"{empty}: No model",
        ("predict.py", model, inputs, out, "--dataset=kitti"): "--dataset="
        "kitti: Unknown",
        ("prepare_data.py", "--check", "--dataset=ade20k"): "--data_dir is "
        "required",
    }
    # One process per script: each case fails before any model is built.
    results = {}
    for script in dict.fromkeys(command[0] for command in cases):
        commands = [c for c in cases if c[0] == script]
        outcomes = run_commands(script, *[c[1:] for c in commands])
        results.update(zip(commands, outcomes))
    for command, culprit in cases.items():
        code, stdout, stderr = results[command]
        assert code == 2, (command, stderr[-3000:])
        assert "Traceback" not in stdout + stderr, command
        last = stderr.strip().splitlines()[-1]
        assert last.startswith(f"{command[0]}: error: {culprit}"), (
            command,
            last,
        )
