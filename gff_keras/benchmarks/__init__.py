"""Cost and speed measurements: FLOP counting, model timings."""

from gff_keras.benchmarks.count_flops import count_flops
from gff_keras.benchmarks.measure_model import measure_model

__all__ = ["count_flops", "measure_model"]
