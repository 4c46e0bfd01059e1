"""Segmentation heads: from the context and backbone levels to logits.

Every head takes `[context, level_1, ..., level_L]` and returns
`{"logits": ...}` (and `"gates"` when its fusion has gates); its
`feature_levels(feature_names)` says which backbone features it reads.
`FCNHead` is the auxiliary head on one feature map.
"""

from gff_keras.heads.authors_gff_head import AuthorsGFFHead
from gff_keras.heads.context_head import ContextHead
from gff_keras.heads.deep_lab_v3_plus_head import DeepLabV3PlusHead
from gff_keras.heads.fcn_head import FCNHead
from gff_keras.heads.fusion_head import FusionHead

__all__ = [
    "AuthorsGFFHead",
    "ContextHead",
    "DeepLabV3PlusHead",
    "FCNHead",
    "FusionHead",
]
