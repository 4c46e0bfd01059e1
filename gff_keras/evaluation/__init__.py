"""Evaluation: segmentation metrics, inference modes, dataset scoring."""

from gff_keras.evaluation.evaluate_dataset import evaluate_dataset
from gff_keras.evaluation.predict_logits import predict_logits
from gff_keras.evaluation.segmentation_metrics import SegmentationMetrics

__all__ = ["SegmentationMetrics", "evaluate_dataset", "predict_logits"]
