import keras

from gff_keras.backbones.backbone import Backbone
from gff_keras.backbones.dilated_densenet import DilatedDenseNet
from gff_keras.backbones.dilated_resnet import DilatedResNet
from gff_keras.backbones.feature_pyramid_backbone import FeaturePyramidBackbone
from gff_keras.backbones.imagenet_weights import load_imagenet_weights
from gff_keras.backbones.wider_resnet38 import WiderResNet38
from gff_keras.heads.context_head import ContextHead
from gff_keras.heads.deep_lab_v3_plus_head import DeepLabV3PlusHead
from gff_keras.heads.fcn_head import FCNHead
from gff_keras.heads.fusion_head import FusionHead
from gff_keras.layers.add_fusion import AddFusion
from gff_keras.layers.atrous_spatial_pyramid_pooling import (
    AtrousSpatialPyramidPooling,
)
from gff_keras.layers.concat_fusion import ConcatFusion
from gff_keras.layers.dense_aspp_feature_pyramid import DenseASPPFeaturePyramid
from gff_keras.layers.dense_atrous_spatial_pyramid_pooling import (
    DenseAtrousSpatialPyramidPooling,
)
from gff_keras.layers.dense_feature_pyramid import DenseFeaturePyramid
from gff_keras.layers.fpn_fusion import FPNFusion
from gff_keras.layers.gated_fpn_fusion import GatedFPNFusion
from gff_keras.layers.gated_fully_fusion import GatedFullyFusion
from gff_keras.layers.pyramid_pooling import PyramidPooling
from gff_keras.models.presets import preset_arguments
from gff_keras.models.segmenter import Segmenter

BACKBONES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "densenet169",
    "densenet201",
    "wider_resnet38",
)
CONTEXTS = ("ppm", "aspp", "dense_aspp")
FUSIONS = ("none", "concat", "add", "fpn", "gated_fpn", "gff")
HEADS = ("fusion", "context", "deeplabv3plus")
# Dense feature pyramids of the fusion head: ours (eq. 6 at each level's
# size) and the authors' code's (DenseASPP blocks at the finest size).
PYRAMIDS = ("dense", "dense_aspp")
# PSPNet's pyramid pooling output width, and DeepLab's ASPP width.
PPM_CHANNELS = 512
ASPP_CHANNELS = 256
# DeepLab's ASPP rates for the stride of the map it reads.
ASPP_RATES = {8: (12, 24, 36), 16: (6, 12, 18), 32: (3, 6, 9)}
# The paper reduces every level to 256 channels before fusing.
FUSED_CHANNELS = 256


# Options of each part group, as `GFFNet` keywords.
BACKBONE_OPTIONS = ("output_stride", "stem")
CONTEXT_OPTIONS = ("context_channels", "context_rates")
FUSION_HEAD_OPTIONS = (
    "fusion",
    "dfp",
    "gate_channels",
    "fusion_order",
    "fusion_implementation",
    "dfp_kernel_size",
    "dfp_dilation_rates",
    "fused_channels",
    "level_resolution",
    "levels",
    "fuse_context",
)
AUX_HEAD_OPTIONS = ("aux_level", "aux_loss_weight")


def _reject(options, names, reason):
    """Raises for the first of `names` given in `options` (not `None`)."""
    for name in names:
        value = options.get(name)
        if value is not None:
            raise ValueError(f"`{name}={value!r}` {reason}")


def _is_name(part):
    return isinstance(part, str)


def pyramid_name(dfp):
    """`"dense"`, `"dense_aspp"` or `None` (no pyramid) for a `dfp` value.

    Raises:
        ValueError: for anything but a bool, `None` or a name of `PYRAMIDS`
            or `"none"`.
    """
    if dfp is None or dfp is True:
        return "dense"
    if dfp is False or dfp == "none":
        return None
    if dfp in PYRAMIDS:
        return dfp
    raise ValueError(
        f"`dfp={dfp!r}` is not a bool, 'none' or one of {PYRAMIDS}."
    )


