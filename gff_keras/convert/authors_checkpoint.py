"""The GFF authors' released checkpoint in Keras.

lxtGH/DecoupleSegNets trains `DeepWV3PlusGFFNet` in PyTorch and releases
its `state_dict` (keys prefixed `module.`, PyTorch layouts). The preset
`deeplabv3plus_gff_dfp_wrn38` is that network layer for layer; this module
names, for every key of their state dict, the Keras variable it fills, and
loads all of them or reports every mismatch at once.
"""

import numpy as np

from gff_keras.backbones.wider_resnet38 import WIDER_RESNET38_LAYOUT
from gff_keras.models.gffnet import GFFNet
from gff_keras.models.presets import preset_arguments

PRESET = "deeplabv3plus_gff_dfp_wrn38"
INPUT_PREPROCESSINGS = ("caffe", "torch")
CLASSIFIER_KEY = "gff_head.cls.6.weight"
# PyTorch's BatchNorm names and Keras' for the same four variables.
BATCH_NORM_VARIABLES = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}


class CheckpointMismatchError(ValueError):
    """A state dict does not fit the network: every difference, listed."""


def _conv(prefix, layer, bias=False):
    """Keys of a convolution: PyTorch's `[out, in, kh, kw]` kernel."""
    targets = {f"{prefix}.weight": (layer.kernel, "kernel")}
    if bias:
        targets[f"{prefix}.bias"] = (layer.bias, "vector")
    return targets


def _batch_norm(prefix, layer):
    return {
        f"{prefix}.{torch_name}": (getattr(layer, keras_name), "vector")
        for torch_name, keras_name in BATCH_NORM_VARIABLES.items()
    }


def _conv_bn(prefix, conv_bn_relu):
    """A `ConvBNReLU` from PyTorch's `Sequential(conv, bn, relu)`."""
    return {
        **_conv(f"{prefix}.0", conv_bn_relu.conv),
        **_batch_norm(f"{prefix}.1", conv_bn_relu.batch_norm),
    }


def authors_variable_map(model) -> dict:
    """Maps every key of the authors' state dict to a variable of `model`.

    Args:
        model: a `GFFNet` built from the `deeplabv3plus_gff_dfp_wrn38`
            preset.

    Returns:
        `{key: (variable, kind)}`, keys without `module.`; `kind` is
        `"kernel"` for a convolution kernel (transposed from PyTorch's
        layout) or `"vector"` for biases and BatchNorm variables.
    """
    backbone, context, head = model.backbone, model.context, model.head
    targets = _conv("mod1.conv1", backbone.get_layer("mod1_conv"))
    for mod in WIDER_RESNET38_LAYOUT:
        for block in range(1, mod.blocks + 1):
            torch_block = f"{mod.name}.block{block}"
            keras_block = f"{mod.name}_block{block}"
            targets.update(
                _batch_norm(
                    f"{torch_block}.bn1.0",
                    backbone.get_layer(f"{keras_block}_bn1"),
                )
            )
            for index in range(1, len(mod.channels) + 1):
                targets.update(
                    _conv(
                        f"{torch_block}.convs.conv{index}",
                        backbone.get_layer(f"{keras_block}_conv{index}"),
                    )
                )
                if index > 1:
                    targets.update(
                        _batch_norm(
                            f"{torch_block}.convs.bn{index}.0",
                            backbone.get_layer(f"{keras_block}_bn{index}"),
                        )
                    )
            if block == 1:
                targets.update(
                    _conv(
                        f"{torch_block}.proj_conv",
                        backbone.get_layer(f"{keras_block}_proj"),
                    )
                )
    # Their ASPP: features.0 is the 1x1 branch, features.1-3 the rates.
    for index, branch in enumerate(context.branches):
        targets.update(_conv_bn(f"aspp.features.{index}", branch))
    targets.update(_conv_bn("aspp.img_conv", context.image_pooling))
    targets.update(_conv("bot_aspp", head.context_projection))
    for index, reducer in enumerate(head.reducers, start=1):
        targets.update(_conv_bn(f"gff_head.d_in{index}", reducer))
    for index, gate in enumerate(head.fusion.gate_convs, start=1):
        targets.update(_conv(f"gff_head.gate{index}.0", gate, bias=True))
    # dense_3 runs on the coarsest level (the context), dense_9 the finest.
    blocks = head.pyramid.blocks
    for name, block in zip(("dense_9", "dense_6", "dense_3"), blocks):
        norm1, conv1, norm2, conv2 = block
        prefix = f"gff_head.{name}"
        targets.update(_batch_norm(f"{prefix}.norm1", norm1))
        targets.update(_conv(f"{prefix}.conv1", conv1, bias=True))
        targets.update(_batch_norm(f"{prefix}.norm2", norm2))
        targets.update(_conv(f"{prefix}.conv2", conv2, bias=True))
    first, second = head.classifier_convs
    targets.update(_conv("gff_head.cls.0", first.conv))
    targets.update(_batch_norm("gff_head.cls.1", first.batch_norm))
    targets.update(_conv("gff_head.cls.3", second.conv))
    targets.update(_batch_norm("gff_head.cls.4", second.batch_norm))
    targets.update(_conv("gff_head.cls.6", head.classifier))
    return targets


