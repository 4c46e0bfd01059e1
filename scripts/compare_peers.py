"""Trains GFFNet and the Keras segmenters a user would pick instead.

Usage:
    python scripts/compare_peers.py                  # 3 seeds x 400 steps
    python scripts/compare_peers.py --budget=tiny --seeds=0 \
        --output_dir=/tmp/peers --results_dir=/tmp/peers_results

Every model (GFFNet with GFF and GFF+DFP, keras-hub DeepLabV3+ and
SegFormer-B0, keras-cv DeepLabV3Plus) is trained from scratch on the same
synthetic crops with the 400-step ablation's recipe, scored on the same
validation scenes and timed at 512x512. The GFFNet runs of the committed
400-step ablation are the same runs and are read, not repeated
(`--ablation_results`). Writes `peers.json` (or
`peers_tiny.json`) to `--results_dir` and prints the table. Finished runs
in `--output_dir` are read back, not retrained. The peers need
`pip install 'gff_keras[peers]'`; a peer that is missing or fails is
named with its reason in the results.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from experiments import RESULTS_DIR  # noqa: E402
from experiments import peers  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", "runs/peers", "Folder for the run directories."
)
_RESULTS_DIR = flags.DEFINE_string(
    "results_dir", RESULTS_DIR, "Folder for the results JSON."
)
_PEERS = flags.DEFINE_list(
    "peers", list(peers.PEERS), f"Models, from: {', '.join(peers.PEERS)}."
)
_SEEDS = flags.DEFINE_list(
    "seeds", [str(s) for s in peers.DEFAULT_SEEDS], "Training seeds."
)
_ABLATION_RESULTS = flags.DEFINE_string(
    "ablation_results",
    peers.ABLATION_RESULTS,
    "Ablation results whose GFFNet runs (same recipe, budget and seeds) are "
    "read instead of trained; empty trains every model.",
)
_SPEED_ONLY = flags.DEFINE_list(
    "speed_only",
    [],
    "Peers to time without training (where this machine cannot afford "
    "their training at the budget).",
)
_BUDGET = flags.DEFINE_enum(
    "budget",
    "full",
    list(peers.BUDGETS),
    "'full' reproduces experiments/results/peers.json; 'tiny' trains each "
    "model for a few steps (a smoke run).",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = [
        name
        for name in _PEERS.value + _SPEED_ONLY.value
        if name not in peers.PEERS
    ]
    if unknown:
        choices = ", ".join(peers.PEERS)
        raise app.UsageError(f"--peers: unknown {unknown}; from {choices}.")
    try:
        seeds = [int(s) for s in _SEEDS.value]
    except ValueError:
        raise app.UsageError(f"--seeds must be integers: {_SEEDS.value}.")
    stem = peers.RESULTS_NAME
    if _BUDGET.value != "full":
        stem += f"_{_BUDGET.value}"
    results_file = os.path.join(_RESULTS_DIR.value, f"{stem}.json")
    results = peers.run_comparison(
        _OUTPUT_DIR.value,
        peers=tuple(_PEERS.value),
        seeds=tuple(seeds),
        budget=_BUDGET.value,
        results_file=results_file,
        ablation_results=_ABLATION_RESULTS.value or None,
        speed_only=tuple(_SPEED_ONLY.value),
    )
    print(f"Wrote {results_file} ({results['total_seconds']:.0f} s).")
    print(peers.markdown_table(results))


if __name__ == "__main__":
    app.run(main)
