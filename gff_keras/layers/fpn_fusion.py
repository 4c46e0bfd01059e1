import keras

from gff_keras.layers.multi_level import validate_levels
from gff_keras.layers.resizing import resize_like


@keras.saving.register_keras_serializable(package="gff_keras")
class FPNFusion(keras.layers.Layer):
    """Feature-pyramid top-down fusion, the paper's eq. 4 baseline (Table 1).

    `X~_L = X_L` and `X~_l = X_l + resize(X~_{l+1})`: each level receives the
    already fused level above it. In `GFFNet` the reduced PPM output is passed
    as the top level, so the pyramid "fuses 5 feature maps, where one is the
    context feature map" as in the paper's FPN baseline.

    Args:
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of `L >= 2` tensors `[batch, H_i, W_i, C]`, finest first.

    Returns:
        List of `L` tensors shaped like the inputs.

    Example:

    >>> fusion = FPNFusion()
    >>> levels = [keras.ops.ones((1, 16, 16, 4)), keras.ops.ones((1, 8, 8, 4))]
    >>> [tuple(x.shape) for x in fusion(levels)]
    [(1, 16, 16, 4), (1, 8, 8, 4)]

    Reference:
        Lin et al., "Feature Pyramid Networks for Object Detection",
        CVPR 2017.
    """

    # A top-down fusion: its last input is the top of the pyramid (a head
    # passes the context there).
    top_down = True

    def build(self, input_shape):
        validate_levels(input_shape, "FPNFusion")
        self.built = True

    def call(self, inputs):
        fused = [inputs[-1]]
        for x in reversed(inputs[:-1]):
            fused.append(x + resize_like(fused[-1], x))
        return fused[::-1]

    def compute_output_shape(self, input_shape):
        return [tuple(shape) for shape in input_shape]
