"""Measures how fast the input pipeline delivers training batches."""

import os
import statistics
import time

import numpy as np
from PIL import Image

from gff_keras.data.synthetic_scenes import SyntheticScenes


def write_ade20k_like_files(root: str, count: int = 32, size=(512, 683)):
    """Writes `count` ADE20K-sized JPEG/PNG pairs in the ADE20K layout.

    The scenes come from `SyntheticScenes`, so JPEG sizes and decode costs
    resemble photographs more than random noise would.

    Returns:
        The `ADEChallengeData2016` directory.
    """
    base = os.path.join(root, "ADEChallengeData2016")
    scenes = SyntheticScenes(image_size=size, seed=0)
    for folder in ("training", "validation"):
        os.makedirs(os.path.join(base, "images", folder), exist_ok=True)
        os.makedirs(os.path.join(base, "annotations", folder), exist_ok=True)
    for index in range(count):
        image, label = scenes.generate("train", index)
        stem = f"ADE_train_{index:08d}"
        Image.fromarray(image).save(
            os.path.join(base, "images", "training", stem + ".jpg"), quality=90
        )
        Image.fromarray((label * 10 + 1).astype(np.uint8)).save(
            os.path.join(base, "annotations", "training", stem + ".png")
        )
    return base


def measure_throughput(dataset, batches: int = 20, warmup: int = 3, runs=3):
    """Images per second delivered by `dataset` (median of `runs`).

    Each run iterates `warmup` untimed batches, then `batches` timed ones.
    The dataset should repeat.
    """
    rates = []
    for _ in range(runs):
        iterator = iter(dataset)
        for _ in range(warmup):
            next(iterator)
        images = 0
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(iterator)
            images += int(batch[0].shape[0])
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)