def check_options(
    backbone="resnet101",
    context="ppm",
    head=None,
    aux_head=True,
    **options,
) -> str | None:
    """Checks `GFFNet` options against the parts they would configure.

    Builds nothing, so configs can be checked before a run starts.

    Args:
        backbone, context, head, aux_head: as `GFFNet`.
        **options: the other `GFFNet` keywords; `None` means not given.

    Returns:
        The head's name (`"fusion"`, `"context"`, `"deeplabv3plus"`), or
        `None` for a head instance.

    Raises:
        ValueError: naming an unknown name, or the first option that does
            not apply to the chosen parts.
    """
    unknown = set(options) - set(
        BACKBONE_OPTIONS
        + CONTEXT_OPTIONS
        + FUSION_HEAD_OPTIONS
        + AUX_HEAD_OPTIONS
        + ("backbone_weights", "dropout", "decoder_level")
    )
    if unknown:
        raise TypeError(f"Unknown GFFNet argument(s): {sorted(unknown)}.")
    if _is_name(backbone):
        if backbone not in BACKBONES:
            raise ValueError(
                f"`backbone={backbone!r}` is not a Keras model or one of "
                f"{BACKBONES}."
            )
        if not backbone.startswith("resnet"):
            _reject(
                options,
                ("stem",),
                f"applies only to ResNet backbones, not {backbone!r}.",
            )
    else:
        _reject(
            options,
            BACKBONE_OPTIONS,
            "applies to a backbone given by name; configure the backbone "
            "instance instead.",
        )
    if _is_name(context):
        if context not in CONTEXTS:
            raise ValueError(
                f"`context={context!r}` is not a layer or one of {CONTEXTS}."
            )
        if context == "ppm":
            _reject(
                options, ("context_rates",), "does not apply to context='ppm'."
            )
        if context == "dense_aspp":
            _reject(
                options,
                ("context_channels",),
                "does not apply to context='dense_aspp' (its width follows "
                "from its growth rate).",
            )
    else:
        _reject(
            options,
            CONTEXT_OPTIONS,
            "applies to a context module given by name; configure the layer "
            "instead.",
        )
    if not aux_head:
        _reject(
            options,
            AUX_HEAD_OPTIONS,
            "has no effect without an auxiliary head.",
        )
    if head is not None and not _is_name(head):
        _reject(
            options,
            FUSION_HEAD_OPTIONS + ("decoder_level", "dropout"),
            "applies to a head given by name; configure the head instance "
            "instead.",
        )
        return None
    fusion, dfp = options.get("fusion"), options.get("dfp")
    pyramid = None if dfp is None else pyramid_name(dfp)
    if head is None:
        plain = fusion == "none" and dfp is not None and pyramid is None
        head = "context" if plain else "fusion"
    if head not in HEADS:
        raise ValueError(
            f"`head={head!r}` is not a head layer or one of {HEADS}."
        )
    if head != "fusion":
        # "No fusion and no pyramid" may be said explicitly.
        given = dict(options)
        if fusion == "none":
            given["fusion"] = None
        if dfp is not None and pyramid is None:
            given["dfp"] = None
        _reject(given, FUSION_HEAD_OPTIONS, f"does not apply to head={head!r}.")
        if head == "context":
            _reject(
                options,
                ("decoder_level",),
                "applies to head='deeplabv3plus' only.",
            )
        return head
    _reject(
        options, ("decoder_level",), "applies to head='deeplabv3plus' only."
    )
    fusion = "gff" if fusion is None else fusion
    if fusion not in FUSIONS:
        raise ValueError(f"`fusion={fusion!r}` is not one of {FUSIONS}.")
    if fusion != "gff":
        _reject(
            options,
            ("fusion_order", "fusion_implementation"),
            f"applies only to fusion='gff', not fusion={fusion!r}.",
        )
    if fusion not in ("gff", "gated_fpn"):
        _reject(
            options,
            ("gate_channels",),
            f"applies only to the gated fusions, not fusion={fusion!r}.",
        )
    if fusion in ("fpn", "gated_fpn"):
        _reject(
            {"fuse_context": options.get("fuse_context") or None},
            ("fuse_context",),
            f"does not apply to fusion={fusion!r}: the FPN fusions already "
            "take the context as their top level.",
        )
    if dfp is not None and pyramid is None:
        _reject(
            options,
            ("dfp_kernel_size", "dfp_dilation_rates"),
            "has no effect without the dense feature pyramid (dfp).",
        )
    if pyramid == "dense_aspp":
        _reject(
            options,
            ("dfp_kernel_size",),
            "does not apply to dfp='dense_aspp' (its blocks are 1x1 then 3x3).",
        )
    return head


