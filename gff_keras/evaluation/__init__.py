"""Evaluation: segmentation metrics (inference modes follow)."""

from gff_keras.evaluation.segmentation_metrics import SegmentationMetrics

__all__ = ["SegmentationMetrics"]
