import keras

from gff_keras.layers.multi_level import validate_levels
from gff_keras.layers.resizing import resize_like


@keras.saving.register_keras_serializable(package="gff_keras")
class AddFusion(keras.layers.Layer):
    """Addition fusion, the paper's eq. 3 baseline (Table 1).

    Every level becomes the sum of all levels resized to its size:
    `X~_l = sum_i X_i`. It is GFF with every gate fixed open.

    Args:
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of `L >= 2` tensors `[batch, H_i, W_i, C]`.

    Returns:
        List of `L` tensors shaped like the inputs.

    Example:

    >>> fusion = AddFusion()
    >>> levels = [keras.ops.ones((1, 16, 16, 4)), keras.ops.ones((1, 8, 8, 4))]
    >>> [tuple(x.shape) for x in fusion(levels)]
    [(1, 16, 16, 4), (1, 8, 8, 4)]
    """

    def build(self, input_shape):
        validate_levels(input_shape, "AddFusion")
        self.built = True

    def call(self, inputs):
        fused = []
        for target in inputs:
            total = target
            for x in inputs:
                if x is not target:
                    total = total + resize_like(x, target)
            fused.append(total)
        return fused

    def compute_output_shape(self, input_shape):
        return [tuple(shape) for shape in input_shape]
