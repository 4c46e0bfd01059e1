"""Training pieces: losses (schedules, strategies and callbacks follow)."""

from gff_keras.training.segmentation_loss import SegmentationLoss

__all__ = ["SegmentationLoss"]
