"""Colour-coded masks, overlays, gate maps, panels and prediction to files."""

from gff_keras.visualization.files import find_images
from gff_keras.visualization.files import predict_files
from gff_keras.visualization.files import read_image
from gff_keras.visualization.gate_figures import gate_ablation
from gff_keras.visualization.gate_figures import gate_figure
from gff_keras.visualization.gate_figures import gate_grid
from gff_keras.visualization.gate_figures import gate_heatmap
from gff_keras.visualization.gate_figures import write_gate_figures
from gff_keras.visualization.masks import cityscapes_label_ids
from gff_keras.visualization.masks import colorize
from gff_keras.visualization.masks import overlay
from gff_keras.visualization.panels import class_legend
from gff_keras.visualization.panels import panel_grid
from gff_keras.visualization.panels import prediction_panel
from gff_keras.visualization.panels import write_prediction_panels
from gff_keras.visualization.predictor import Predictor

__all__ = [
    "Predictor",
    "cityscapes_label_ids",
    "class_legend",
    "colorize",
    "find_images",
    "gate_ablation",
    "gate_figure",
    "gate_grid",
    "gate_heatmap",
    "overlay",
    "panel_grid",
    "prediction_panel",
    "predict_files",
    "read_image",
    "write_gate_figures",
    "write_prediction_panels",
]
