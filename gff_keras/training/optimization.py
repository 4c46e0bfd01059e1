import keras

from gff_keras.training.experiment_config import OptimizerConfig
from gff_keras.training.experiment_config import ScheduleConfig
from gff_keras.training.poly_learning_rate import PolyLearningRate
from gff_keras.training.sgd_with_weight_decay import SGDWithWeightDecay


def build_optimizer(
    optimizer: OptimizerConfig, schedule: ScheduleConfig
) -> keras.optimizers.Optimizer:
    """Builds the paper's optimizer: poly-LR SGD, momentum, L2 on kernels.

    Args:
        optimizer: learning rate, momentum, weight decay, Nesterov.
        schedule: total steps, poly power and warm-up.

    Returns:
        A `SGDWithWeightDecay` driven by a `PolyLearningRate`.

    Example:

    >>> from gff_keras.training import OptimizerConfig, ScheduleConfig
    >>> sgd = build_optimizer(OptimizerConfig(), ScheduleConfig(steps=100))
    >>> round(float(sgd.learning_rate), 6)  # step 0
    0.001
    """
    learning_rate = PolyLearningRate(
        optimizer.learning_rate,
        decay_steps=schedule.steps,
        power=schedule.power,
        warmup_steps=schedule.warmup_steps,
        warmup_ratio=schedule.warmup_ratio,
    )
    return SGDWithWeightDecay(
        learning_rate,
        momentum=optimizer.momentum,
        l2_weight_decay=optimizer.weight_decay,
        nesterov=optimizer.nesterov,
    )