def _build_backbone(backbone, output_stride, stem):
    if not _is_name(backbone):
        if not isinstance(backbone, keras.Model):
            raise ValueError(
                "`backbone` must be a Keras model or one of "
                f"{BACKBONES}; received {type(backbone).__name__}."
            )
        if not isinstance(backbone, Backbone):
            # Wrapped here already: the head's options need its strides.
            backbone = FeaturePyramidBackbone(backbone, name="backbone")
        return backbone
    options = {"name": "backbone"}
    if output_stride is not None:
        options["output_stride"] = output_stride
    if backbone.startswith("resnet"):
        if stem is not None:
            options["stem"] = stem
        return DilatedResNet(
            depth=int(backbone.removeprefix("resnet")), **options
        )
    if backbone.startswith("densenet"):
        return DilatedDenseNet(
            depth=int(backbone.removeprefix("densenet")), **options
        )
    return WiderResNet38(**options)


def _build_context(context, channels, rates, top_stride):
    if not _is_name(context):
        return context
    if context == "ppm":
        return PyramidPooling(channels or PPM_CHANNELS, name="pyramid_pooling")
    if context == "aspp":
        return AtrousSpatialPyramidPooling(
            channels or ASPP_CHANNELS,
            rates=rates or ASPP_RATES.get(top_stride, ASPP_RATES[8]),
            name="aspp",
        )
    options = {} if rates is None else {"rates": rates}
    return DenseAtrousSpatialPyramidPooling(name="dense_aspp", **options)


def _build_fusion(fusion, gate_channels, order, implementation, strides):
    gates = {} if gate_channels is None else {"gate_channels": gate_channels}
    if fusion == "gff":
        options = dict(gates)
        if order is not None:
            options["order"] = order
        if implementation is not None:
            options["implementation"] = implementation
        # The strides let the fusion group levels of one resolution
        # although the model's input size is unknown when it is built.
        return GatedFullyFusion(
            return_gates=True, level_strides=strides, name="fusion", **options
        )
    if fusion == "gated_fpn":
        return GatedFPNFusion(return_gates=True, name="fusion", **gates)
    layers = {"concat": ConcatFusion, "add": AddFusion, "fpn": FPNFusion}
    return layers[fusion](name="fusion") if fusion in layers else None


def _build_fusion_head(num_classes, backbone, top_stride, common, options):
    fusion = options["fusion"] or "gff"
    pyramid_type = pyramid_name(options["dfp"])
    channels = options["fused_channels"] or FUSED_CHANNELS
    level_names = options["levels"] or backbone.feature_names
    strides = [
        backbone.feature_strides[name]
        for name in level_names
        if name in backbone.feature_strides
    ]
    if options["fuse_context"]:
        strides.append(top_stride)
    if options["level_resolution"] == "output_stride":
        strides = [top_stride] * len(strides)
    pyramid = None
    rates = options["dfp_dilation_rates"]
    if pyramid_type == "dense":
        pyramid_options = {}
        if options["dfp_kernel_size"] is not None:
            pyramid_options["kernel_size"] = options["dfp_kernel_size"]
        if rates is not None:
            pyramid_options["dilation_rates"] = rates
        pyramid = DenseFeaturePyramid(
            channels, name="dense_feature_pyramid", **pyramid_options
        )
    elif pyramid_type == "dense_aspp":
        # The authors' rates grow by 3 per level from the coarsest (3, 6, 9
        # on their three levels).
        count = len(strides)
        pyramid = DenseASPPFeaturePyramid(
            filters=channels,
            bottleneck_filters=channels,
            dilation_rates=rates or tuple(3 * (i + 1) for i in range(count)),
            name="dense_feature_pyramid",
        )
    head_options = {
        key: options[key]
        for key in ("levels", "level_resolution", "fuse_context")
        if options[key] is not None
    }
    return FusionHead(
        num_classes,
        fusion=_build_fusion(
            fusion,
            options["gate_channels"],
            options["fusion_order"],
            options["fusion_implementation"],
            strides,
        ),
        pyramid=pyramid,
        channels=channels,
        name="head",
        **head_options,
        **common,
    )


