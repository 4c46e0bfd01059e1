"""Copies ImageNet weights from `keras.applications` into a backbone."""

import os
import re

import keras

from gff_keras.backbones.dilated_densenet import DilatedDenseNet
from gff_keras.backbones.dilated_resnet import DilatedResNet

APPLICATIONS = {
    50: "ResNet50",
    101: "ResNet101",
    152: "ResNet152",
}
DENSENET_APPLICATIONS = {
    121: "DenseNet121",
    169: "DenseNet169",
    201: "DenseNet201",
}


def _application_name(backbone):
    if isinstance(backbone, DilatedDenseNet):
        return DENSENET_APPLICATIONS[backbone.depth]
    if isinstance(backbone, DilatedResNet):
        return APPLICATIONS.get(backbone.depth)
    raise TypeError(
        "ImageNet weights can be copied into a DilatedResNet or a "
        f"DilatedDenseNet; received {type(backbone).__name__} (for other "
        "backbones, load a weight file with `backbone.load_weights`)."
    )


def _reference_model(backbone, source) -> keras.Model:
    """Builds the model whose weights are copied, loading `source`."""
    application = _application_name(backbone)
    if isinstance(source, keras.Model):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "`source` must be a keras.Model, a weight file path or "
            f"'imagenet'; received {type(source).__name__}."
        )
    source = os.fspath(source)
    if source == "imagenet":
        if application is None:
            raise ValueError(
                f"keras.applications has no ResNet-{backbone.depth}; ImageNet "
                f"weights can be downloaded for depths {sorted(APPLICATIONS)}."
                " Pass a weight file saved from a gff_keras DilatedResNet of "
                "the same depth instead."
            )
        constructor = getattr(keras.applications, application)
        try:
            return constructor(include_top=False, weights="imagenet")
        except Exception as error:
            # keras.utils.get_file raises a bare Exception when offline.
            if "URL fetch failure" not in str(error):
                raise
            raise _offline_error(application, str(error)) from None
    if not os.path.isfile(source):
        raise FileNotFoundError(f"Weight file not found: {source}")
    if not source.endswith(".h5"):
        raise ValueError(
            f"Weight file {source} must be a Keras `.h5` or `.weights.h5` file."
        )
    if application is None:
        candidates = [
            DilatedResNet(
                depth=backbone.depth, output_stride=32, stem=backbone.stem
            )
        ]
    else:
        constructor = getattr(keras.applications, application)
        candidates = [
            constructor(include_top=include_top, weights=None)
            for include_top in (False, True)
        ]
    errors = []
    for candidate in candidates:
        try:
            candidate.load_weights(source)
            return candidate
        except (ValueError, KeyError) as error:
            errors.append(str(error).splitlines()[0])
    expected = application or f"DilatedResNet(depth={backbone.depth})"
    raise ValueError(
        f"Could not read {source} as weights of {expected}: "
        + " | ".join(errors)
    )


def _offline_error(application, message):
    found = re.search(r"URL fetch failure on (\S+): (.*)", message)
    url, reason = found.groups() if found else ("", message)
    file_name = url.rsplit("/", 1)[-1] or "its weight file"
    cache = os.path.join(
        os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models"
    )
    return ConnectionError(
        f"Cannot download the ImageNet weights of {application} ({reason}). "
        f"Offline, fetch {url} on a machine with internet and either pass "
        f"--override model.backbone.weights=/path/to/{file_name} or copy it "
        f"to {cache}/."
    )


def load_imagenet_weights(backbone, source="imagenet") -> int:
    """Copies ResNet or DenseNet weights into `backbone`, all or nothing.

    Layers are matched by name: a `DilatedResNet` with `stem="standard"`
    names its layers like `keras.applications.ResNet*`, a `DilatedDenseNet`
    like `keras.applications.DenseNet*`, and dilation does not change
    weight shapes. Every weighted layer of `backbone` must receive
    weights and every weighted layer of the source must find a place;
    otherwise nothing is copied and the error lists the mismatches.

    Args:
        backbone: the `DilatedResNet` or `DilatedDenseNet` to fill.
        source: `"imagenet"` (downloaded through `keras.applications` when
            online; ResNet-50/101/152 and DenseNet-121/169/201), a path to
            a `.h5` or `.weights.h5` file of the matching
            `keras.applications` model (with or without its top), or a
            `keras.Model` with the same layer names (a keras.applications
            model or another backbone of the same kind).

    Returns:
        The number of layers whose weights were copied.

    Raises:
        ValueError: if the weights do not match `backbone` (the message lists
            missing, unexpected and mis-shaped layers), or the file cannot be
            read as the matching model's weights.
        FileNotFoundError: if `source` is a path that does not exist.
        ConnectionError: when `"imagenet"` weights are neither in the Keras
            cache nor downloadable (the message names the file, its URL and
            how to pass it).
        TypeError: for a backbone without keras.applications weights.

    Example:

    >>> backbone = DilatedResNet(depth=50, output_stride=8)
    >>> load_imagenet_weights(backbone, "imagenet")  # doctest: +SKIP
    """
    reference = _reference_model(backbone, source)
    source_layers = {
        layer.name: layer for layer in reference.layers if layer.weights
    }
    target_layers = {
        layer.name: layer for layer in backbone.layers if layer.weights
    }
    problems = []
    for name in sorted(set(target_layers) - set(source_layers)):
        problems.append(f"missing in source: {name}")
    for name in sorted(set(source_layers) - set(target_layers)):
        if name in ("predictions",):  # the ImageNet classifier is not used
            continue
        problems.append(f"not in backbone: {name}")
    for name in sorted(set(source_layers) & set(target_layers)):
        source_shapes = [tuple(w.shape) for w in source_layers[name].weights]
        target_shapes = [tuple(w.shape) for w in target_layers[name].weights]
        if source_shapes != target_shapes:
            problems.append(
                f"shape mismatch: {name} source {source_shapes} "
                f"backbone {target_shapes}"
            )
    if problems:
        shown = "\n  ".join(problems[:20])
        more = (
            f"\n  ... and {len(problems) - 20} more"
            if len(problems) > 20
            else ""
        )
        described = f"depth={backbone.depth}"
        if isinstance(backbone, DilatedResNet):
            described += f", stem={backbone.stem!r}"
        raise ValueError(
            f"Cannot copy weights from {reference.name} into {backbone.name} "
            f"({described}); "
            f"{len(problems)} mismatches, nothing was copied:\n  "
            f"{shown}{more}"
        )
    for name, layer in target_layers.items():
        layer.set_weights(source_layers[name].get_weights())
    return len(target_layers)
