import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gff_keras")
class ConstantPadding2D(keras.layers.Layer):
    """Pads height and width symmetrically with a constant.

    PyTorch's convolutions and poolings pad `padding` pixels on both sides
    whatever the input size, where Keras' `"same"` puts the extra pixel
    after the input on even sizes; a network ported from PyTorch pads
    explicitly and then uses `"valid"`. Max pooling pads with `-inf`
    (PyTorch's implicit padding never wins the maximum), which
    `keras.layers.ZeroPadding2D` cannot do.

    Args:
        padding: int, pixels added on each side of the height and width.
            Defaults to `1`.
        value: float, the padding value. Defaults to `0.0`.
        **kwargs: base layer arguments.

    Example:

    >>> pad = ConstantPadding2D(1, value=float("-inf"))
    >>> pad(keras.ops.zeros((1, 4, 6, 2))).shape
    (1, 6, 8, 2)
    """

    def __init__(self, padding=1, value=0.0, **kwargs):
        super().__init__(**kwargs)
        if int(padding) < 0:
            raise ValueError(f"`padding` must be >= 0; received {padding}.")
        self.padding = int(padding)
        self.value = float(value)

    def call(self, inputs):
        p = self.padding
        return ops.pad(
            inputs,
            [[0, 0], [p, p], [p, p], [0, 0]],
            constant_values=self.value,
        )

    def compute_output_shape(self, input_shape):
        def grown(size):
            return None if size is None else size + 2 * self.padding

        return (
            input_shape[0],
            grown(input_shape[1]),
            grown(input_shape[2]),
            input_shape[3],
        )

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding, "value": self.value})
        return config
