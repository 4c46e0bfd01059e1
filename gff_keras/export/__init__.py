"""Export: SavedModels for TensorFlow Serving, LiteRT files for devices.

`freeze_function` lives in `gff_keras.evaluation` (evaluation freezes graphs
too, and sits below export); it is re-exported here for exporters.
"""

from gff_keras.evaluation.frozen_graph import freeze_function
from gff_keras.export.litert_export import export_litert
from gff_keras.export.saved_model_export import export_saved_model

__all__ = ["export_litert", "export_saved_model", "freeze_function"]
