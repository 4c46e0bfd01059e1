"""SavedModel export with TensorFlow Serving signatures."""

from gff_keras.export.export_saved_model import export_saved_model

__all__ = ["export_saved_model"]
