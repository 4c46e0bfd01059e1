"""Datasets and tf.data input pipelines."""

from gff_keras.data.datasets import build_dataset
from gff_keras.data.pipeline import denormalize_images
from gff_keras.data.pipeline import normalize_images
from gff_keras.data.registry import DatasetInfo
from gff_keras.data.registry import dataset_info
from gff_keras.data.synthetic_scenes import SyntheticScenes

__all__ = [
    "DatasetInfo",
    "SyntheticScenes",
    "build_dataset",
    "dataset_info",
    "denormalize_images",
    "normalize_images",
]
