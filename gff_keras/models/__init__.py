"""Segmentation models and loading them back from a training run."""

from gff_keras.models.gffnet import GFFNet
from gff_keras.models.presets import PRESETS
from gff_keras.models.run_directory import load_model
from gff_keras.models.run_directory import read_run_config

__all__ = ["GFFNet", "PRESETS", "load_model", "read_run_config"]
