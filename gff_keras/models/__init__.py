"""Segmentation models."""

from gff_keras.models.gffnet import GFFNet

__all__ = ["GFFNet"]
