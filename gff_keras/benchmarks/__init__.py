"""Cost and speed measurements: FLOP counting, model timings."""

from gff_keras.benchmarks.count_flops import count_flops
from gff_keras.benchmarks.machine_description import machine_description
from gff_keras.benchmarks.measure_model import measure_frozen_forward
from gff_keras.benchmarks.measure_model import measure_model

__all__ = [
    "count_flops",
    "machine_description",
    "measure_frozen_forward",
    "measure_model",
]
