"""Colour-coded masks, overlays, gate maps and prediction to files."""

from gff_keras.visualization.cityscapes_label_ids import cityscapes_label_ids
from gff_keras.visualization.colorize import colorize
from gff_keras.visualization.find_images import find_images
from gff_keras.visualization.gate_ablation import gate_ablation
from gff_keras.visualization.gate_figure import gate_figure
from gff_keras.visualization.gate_grid import gate_grid
from gff_keras.visualization.gate_heatmap import gate_heatmap
from gff_keras.visualization.overlay import overlay
from gff_keras.visualization.panel_grid import panel_grid
from gff_keras.visualization.predict_files import predict_files
from gff_keras.visualization.read_image import read_image
from gff_keras.visualization.segmenter import Segmenter
from gff_keras.visualization.write_gate_figures import write_gate_figures
from gff_keras.visualization.write_prediction_panels import (
    write_prediction_panels,
)

__all__ = [
    "Segmenter",
    "cityscapes_label_ids",
    "colorize",
    "find_images",
    "gate_ablation",
    "gate_figure",
    "gate_grid",
    "gate_heatmap",
    "overlay",
    "panel_grid",
    "predict_files",
    "read_image",
    "write_gate_figures",
    "write_prediction_panels",
]
