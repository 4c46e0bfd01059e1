"""SavedModel export with TensorFlow Serving signatures."""

from gff_keras.export.export_saved_model import export_saved_model
from gff_keras.export.freeze_function import freeze_function

__all__ = ["export_saved_model", "freeze_function"]
