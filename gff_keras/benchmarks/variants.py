# The three models of the paper's Table 3, as `GFFNet` keywords on any
# backbone: what `scripts/benchmark.py` and
# `scripts/benchmark_inference_cost.py` call `psp`, `gff` and `gff_dfp`.
VARIANTS = {
    "psp": {"fusion": "none", "dfp": False},
    "gff": {"fusion": "gff", "dfp": False},
    "gff_dfp": {"fusion": "gff", "dfp": True},
}
