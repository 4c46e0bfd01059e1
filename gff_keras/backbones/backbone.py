import re

import keras

# The height and width of the symbolic image that measures strides when a
# backbone does not state them: a multiple of every stride up to 64.
STRIDE_PROBE_SIZE = 512


class Backbone(keras.Model):
    """Base of the feature-pyramid backbones: images to a dict of features.

    A backbone is a functional `keras.Model` whose output is a dict of two or
    more feature maps `[batch, H_i, W_i, C_i]`, ordered fine to coarse. It
    describes them with three attributes that the heads and the `Segmenter`
    read:

    - `feature_names`: the output names, finest first;
    - `feature_strides`: each output's stride relative to the image. Maps of
      equal stride have equal height and width for every image size (a
      dilated stage keeps its input's size), which lets `GatedFullyFusion`
      group them without knowing the image size;
    - `feature_channels`: each output's channel count.

    Subclasses build their graph and call
    `super().__init__(inputs=..., outputs=..., feature_names=...,
    feature_strides=...)`; `FeaturePyramidBackbone` wraps any other Keras
    model and measures the strides from the shapes.

    Args:
        inputs: the image input tensor.
        outputs: dict of feature maps.
        feature_names: the output names, finest first, or `None` for the
            dict's keys ordered by stride, then by name (natural order).
        feature_strides: dict of each output's stride (or a sequence, one
            per `feature_names`), or `None` to measure them on a symbolic
            `STRIDE_PROBE_SIZE` square image.
        **kwargs: base model arguments such as `name`.

    Raises:
        ValueError: if `outputs` is not a dict of two or more rank-4 maps
            with known channels, or the names are not ordered fine to
            coarse.
    """

    def __init__(
        self,
        inputs,
        outputs,
        feature_names=None,
        feature_strides=None,
        **kwargs,
    ):
        _check_outputs(outputs, kwargs.get("name"))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        if feature_strides is None:
            feature_strides = self._measure_strides(inputs)
        elif not isinstance(feature_strides, dict):
            feature_strides = dict(zip(feature_names, feature_strides))
        strides = {name: int(feature_strides[name]) for name in outputs}
        if feature_names is None:
            feature_names = sorted(
                outputs, key=lambda name: (strides[name], _natural_key(name))
            )
        feature_names = tuple(feature_names)
        if sorted(feature_names) != sorted(outputs):
            raise ValueError(
                f"`feature_names` {feature_names} must name the outputs "
                f"{tuple(outputs)}."
            )
        ordered = [strides[name] for name in feature_names]
        if ordered != sorted(ordered):
            raise ValueError(
                "A backbone's features must go from fine to coarse; received "
                f"{feature_names} with strides {tuple(ordered)}."
            )
        self.feature_names = feature_names
        self.feature_strides = {name: strides[name] for name in feature_names}
        self.feature_channels = {
            name: int(outputs[name].shape[-1]) for name in feature_names
        }

    def _measure_strides(self, inputs):
        channels = inputs.shape[-1]
        size = [
            dim if dim is not None else STRIDE_PROBE_SIZE
            for dim in inputs.shape[1:3]
        ]
        probe = keras.KerasTensor((1, *size, channels), dtype=inputs.dtype)
        shapes = self.compute_output_spec(probe)
        strides = {}
        for name, spec in shapes.items():
            height, width = spec.shape[1:3]
            strides[name] = max(
                1, round(size[0] / height), round(size[1] / width)
            )
        return strides


def _check_outputs(outputs, name):
    if not isinstance(outputs, dict) or len(outputs) < 2:
        raise ValueError(
            f"A backbone ({name}) must output a dict of two or more feature "
            f"maps; received {type(outputs).__name__} "
            f"{getattr(outputs, 'shape', '')}."
        )
    for key, value in outputs.items():
        shape = getattr(value, "shape", None)
        if shape is None or len(shape) != 4 or shape[-1] is None:
            raise ValueError(
                f"A backbone's features must be [batch, height, width, "
                f"channels] maps with known channels; {key!r} has shape "
                f"{shape}."
            )


def _natural_key(name):
    """`"P10"` after `"P9"`: digit runs compare as numbers."""
    return [
        int(part) if part.isdigit() else part
        for part in re.split(r"(\d+)", str(name))
    ]
