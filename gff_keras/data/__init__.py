"""Datasets and tf.data input pipelines."""

from gff_keras.data.bad_example import BadExample
from gff_keras.data.dataset_check import check_dataset
from gff_keras.data.dataset_check import read_bad_examples
from gff_keras.data.dataset_check import write_bad_examples
from gff_keras.data.datasets import build_dataset
from gff_keras.data.pipeline import denormalize_images
from gff_keras.data.pipeline import normalize_images
from gff_keras.data.registry import DatasetInfo
from gff_keras.data.registry import dataset_info
from gff_keras.data.synthetic_scenes import SyntheticScenes

__all__ = [
    "BadExample",
    "DatasetInfo",
    "SyntheticScenes",
    "build_dataset",
    "check_dataset",
    "dataset_info",
    "denormalize_images",
    "normalize_images",
    "read_bad_examples",
    "write_bad_examples",
]
