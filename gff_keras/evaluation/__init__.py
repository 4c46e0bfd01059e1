"""Evaluation: segmentation metrics and inference modes."""

from gff_keras.evaluation.predict_logits import predict_logits
from gff_keras.evaluation.segmentation_metrics import SegmentationMetrics

__all__ = ["SegmentationMetrics", "predict_logits"]
