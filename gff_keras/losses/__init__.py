"""Losses: per-pixel cross-entropy with the ignore label and OHEM."""

from gff_keras.losses.segmentation_loss import SegmentationLoss

__all__ = ["SegmentationLoss"]
