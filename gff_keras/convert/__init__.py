"""Reading PyTorch checkpoints and converting the authors' weights."""

from gff_keras.convert.authors_checkpoint import CheckpointMismatchError
from gff_keras.convert.authors_checkpoint import authors_gffnet
from gff_keras.convert.authors_checkpoint import authors_variable_map
from gff_keras.convert.torch_checkpoint import CheckpointError
from gff_keras.convert.torch_checkpoint import UnsafeCheckpointError
from gff_keras.convert.torch_checkpoint import load_torch_checkpoint
from gff_keras.convert.torch_checkpoint import read_torch_checkpoint

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "UnsafeCheckpointError",
    "authors_gffnet",
    "authors_variable_map",
    "load_torch_checkpoint",
    "read_torch_checkpoint",
]
