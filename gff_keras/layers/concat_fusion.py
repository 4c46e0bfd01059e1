import keras
from keras import ops

from gff_keras.layers.multi_level import validate_levels
from gff_keras.layers.resizing import resize_like


@keras.saving.register_keras_serializable(package="gff_keras")
class ConcatFusion(keras.layers.Layer):
    """Concatenation fusion, the paper's eq. 2 baseline (Table 1).

    Every level becomes the concatenation of all levels resized to its size:
    `X~_l = concat(X_1, ..., X_L)`. The output has `L * C` channels; in
    `GFFNet` the two 3x3 refinement convolutions bring it back to 256.

    Args:
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of `L >= 2` tensors `[batch, H_i, W_i, C]`.

    Returns:
        List of `L` tensors `[batch, H_i, W_i, L * C]`.

    Example:

    >>> fusion = ConcatFusion()
    >>> levels = [keras.ops.ones((1, 16, 16, 4)), keras.ops.ones((1, 8, 8, 4))]
    >>> [tuple(x.shape) for x in fusion(levels)]
    [(1, 16, 16, 8), (1, 8, 8, 8)]
    """

    def build(self, input_shape):
        validate_levels(input_shape, "ConcatFusion")
        self.built = True

    def call(self, inputs):
        return [
            ops.concatenate([resize_like(x, target) for x in inputs], axis=-1)
            for target in inputs
        ]

    def compute_output_shape(self, input_shape):
        width = sum(shape[-1] for shape in input_shape)
        return [tuple(shape[:3]) + (width,) for shape in input_shape]
