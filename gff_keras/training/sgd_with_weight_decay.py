import keras
from keras import ops

from gff_keras import keras_internals


@keras.saving.register_keras_serializable(package="gff_keras")
class SGDWithWeightDecay(keras.optimizers.SGD):
    """SGD with momentum and L2 weight decay on kernels only.

    The decay is added to the gradient before momentum, `g + wd * w`, as
    PyTorch's `SGD(weight_decay=...)` (the paper's optimizer) does; Keras'
    own `weight_decay` argument is decoupled (`w -= lr * wd * w`), which
    with momentum 0.9 decays about ten times less. Only variables named
    `kernel` (convolution and dense kernels) decay; BatchNorm scales and
    offsets and biases do not, following common segmentation practice.

    Args:
        learning_rate: float or schedule.
        momentum: float. Defaults to `0.9`.
        l2_weight_decay: float. Defaults to `1e-4`.
        nesterov: bool. Defaults to `False`.
        **kwargs: other `keras.optimizers.SGD` arguments.

    Example:

    >>> optimizer = SGDWithWeightDecay(0.1, momentum=0.0, l2_weight_decay=0.5)
    >>> kernel = keras.Variable([1.0], name="kernel")
    >>> optimizer.apply([keras.ops.zeros((1,))], [kernel])
    >>> float(kernel.numpy()[0])  # 1 - 0.1 * 0.5 * 1
    0.95
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        l2_weight_decay=1e-4,
        nesterov=False,
        name="sgd_with_weight_decay",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            momentum=momentum,
            nesterov=nesterov,
            name=name,
            **kwargs,
        )
        self.l2_weight_decay = l2_weight_decay

    @staticmethod
    def decays(variable) -> bool:
        """Whether `variable` receives weight decay (kernels only)."""
        return variable.name == "kernel"

    def build(self, variables):
        super().build(variables)
        # Decided on the Keras variables: in `update_step` they may arrive
        # as per-replica `tf.Variable`s with decorated names.
        self._decayed = [self.decays(v) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        index = keras_internals.variable_index(self, variable)
        if self.l2_weight_decay and self._decayed[index]:
            gradient = gradient + ops.cast(
                self.l2_weight_decay, variable.dtype
            ) * ops.cast(variable, gradient.dtype)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({"l2_weight_decay": self.l2_weight_decay})
        return config
