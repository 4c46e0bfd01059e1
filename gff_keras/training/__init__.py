"""Training: configs, optimizer, schedule, strategy, callbacks, runs.

A notebook reproduces `scripts/train.py` with these pieces:

    config = experiments.get_experiment("synthetic_quickstart")
    model = gff_keras.GFFNet(num_classes=8, backbone="resnet18")
    model.compile(optimizer=build_optimizer(config.optimizer,
                                            config.schedule))
    model.fit(train_dataset, steps_per_epoch=..., callbacks=[...])

or runs everything (checkpoints, resume, evaluation, export) with
`run_experiment(config, model_dir)`.
"""

# Re-exported: the loss lives below the models, which compile with it.
from gff_keras.losses.segmentation_loss import SegmentationLoss
from gff_keras.training.experiment_config import DataConfig
from gff_keras.training.experiment_config import ExperimentConfig
from gff_keras.training.experiment_config import LossConfig
from gff_keras.training.experiment_config import ModelConfig
from gff_keras.training.experiment_config import OptimizerConfig
from gff_keras.training.experiment_config import RuntimeConfig
from gff_keras.training.experiment_config import ScheduleConfig
from gff_keras.training.experiment_config import apply_overrides
from gff_keras.training.experiment_runner import run_experiment
from gff_keras.training.optimization import build_optimizer
from gff_keras.training.periodic_evaluation import PeriodicEvaluation
from gff_keras.training.poly_learning_rate import PolyLearningRate
from gff_keras.training.sgd_with_weight_decay import SGDWithWeightDecay
from gff_keras.training.strategies import create_strategy
from gff_keras.training.training_backup import TrainingBackup
from gff_keras.training.training_backup import backed_up_epoch
from gff_keras.training.training_backup import latest_backup
from gff_keras.training.training_monitor import TrainingMonitor

__all__ = [
    "DataConfig",
    "ExperimentConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PeriodicEvaluation",
    "PolyLearningRate",
    "RuntimeConfig",
    "SGDWithWeightDecay",
    "ScheduleConfig",
    "SegmentationLoss",
    "TrainingBackup",
    "TrainingMonitor",
    "apply_overrides",
    "backed_up_epoch",
    "build_optimizer",
    "create_strategy",
    "latest_backup",
    "run_experiment",
]
