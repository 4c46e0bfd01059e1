"""scripts/prepare_data.py: COCO-Stuff 10k .mat -> PNG, idempotent."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gff_keras.data.prepare import convert_coco_stuff10k

scipy_io = pytest.importorskip("scipy.io")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_convert_coco_stuff10k_is_idempotent(tmp_path):
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    labels = np.array([[0, 1, 92], [182, 5, 0]], np.uint16)
    scipy_io.savemat(
        annotations / "COCO_train2014_000000000077.mat", {"S": labels}
    )
    assert convert_coco_stuff10k(str(tmp_path)) == 1
    png = np.asarray(
        Image.open(annotations / "COCO_train2014_000000000077.png")
    )
    np.testing.assert_array_equal(png, [[255, 0, 91], [181, 4, 255]])
    assert convert_coco_stuff10k(str(tmp_path)) == 0  # nothing left to do
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "prepare_data.py"),
            "--dataset=coco_stuff10k",
            f"--data_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote 0 files" in result.stdout


def test_bad_mat_names_the_file(tmp_path):
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    scipy_io.savemat(annotations / "bad.mat", {"S": np.array([[300]])})
    with pytest.raises(ValueError, match="bad.mat"):
        convert_coco_stuff10k(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="annotations"):
        convert_coco_stuff10k(str(tmp_path / "missing"))