def _keras_value(array, kind):
    array = np.asarray(array)
    if kind == "kernel" and array.ndim == 4:
        return np.transpose(array, (2, 3, 1, 0))
    return array


def authors_gffnet(
    state_dict: dict,
    num_classes: int | None = None,
    input_preprocessing: str = "caffe",
    **kwargs,
) -> GFFNet:
    """Builds the authors' network and loads their weights, strictly.

    Every key must fill exactly one variable of the right shape: missing,
    unexpected and wrongly shaped keys are all reported, by name, in one
    error (their own loader skips mismatches silently). PyTorch's
    `num_batches_tracked` counters are accepted and not loaded.

    Args:
        state_dict: `{key: numpy array}`, e.g. from
            `gff_keras.convert.read_torch_checkpoint` (a `module.` prefix
            is stripped).
        num_classes: int, or `None` to read it from the classifier.
        input_preprocessing: `"caffe"` (the model takes the pipelines'
            input and converts it, so training, evaluation and export work
            unchanged) or `"torch"` (it takes the authors' input as is: RGB
            in [0, 1] standardized by the ImageNet mean and std).
        **kwargs: other `GFFNet` arguments, e.g. `name`.

    Returns:
        A `GFFNet` holding the checkpoint's weights.

    Raises:
        CheckpointMismatchError: naming every missing, unexpected and
            wrongly shaped key.
        ValueError: for an unknown `input_preprocessing`, or `num_classes`
            that the classifier's shape contradicts.

    Example:

    >>> from gff_keras.convert import read_torch_checkpoint
    >>> weights = read_torch_checkpoint("GFFNet_best.pth")  # doctest: +SKIP
    >>> model = authors_gffnet(weights)  # doctest: +SKIP
    """
    if input_preprocessing not in INPUT_PREPROCESSINGS:
        raise ValueError(
            f"`input_preprocessing` must be one of {INPUT_PREPROCESSINGS}; "
            f"received {input_preprocessing!r}."
        )
    state_dict = {
        key.removeprefix("module."): value for key, value in state_dict.items()
    }
    classes = state_dict.get(CLASSIFIER_KEY)
    if num_classes is None:
        if classes is None:
            raise CheckpointMismatchError(
                f"The state dict has no {CLASSIFIER_KEY!r} to read the "
                "number of classes from; pass num_classes."
            )
        num_classes = int(np.shape(classes)[0])
    elif classes is not None and np.shape(classes)[0] != num_classes:
        raise ValueError(
            f"num_classes={num_classes}, but the checkpoint's classifier "
            f"has {np.shape(classes)[0]} classes."
        )
    arguments = preset_arguments(PRESET, num_classes)
    arguments["backbone"]["config"]["input_preprocessing"] = input_preprocessing
    arguments.setdefault("name", PRESET)
    arguments.update(kwargs)
    model = GFFNet(num_classes=num_classes, **arguments)
    targets = authors_variable_map(model)
    given = {
        key for key in state_dict if not key.endswith("num_batches_tracked")
    }
    missing = sorted(set(targets) - given)
    unexpected = sorted(given - set(targets))
    reshaped = []
    for key in sorted(given & set(targets)):
        variable, kind = targets[key]
        value = _keras_value(state_dict[key], kind)
        if tuple(value.shape) != tuple(variable.shape):
            reshaped.append(
                f"{key} {tuple(np.shape(state_dict[key]))} (the network "
                f"expects {_torch_shape(variable.shape, kind)})"
            )
    if missing or unexpected or reshaped:
        lines = []
        for title, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", reshaped),
        ):
            if keys:
                lines.append(f"{len(keys)} {title}: {', '.join(keys)}")
        raise CheckpointMismatchError(
            f"The state dict does not fit the authors' network ({PRESET}, "
            f"{num_classes} classes): " + "; ".join(lines) + "."
        )
    for key, (variable, kind) in targets.items():
        variable.assign(_keras_value(state_dict[key], kind))
    return model


def _torch_shape(shape, kind):
    """A Keras variable's shape in PyTorch's layout, for messages."""
    shape = tuple(shape)
    if kind == "kernel" and len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    return shape
