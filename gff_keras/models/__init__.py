"""Segmentation models: the segmenter task, the GFFNet front door, presets,
and loading models back from a training run."""

from gff_keras.models.gffnet import GFFNet
from gff_keras.models.presets import PRESETS
from gff_keras.models.run_directory import load_model
from gff_keras.models.run_directory import read_run_config
from gff_keras.models.segmenter import Segmenter

__all__ = ["GFFNet", "PRESETS", "Segmenter", "load_model", "read_run_config"]
