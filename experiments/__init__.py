"""Named experiments: one config per paper experiment, plus CPU demos.

`get_experiment(name)` returns a fresh `ExperimentConfig`;
`experiment_for_dataset(dataset)` picks the paper's config for a dataset
(what `scripts/train.py --dataset=NAME` runs). Each paper config carries the
number it should reproduce in `paper_miou` and where it comes from in
`paper_reference`.
"""

import os

from experiments.registry import DATASET_EXPERIMENTS
from experiments.registry import experiment_for_dataset
from experiments.registry import experiment_names
from experiments.registry import get_experiment

# The committed results of the studies (ablation, peers).
RESULTS_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results"
)

__all__ = [
    "DATASET_EXPERIMENTS",
    "RESULTS_DIR",
    "experiment_for_dataset",
    "experiment_names",
    "get_experiment",
]
