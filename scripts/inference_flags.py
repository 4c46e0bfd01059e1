"""Inference-mode flags shared by scripts/evaluate.py and scripts/export.py.

Importing this module defines --mode, --crop_size, --stride, --scales and
--flip; `inference_options()` turns them into the keyword arguments of
`gff_keras.evaluation.predict_logits` (and of `evaluate_dataset` and
`export_saved_model`, which pass them on).
"""

from absl import flags

from gff_keras.evaluation.inference import MODES
from gff_keras.evaluation.inference import PAPER_SCALES

MODE = flags.DEFINE_enum("mode", "whole", MODES, "Inference mode.")
CROP = flags.DEFINE_list(
    "crop_size", None, "Sliding window size: N or H,W (slide, ms_flip)."
)
STRIDE = flags.DEFINE_list(
    "stride", None, "Window stride: N or H,W; defaults to 2/3 of the crop."
)
SCALES = flags.DEFINE_list(
    "scales", [str(s) for s in PAPER_SCALES], "Scales for ms_flip."
)
FLIP = flags.DEFINE_bool("flip", True, "Add flipped predictions (ms_flip).")


def _size(values):
    if values is None:
        return None
    sizes = tuple(int(v) for v in values)
    return sizes[0] if len(sizes) == 1 else sizes


def inference_options() -> dict:
    """The flags as `mode`, `crop_size`, `stride`, `scales`, `flip`."""
    return {
        "mode": MODE.value,
        "crop_size": _size(CROP.value),
        "stride": _size(STRIDE.value),
        "scales": tuple(float(s) for s in SCALES.value),
        "flip": FLIP.value,
    }
