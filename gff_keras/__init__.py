"""gff_keras: Gated Fully Fusion for semantic segmentation in Keras 3."""

from gff_keras import backbones
from gff_keras import layers
from gff_keras import models
from gff_keras import training
from gff_keras.models.gffnet import GFFNet

__version__ = "0.1.0"

__all__ = ["GFFNet", "backbones", "layers", "models", "training"]
