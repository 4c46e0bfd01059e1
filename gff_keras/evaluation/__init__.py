"""Evaluation: metrics, inference modes, frozen graphs, dataset scoring."""

from gff_keras.evaluation.dataset_evaluation import evaluate_dataset
from gff_keras.evaluation.frozen_graph import freeze_function
from gff_keras.evaluation.inference import predict_logits
from gff_keras.evaluation.segmentation_metrics import SegmentationMetrics

__all__ = [
    "SegmentationMetrics",
    "evaluate_dataset",
    "freeze_function",
    "predict_logits",
]
