"""One-off conversions of datasets whose official files the pipeline cannot
read directly. Each is idempotent and resumable: finished outputs are kept,
and outputs are written to a temporary name and renamed when complete."""

import glob
import os

import numpy as np
from PIL import Image


def _write_png_atomically(array: np.ndarray, path: str) -> None:
    partial = path + ".partial"
    Image.fromarray(array).save(partial, format="PNG")
    os.replace(partial, path)


def convert_coco_stuff10k(data_dir: str) -> int:
    """Converts COCO-Stuff 10k `annotations/*.mat` to label PNGs.

    The `.mat` files hold `S`, with 0 for unlabelled pixels and COCO category
    ids 1..182; the PNGs use the stuffthingmaps convention of COCO-Stuff 164k
    (`category_id - 1`, 255 unlabelled), so both variants share one label
    table.

    Args:
        data_dir: the `cocostuff-10k-v1.1` folder (holding `annotations/`).

    Returns:
        The number of PNGs written (0 when everything was converted before).

    Raises:
        FileNotFoundError: if there is no `annotations/*.mat`.
        ValueError: if a `.mat` file has no `S` array or values above 182
            (the message names the file).
    """
    from scipy import io as scipy_io

    mats = sorted(glob.glob(os.path.join(data_dir, "annotations", "*.mat")))
    if not mats:
        raise FileNotFoundError(
            f"No annotations/*.mat under {data_dir}; expected the unzipped "
            "cocostuff-10k-v1.1.zip."
        )
    written = 0
    for mat in mats:
        target = os.path.splitext(mat)[0] + ".png"
        if os.path.exists(target):
            continue
        content = scipy_io.loadmat(mat)
        if "S" not in content:
            raise ValueError(f"{mat} has no 'S' label array.")
        labels = np.asarray(content["S"], np.int64)
        if labels.min() < 0 or labels.max() > 182:
            raise ValueError(
                f"{mat} holds label values outside 0..182 "
                f"(min {labels.min()}, max {labels.max()})."
            )
        png = np.where(labels == 0, 255, labels - 1).astype(np.uint8)
        _write_png_atomically(png, target)
        written += 1
    return written


CONVERTERS = {"coco_stuff10k": convert_coco_stuff10k}
