import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gff_keras")
class PolyLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The "poly" schedule with an optional linear warm-up.

    `lr(step) = learning_rate * (1 - step / decay_steps) ** power`, stepped
    per iteration and 0 from `decay_steps` on. During the first
    `warmup_steps` steps the poly value is scaled by a factor that rises
    linearly from `warmup_ratio` to 1 (mmsegmentation's linear warm-up).

    Args:
        learning_rate: float, the initial learning rate.
        decay_steps: int, the total number of training steps.
        power: float. Defaults to `0.9` (the paper).
        warmup_steps: int. Defaults to `0`.
        warmup_ratio: float, the factor at step 0 of the warm-up. Defaults
            to `0.1`.

    Example:

    >>> schedule = PolyLearningRate(0.01, decay_steps=100)
    >>> round(float(schedule(50)), 6)  # 0.01 * 0.5 ** 0.9
    0.005359

    Reference:
        Liu et al., "ParseNet: Looking Wider to See Better", 2015 (poly);
        Li et al., "Gated Fully Fusion for Semantic Segmentation", 2020.
    """

    def __init__(
        self,
        learning_rate,
        decay_steps,
        power=0.9,
        warmup_steps=0,
        warmup_ratio=0.1,
    ):
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be positive: {decay_steps}.")
        self.learning_rate = learning_rate
        self.decay_steps = decay_steps
        self.power = power
        self.warmup_steps = warmup_steps
        self.warmup_ratio = warmup_ratio

    def __call__(self, step):
        step = ops.cast(step, "float32")
        progress = ops.minimum(step / float(self.decay_steps), 1.0)
        rate = self.learning_rate * ops.power(1.0 - progress, self.power)
        if self.warmup_steps > 0:
            ramp = ops.minimum(step / float(self.warmup_steps), 1.0)
            rate = rate * (self.warmup_ratio + (1 - self.warmup_ratio) * ramp)
        return rate

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "decay_steps": self.decay_steps,
            "power": self.power,
            "warmup_steps": self.warmup_steps,
            "warmup_ratio": self.warmup_ratio,
        }
