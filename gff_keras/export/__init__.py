"""SavedModel export with TensorFlow Serving signatures.

`freeze_function` lives in `gff_keras.evaluation` (evaluation freezes graphs
too, and sits below export); it is re-exported here for exporters.
"""

from gff_keras.evaluation.frozen_graph import freeze_function
from gff_keras.export.saved_model_export import export_saved_model

__all__ = ["export_saved_model", "freeze_function"]
