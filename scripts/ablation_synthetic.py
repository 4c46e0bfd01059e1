"""Runs the synthetic fusion ablation (paper Tables 1, 2, 4 in miniature).

Usage:
    python scripts/ablation_synthetic.py
    python scripts/ablation_synthetic.py --variants=pspnet,gff_dfp \
        --seeds=0 --budget=reduced --output_dir=/tmp/ablation

Trains every variant for every seed into `--output_dir/<variant>_seed<N>`
(finished runs are re-evaluated, not retrained), then writes the results
JSON, the chart and the gate figures of the GFF+DFP seed-0 model. The
defaults reproduce `experiments/results/`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from experiments import RESULTS_DIR  # noqa: E402
from experiments import ablation_synthetic  # noqa: E402
from gff_keras.training.experiment_config import PRECISIONS  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", "runs/ablation_synthetic", "Folder for the run directories."
)
_RESULTS_DIR = flags.DEFINE_string(
    "results_dir",
    RESULTS_DIR,
    "Folder for ablation_synthetic.json, .png and the gate figures.",
)
_VARIANTS = flags.DEFINE_list(
    "variants",
    list(ablation_synthetic.VARIANTS),
    f"Variants to run, from: {', '.join(ablation_synthetic.VARIANTS)}.",
)
_SEEDS = flags.DEFINE_list(
    "seeds",
    [str(s) for s in ablation_synthetic.DEFAULT_SEEDS],
    "Training seeds.",
)
_BUDGET = flags.DEFINE_enum(
    "budget",
    "full",
    list(ablation_synthetic.BUDGETS),
    "'full' reproduces experiments/results/ablation_synthetic.*; 'long' "
    "(400 steps) writes ablation_synthetic_long.*; 'reduced' is a smoke run.",
)

_MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision",
    "float32",
    list(PRECISIONS),
    "Training dtype policy. Other than float32, run directories and results "
    "files get the policy as a suffix (ablation_synthetic_long_"
    "mixed_bfloat16.json).",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = [
        v for v in _VARIANTS.value if v not in ablation_synthetic.VARIANTS
    ]
    if unknown:
        raise app.UsageError(
            f"--variants: unknown {unknown}; choose from "
            f"{', '.join(ablation_synthetic.VARIANTS)}."
        )
    try:
        seeds = [int(s) for s in _SEEDS.value]
    except ValueError:
        raise app.UsageError(f"--seeds must be integers: {_SEEDS.value}.")
    results_dir = _RESULTS_DIR.value
    # The committed table is the "full" budget; other budgets get a suffix.
    stem = "ablation_synthetic"
    if _BUDGET.value != "full":
        stem += f"_{_BUDGET.value}"
    if _MIXED_PRECISION.value != "float32":
        stem += f"_{_MIXED_PRECISION.value}"
    results = ablation_synthetic.run_ablation(
        _OUTPUT_DIR.value,
        variants=tuple(_VARIANTS.value),
        seeds=tuple(seeds),
        budget=_BUDGET.value,
        mixed_precision=_MIXED_PRECISION.value,
        results_file=os.path.join(results_dir, f"{stem}.json"),
        plot_file=os.path.join(results_dir, f"{stem}.png"),
        gate_figure_dir=os.path.join(results_dir, f"{stem}_gates"),
    )
    print(f"Wrote {results_dir} ({results['total_seconds']:.0f} s).")
    for name, variant in results["variants"].items():
        print(
            f"{name:>9}: mIoU {variant['mean_iou']['mean']:.3f} +- "
            f"{variant['mean_iou']['std']:.3f}, thin/small "
            f"{variant['thin_small_iou']['mean']:.3f} +- "
            f"{variant['thin_small_iou']['std']:.3f}"
        )
    print(ablation_synthetic.markdown_table(results))


if __name__ == "__main__":
    app.run(main)