@keras.saving.register_keras_serializable(package="gff_keras")
class GFFNet(Segmenter):
    """Gated Fully Fusion network for semantic segmentation (paper Fig. 3).

    The front door of the library: it builds the parts of a `Segmenter`
    from names and options. By default a dilated ResNet-101 (output stride
    8) feeds PSPNet's pyramid pooling module; a `FusionHead` reduces res2..
    res5 to 256 channels, fuses them with Gated Fully Fusion (eq. 5),
    refines each, spreads the context down with the dense feature pyramid
    (eq. 6), and classifies their concatenation with the context at res2's
    resolution. Logits come out at the input's resolution. An auxiliary
    `FCNHead` on res4 adds its loss (weight 0.4) in training.

    `fusion="none", dfp=False` is the PSPNet baseline (a `ContextHead`);
    `fusion="none", dfp=True` runs the dense feature pyramid on the unfused
    levels; `head="deeplabv3plus"` is DeepLabV3+'s decoder. An option that
    does not apply to the chosen parts raises a `ValueError` naming it.
    Every part can also be given as an instance (`backbone=`, `context=`,
    `head=`, `aux_head=`), and any Keras model with a dict of feature maps
    is a backbone; the saved config holds the parts, not these options.

    Args:
        num_classes: int, number of classes; may be omitted when `head` is
            an instance.
        backbone: a name from `BACKBONES` or a Keras model (see `Segmenter`).
            Defaults to `"resnet101"`.
        context: `"ppm"` (PSPNet), `"aspp"` (DeepLabV3), `"dense_aspp"`
            (DenseASPP) or a layer. Defaults to `"ppm"`.
        fusion: one of `FUSIONS` for the fusion head. Defaults to `"gff"`.
        dfp: the dense feature pyramid of the fusion head: `True` or
            `"dense"` (eq. 6, `DenseFeaturePyramid`), `"dense_aspp"` (the
            authors' code's, `DenseASPPFeaturePyramid`), or `False` /
            `"none"`. Defaults to `True`.
        head: `None` (the fusion head, or the context head for
            `fusion="none", dfp=False`), a name from `HEADS`, or a head
            instance. Defaults to `None`.
        aux_head: bool or a head instance such as `FCNHead`. Defaults to
            `True`.
        output_stride: 8, 16 or 32, for a backbone given by name. Defaults
            to the backbone's (8).
        stem: `"standard"` or `"deep"`, for a ResNet given by name.
        backbone_weights: `"imagenet"` or a weight file for
            `load_imagenet_weights`, loaded at construction (saved with the
            model, not in its config).
        context_channels: output width of the PPM (512) or ASPP (256).
        context_rates: dilation rates of the ASPP (by output stride) or the
            DenseASPP ((3, 6, 12, 18, 24)).
        gate_channels: gate width of `"gff"` and `"gated_fpn"`: 1 (paper)
            or the level width (authors' code).
        fusion_order: `"simultaneous"` (paper) or `"sequential"` (authors'
            code), for `"gff"`.
        fusion_implementation: `"grouped"` or `"reference"`, for `"gff"`.
        dfp_kernel_size: kernel of each `"dense"` pyramid block (1).
        dfp_dilation_rates: one rate per level, coarsest first, with a
            pyramid (`"dense_aspp"`: 3, 6, 9, ... by default).
        fused_channels: width of the reduced levels (256), fusion head.
        level_resolution: `"native"` or `"output_stride"`, fusion head.
        levels: backbone features the fusion head reads (all).
        fuse_context: bool, fuse the context as a level, fusion head.
        dropout: dropout before the classifiers (0.1).
        decoder_level: the low level of `head="deeplabv3plus"` (the finest).
        aux_level: the feature the auxiliary head reads (second-to-last).
        aux_loss_weight: weight of the auxiliary loss (0.4).
        ignore_label: int, label the default loss skips. Defaults to `255`.
        input_shape: image shape. Defaults to `(None, None, 3)`.
        **kwargs: base model arguments such as `name`.

    Raises:
        ValueError: for unknown names, options that do not apply to the
            chosen parts, or parts that do not fit together.

    Example:

    >>> model = GFFNet(num_classes=5, backbone="resnet18")
    >>> model.compile(optimizer="sgd")
    >>> model.predict(keras.ops.zeros((1, 65, 97, 3)), verbose=0).shape
    (1, 65, 97, 5)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020.
    """

    def __init__(
        self,
        num_classes=None,
        backbone="resnet101",
        context="ppm",
        fusion=None,
        dfp=None,
        head=None,
        aux_head=True,
        *,
        output_stride=None,
        stem=None,
        backbone_weights=None,
        context_channels=None,
        context_rates=None,
        gate_channels=None,
        fusion_order=None,
        fusion_implementation=None,
        dfp_kernel_size=None,
        dfp_dilation_rates=None,
        fused_channels=None,
        level_resolution=None,
        levels=None,
        fuse_context=None,
        dropout=None,
        decoder_level=None,
        aux_level=None,
        aux_loss_weight=None,
        ignore_label=255,
        input_shape=(None, None, 3),
        **kwargs,
    ):
        parts = {
            name: keras.saving.deserialize_keras_object(part)
            if isinstance(part, dict)
            else part
            for name, part in (
                ("backbone", backbone),
                ("context", context),
                ("head", head),
                ("aux_head", aux_head),
            )
        }
        options = {
            "output_stride": output_stride,
            "stem": stem,
            "backbone_weights": backbone_weights,
            "context_channels": context_channels,
            "context_rates": context_rates,
            "fusion": fusion,
            "dfp": dfp,
            "gate_channels": gate_channels,
            "fusion_order": fusion_order,
            "fusion_implementation": fusion_implementation,
            "dfp_kernel_size": dfp_kernel_size,
            "dfp_dilation_rates": dfp_dilation_rates,
            "fused_channels": fused_channels,
            "level_resolution": level_resolution,
            "levels": levels,
            "fuse_context": fuse_context,
            "dropout": dropout,
            "decoder_level": decoder_level,
            "aux_level": aux_level,
            "aux_loss_weight": aux_loss_weight,
        }
        head_name = check_options(**parts, **options)
        head = parts["head"]
        if head_name is None:
            if num_classes is not None and num_classes != head.num_classes:
                raise ValueError(
                    f"`num_classes={num_classes}` differs from the head's "
                    f"{head.num_classes}."
                )
            num_classes = head.num_classes
        elif num_classes is None:
            raise ValueError("`num_classes` is required.")

        # === Layers ===
        backbone = _build_backbone(parts["backbone"], output_stride, stem)
        if backbone_weights is not None:
            load_imagenet_weights(backbone, backbone_weights)
        top_stride = backbone.feature_strides[backbone.feature_names[-1]]
        context = _build_context(
            parts["context"], context_channels, context_rates, top_stride
        )
        common = {} if dropout is None else {"dropout": dropout}
        if head_name == "context":
            head = ContextHead(num_classes, name="head", **common)
        elif head_name == "deeplabv3plus":
            head = DeepLabV3PlusHead(
                num_classes, low_level=decoder_level, name="head", **common
            )
        elif head_name == "fusion":
            head = _build_fusion_head(
                num_classes, backbone, top_stride, common, options
            )
        aux_head = parts["aux_head"]
        if aux_head is True:
            aux_head = FCNHead(num_classes, name="aux_head", **common)
        elif not aux_head:
            aux_head = None
        super().__init__(
            backbone=backbone,
            context=context,
            head=head,
            aux_head=aux_head,
            aux_level=aux_level,
            aux_loss_weight=0.4 if aux_loss_weight is None else aux_loss_weight,
            ignore_label=ignore_label,
            input_shape=input_shape,
            **kwargs,
        )

    @classmethod
    def from_preset(cls, preset, num_classes, **kwargs):
        """Builds one of the named architectures in `PRESETS`.

        Args:
            preset: a name from `gff_keras.models.PRESETS`, e.g.
                `"gffnet_resnet101"` or `"deeplabv3plus_gff_dfp_wrn38"`.
            num_classes: int, number of classes.
            **kwargs: other `GFFNet` arguments; they override the preset's
                (e.g. `backbone_weights="imagenet"`, `output_stride=16`).

        Returns:
            A new `GFFNet`, named after the preset unless `name` is given.

        Raises:
            ValueError: for an unknown preset, or an override that does not
                apply to the preset's parts.

        Example:

        >>> model = GFFNet.from_preset("pspnet_resnet18", num_classes=19)
        >>> type(model.head).__name__
        'ContextHead'
        """
        arguments = preset_arguments(preset, num_classes)
        arguments.setdefault("name", preset)
        arguments.update(kwargs)
        return cls(num_classes=num_classes, **arguments)
