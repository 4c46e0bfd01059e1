"""Cost and speed measurements: FLOP counting, model timings."""

from gff_keras.benchmarks.convolution_limit import LIMIT_KINDS
from gff_keras.benchmarks.convolution_limit import measure_convolution_limit
from gff_keras.benchmarks.flops import count_flops
from gff_keras.benchmarks.inference_cost import measure_inference_cost
from gff_keras.benchmarks.machine import machine_description
from gff_keras.benchmarks.timing import measure_frozen_forward
from gff_keras.benchmarks.timing import measure_model

__all__ = [
    "LIMIT_KINDS",
    "count_flops",
    "machine_description",
    "measure_inference_cost",
    "measure_convolution_limit",
    "measure_frozen_forward",
    "measure_model",
]
