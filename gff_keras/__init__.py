"""gff_keras: Gated Fully Fusion for semantic segmentation in Keras 3."""

from gff_keras import backbones
from gff_keras import benchmarks
from gff_keras import convert
from gff_keras import data
from gff_keras import evaluation
from gff_keras import export
from gff_keras import heads
from gff_keras import layers
from gff_keras import losses
from gff_keras import models
from gff_keras import training
from gff_keras import visualization
from gff_keras.models.gffnet import GFFNet
from gff_keras.models.segmenter import Segmenter

__version__ = "0.2.0"

__all__ = [
    "GFFNet",
    "Segmenter",
    "backbones",
    "benchmarks",
    "convert",
    "data",
    "evaluation",
    "export",
    "heads",
    "layers",
    "losses",
    "models",
    "training",
    "visualization",
]
