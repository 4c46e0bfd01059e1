import keras

from gff_keras.layers.resizing import resize_like


@keras.saving.register_keras_serializable(package="gff_keras")
class BilinearResize(keras.layers.Layer):
    """Resizes a feature map bilinearly to another tensor's height and width.

    The target size is read from `reference` at run time, so a model built on
    inputs of unknown size produces outputs at its input's resolution and
    still exports to a SavedModel (see `gff_keras.layers.resizing` for why
    this uses `tf.image.resize`).

    Args:
        align_corners: bool, PyTorch's `align_corners=True` sampling instead
            of half-pixel centres (see `gff_keras.layers.resizing`).
            Defaults to `False`.
        **kwargs: base layer arguments. Pass `dtype="float32"` to cast the
            output to float32 under a mixed-precision policy (logits).

    Call arguments:
        inputs: `[batch, h, w, channels]` tensor to resize.
        reference: `[batch, H, W, ...]` tensor whose size is the target.

    Returns:
        `[batch, H, W, channels]` tensor.

    Example:

    >>> resize = BilinearResize()
    >>> resize(keras.ops.ones((1, 4, 4, 3)), keras.ops.ones((1, 9, 7, 1))).shape
    (1, 9, 7, 3)
    """

    def __init__(self, align_corners=False, **kwargs):
        super().__init__(**kwargs)
        self.align_corners = align_corners

    def call(self, inputs, reference):
        return resize_like(inputs, reference, self.align_corners)

    def compute_output_shape(self, inputs_shape, reference_shape):
        return (
            (inputs_shape[0],)
            + tuple(reference_shape[1:3])
            + (inputs_shape[-1],)
        )

    def get_config(self):
        config = super().get_config()
        config.update({"align_corners": self.align_corners})
        return config
