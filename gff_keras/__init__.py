"""gff_keras: Gated Fully Fusion for semantic segmentation in Keras 3."""

from gff_keras import backbones
from gff_keras import data
from gff_keras import evaluation
from gff_keras import export
from gff_keras import layers
from gff_keras import models
from gff_keras import training
from gff_keras import visualization
from gff_keras.models.gffnet import GFFNet

__version__ = "0.1.0"

__all__ = [
    "GFFNet",
    "backbones",
    "data",
    "evaluation",
    "export",
    "layers",
    "models",
    "training",
    "visualization",
]
