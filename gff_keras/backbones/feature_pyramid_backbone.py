import keras

from gff_keras.backbones.backbone import Backbone


@keras.saving.register_keras_serializable(package="gff_keras")
class FeaturePyramidBackbone(Backbone):
    """Any Keras feature extractor as a GFF backbone.

    Accepts, in this order of preference:

    - a keras-hub backbone (or any model) with `pyramid_outputs`, a dict of
      its feature maps (`"P2"` ... `"P5"`);
    - a keras-cv backbone with `pyramid_level_inputs`, a dict of level
      names to layer names;
    - any functional `keras.Model` whose output is a dict of two or more
      feature maps, e.g. a `keras.applications` model cut at named layers.

    The maps must be ordered fine to coarse; their strides are read from the
    shapes (`Backbone`), so the encoder need not be dilated: GFF on a plain
    ResNet at output stride 32 fuses its four levels at their own sizes.
    Inputs are whatever the wrapped model expects (a `keras.applications`
    ResNet takes the pipelines' "caffe" input as is).

    Args:
        model: the `keras.Model` to wrap.
        input_shape: image shape, or `None` for the wrapped model's.
        **kwargs: base model arguments such as `name`.

    Raises:
        ValueError: if `model` is not a Keras model or has no dict of two or
            more feature maps in any of the forms above.

    Example:

    >>> resnet = keras.applications.ResNet50(weights=None, include_top=False)
    >>> layers = ("conv2_block3_out", "conv3_block4_out",
    ...           "conv4_block6_out", "conv5_block3_out")
    >>> encoder = keras.Model(
    ...     resnet.input, {n: resnet.get_layer(n).output for n in layers})
    >>> backbone = FeaturePyramidBackbone(encoder)
    >>> backbone.feature_strides["conv5_block3_out"]
    32
    """

    def __init__(self, model, input_shape=None, **kwargs):
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(model)
        pyramid = _pyramid_model(model)
        if input_shape is None:
            input_shape = tuple(pyramid.inputs[0].shape[1:])

        # === Functional Model ===
        images = keras.Input(shape=input_shape, name="images")
        features = pyramid(images)
        super().__init__(inputs=images, outputs=dict(features), **kwargs)

        # === Config ===
        # The config holds the pyramid model (dict output), not the wrapped
        # one: it reloads through the same path without keras-hub's or
        # keras-cv's attributes.
        self.encoder = pyramid
        self.image_shape = tuple(input_shape)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.encoder),
            "input_shape": self.image_shape,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _pyramid_model(model):
    """A model from the encoder's image input to its dict of feature maps."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "A backbone must be a keras.Model; received "
            f"{type(model).__name__}."
        )
    outputs = getattr(model, "pyramid_outputs", None)
    if not outputs and getattr(model, "pyramid_level_inputs", None):
        outputs = {
            level: model.get_layer(layer).output
            for level, layer in model.pyramid_level_inputs.items()
        }
    if not outputs and isinstance(getattr(model, "output", None), dict):
        return model
    if not isinstance(outputs, dict) or len(outputs) < 2:
        raise ValueError(
            f"{model.name!r} cannot serve as a backbone: it needs a dict of "
            "two or more feature maps, as its output, as keras-hub's "
            "`pyramid_outputs` or as keras-cv's `pyramid_level_inputs`; its "
            f"output is {getattr(model, 'output', None)}."
        )
    return keras.Model(model.inputs, outputs, name=f"{model.name}_pyramid")
