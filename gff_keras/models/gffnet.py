import numbers

import keras
import tensorflow as tf

from gff_keras.backbones.dilated_densenet import DilatedDenseNet
from gff_keras.backbones.dilated_resnet import DilatedResNet
from gff_keras.backbones.imagenet_weights import load_imagenet_weights
from gff_keras.backbones.wider_resnet38 import WiderResNet38
from gff_keras.layers.add_fusion import AddFusion
from gff_keras.layers.atrous_spatial_pyramid_pooling import (
    AtrousSpatialPyramidPooling,
)
from gff_keras.layers.bilinear_resize import BilinearResize
from gff_keras.layers.concat_fusion import ConcatFusion
from gff_keras.layers.conv_bn_relu import ConvBNReLU
from gff_keras.layers.dense_atrous_spatial_pyramid_pooling import (
    DenseAtrousSpatialPyramidPooling,
)
from gff_keras.layers.dense_feature_pyramid import DenseFeaturePyramid
from gff_keras.layers.fpn_fusion import FPNFusion
from gff_keras.layers.gated_fpn_fusion import GatedFPNFusion
from gff_keras.layers.gated_fully_fusion import GatedFullyFusion
from gff_keras.layers.pyramid_pooling import PyramidPooling
from gff_keras.models.presets import preset_arguments
from gff_keras.training.segmentation_loss import SegmentationLoss

FUSIONS = ("none", "concat", "add", "fpn", "gated_fpn", "gff")
GATED_FUSIONS = ("gff", "gated_fpn")
LEVEL_RESOLUTIONS = ("native", "output_stride")
CONTEXTS = ("ppm", "aspp", "dense_aspp")
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
BACKBONE_CLASSES = (DilatedResNet, DilatedDenseNet, WiderResNet38)
AUX_HEAD_CHANNELS = 256
ASPP_CHANNELS = 256
# DeepLabV3+'s decoder: low-level reduction and refinement widths.
DECODER_LOW_LEVEL_CHANNELS = 48
DECODER_CHANNELS = 256
# DeepLab's ASPP rates for the stride of the map it reads.
ASPP_RATES = {8: (12, 24, 36), 16: (6, 12, 18), 32: (3, 6, 9)}


def _backbone_from_name(name, output_stride, stem):
    if name not in BACKBONES:
        raise ValueError(
            f"`backbone` must be a backbone model or one of {BACKBONES}; "
            f"received {name!r}."
        )
    if name.startswith("resnet"):
        return DilatedResNet(
            depth=int(name.removeprefix("resnet")),
            output_stride=output_stride,
            stem=stem,
            name="backbone",
        )
    if name.startswith("densenet"):
        return DilatedDenseNet(
            depth=int(name.removeprefix("densenet")),
            output_stride=output_stride,
            name="backbone",
        )
    return WiderResNet38(output_stride=output_stride, name="backbone")


def _check_level_names(argument, names, available):
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise ValueError(
            f"`{argument}` must name backbone features from {available}; "
            f"received {names!r}."
        )


@keras.saving.register_keras_serializable(package="gff_keras")
class GFFNet(keras.Model):
    """Gated Fully Fusion network for semantic segmentation (paper Fig. 3).

    A dilated ResNet feeds PSPNet's pyramid pooling module (PPM) at the top;
    res2..res5 are reduced to `fused_channels` by 1x1 `ConvBNReLU`, fused
    (`fusion`), refined by two 3x3 `ConvBNReLU` per level, passed through the
    dense feature pyramid (`dfp`) and concatenated with the PPM output at the
    finest level's resolution for a dropout + 1x1 classifier. Logits are
    resized bilinearly to the input's resolution.

    `fusion="none", dfp=False` is the PSPNet baseline: PPM output, dropout,
    1x1 classifier at 1/8. `fusion="none", dfp=True` runs the dense feature
    pyramid on the reduced, refined levels without fusing them.

    When `aux_head=True`, calling the model with `training=True` returns
    `(logits, aux_logits)`, where the auxiliary FCN head reads res4 (the
    paper's "stage 3"); inference returns only the logits. `compile` without a
    loss uses `SegmentationLoss(ignore_label)`, and the auxiliary loss is
    added with weight `aux_loss_weight` (0.4 in the paper), so
    `model.compile(optimizer=...)` then `model.fit(dataset)` on
    `(images, labels)` batches trains it.

    Inputs are float images `[batch, H, W, 3]` of any size, preprocessed like
    `keras.applications.resnet` when ImageNet weights are used.

    Args:
        num_classes: int, number of classes.
        backbone: a name from `BACKBONES` (`"resnet18"` ... `"resnet152"`,
            `"densenet121"`, `"densenet169"`, `"densenet201"`,
            `"wider_resnet38"`) or a `DilatedResNet`, `DilatedDenseNet` or
            `WiderResNet38`. Defaults to `"resnet101"`.
        fusion: one of `"none"`, `"concat"`, `"add"`, `"fpn"`,
            `"gated_fpn"`, `"gff"`. Defaults to `"gff"`.
        dfp: bool, add the dense feature pyramid. Defaults to `True`.
        aux_head: bool, add the auxiliary head used in training. Defaults to
            `True`.
        output_stride: int, backbone output stride when `backbone` is a name.
            Defaults to `8`.
        stem: `"standard"` or `"deep"`, when `backbone` is a name. Defaults
            to `"standard"`.
        backbone_weights: `None`, `"imagenet"` or a weight file for
            `load_imagenet_weights`, applied at construction. Defaults to
            `None`. Not stored in the config (the weights are saved with the
            model).
        fused_channels: int, width of every fused level. Defaults to `256`.
        ppm_channels: int, width of the PPM output (`context="ppm"`).
            Defaults to `512`.
        gate_channels: int, gate channels of the gated fusions: `1` (paper)
            or `fused_channels` (authors' code). Defaults to `1`.
        fusion_order: `"simultaneous"` (paper) or `"sequential"` (authors'
            code), for `fusion="gff"`. Defaults to `"simultaneous"`.
        fusion_implementation: `"grouped"` or `"reference"`, how
            `GatedFullyFusion` computes eq. 5 for `fusion="gff"`: grouped
            sums the levels that share a resolution before resizing (the
            same result with fewer resizes). Defaults to `"grouped"`.
        level_resolution: `"native"` runs fusion and the per-level
            convolutions at each level's own resolution (the paper's text);
            `"output_stride"` first resizes every level to res5's size,
            which is cheaper and classifies at 1/8. Defaults to `"native"`.
        dfp_kernel_size: int, kernel of each dense feature pyramid block.
            Defaults to `1`.
        dropout: float, dropout before the classifiers. Defaults to `0.1`.
        aux_loss_weight: float, weight of the auxiliary loss. Defaults to
            `0.4`.
        ignore_label: int, label skipped by the default loss. Defaults to
            `255`.
        input_shape: tuple, image shape. Defaults to `(None, None, 3)`.
        context: context module on the last backbone feature: `"ppm"`
            (PSPNet's pyramid pooling), `"aspp"` (DeepLabV3's atrous
            spatial pyramid pooling) or `"dense_aspp"` (DenseASPP).
            Defaults to `"ppm"`.
        context_channels: int or `None`, output width of the PPM or ASPP;
            `None` uses `ppm_channels` for the PPM and 256 for the ASPP
            (DenseASPP's width follows from its growth). Defaults to `None`.
        context_rates: tuple of dilation rates for the ASPP or DenseASPP, or
            `None` for their defaults (ASPP: (12, 24, 36) on a 1/8 map,
            (6, 12, 18) on 1/16; DenseASPP: (3, 6, 12, 18, 24)). Defaults
            to `None`.
        levels: tuple of backbone feature names to fuse, finest first, or
            `None` for all of the backbone's `feature_names`. Defaults to
            `None`.
        fuse_context: bool, append the context output (reduced to
            `fused_channels`) as the coarsest fused level, as the authors'
            DeepLabV3+ code does with its ASPP. Not with the FPN fusions,
            which already use the context as their top. Defaults to
            `False`.
        aux_level: backbone feature name read by the auxiliary head, or
            `None` for the second-to-last feature (ResNet's res4, the
            paper's "stage 3"). Defaults to `None`.
        decoder_level: backbone feature name for DeepLabV3+'s decoder (48
            channel 1x1 reduction, concatenated with the upsampled context,
            two 3x3 `ConvBNReLU` of 256), or `None`. Only with
            `fusion="none"` and `dfp=False`. Defaults to `None`.
        dfp_dilation_rates: tuple of one dilation rate per fused level for
            the dense feature pyramid blocks, coarsest first, or `None`.
            Defaults to `None`.
        **kwargs: base model arguments such as `name`.

    Raises:
        ValueError: for an unknown backbone, fusion, order, resolution or
            context, feature names the backbone does not have, or options
            that do not combine.

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
        num_classes,
        backbone="resnet101",
        fusion="gff",
        dfp=True,
        aux_head=True,
        output_stride=8,
        stem="standard",
        backbone_weights=None,
        fused_channels=256,
        ppm_channels=512,
        gate_channels=1,
        fusion_order="simultaneous",
        fusion_implementation="grouped",
        level_resolution="native",
        dfp_kernel_size=1,
        dropout=0.1,
        aux_loss_weight=0.4,
        ignore_label=255,
        input_shape=(None, None, 3),
        context="ppm",
        context_channels=None,
        context_rates=None,
        levels=None,
        fuse_context=False,
        aux_level=None,
        decoder_level=None,
        dfp_dilation_rates=None,
        **kwargs,
    ):
        if context not in CONTEXTS:
            raise ValueError(
                f"`context` must be one of {CONTEXTS}; received {context!r}."
            )
        if fuse_context and fusion in ("fpn", "gated_fpn"):
            raise ValueError(
                f"`fuse_context=True` does not apply to fusion={fusion!r}: "
                "the FPN fusions already take the context as their top level."
            )
        if decoder_level is not None and (fusion != "none" or dfp):
            raise ValueError(
                "`decoder_level` (DeepLabV3+'s decoder) replaces the fusion "
                "head; it needs fusion='none' and dfp=False, received "
                f"fusion={fusion!r}, dfp={dfp}."
            )
        # Options that would otherwise be accepted and silently ignored.
        ignored = {
            "context_rates": context_rates is not None and context == "ppm",
            "context_channels": context_channels is not None
            and context == "dense_aspp",
            "levels": levels is not None and fusion == "none" and not dfp,
            "fuse_context": fuse_context and fusion == "none" and not dfp,
            "dfp_dilation_rates": dfp_dilation_rates is not None and not dfp,
            "stem": stem != "standard"
            and isinstance(backbone, str)
            and not backbone.startswith("resnet"),
        }
        for argument, unused in ignored.items():
            if unused:
                raise ValueError(
                    f"`{argument}` has no effect with context={context!r}, "
                    f"fusion={fusion!r}, dfp={dfp}, backbone={backbone!r}; "
                    "leave it at its default."
                )
        if fusion not in FUSIONS:
            raise ValueError(
                f"`fusion` must be one of {FUSIONS}; received {fusion!r}."
            )
        if level_resolution not in LEVEL_RESOLUTIONS:
            raise ValueError(
                f"`level_resolution` must be one of {LEVEL_RESOLUTIONS}; "
                f"received {level_resolution!r}."
            )
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        backbone_name = backbone if isinstance(backbone, str) else None

        # === Layers ===
        if backbone_name is not None:
            backbone = _backbone_from_name(backbone, output_stride, stem)
        if not isinstance(backbone, BACKBONE_CLASSES):
            raise ValueError(
                "`backbone` must be a DilatedResNet, DilatedDenseNet, "
                f"WiderResNet38 or one of {BACKBONES}; received "
                f"{type(backbone).__name__}."
            )
        feature_names = tuple(backbone.feature_names)
        level_names = feature_names if levels is None else tuple(levels)
        _check_level_names("levels", level_names, feature_names)
        strides = [backbone.feature_strides[n] for n in level_names]
        if strides != sorted(strides):
            raise ValueError(
                "`levels` must go from the finest feature to the coarsest; "
                f"received {level_names} with strides {tuple(strides)}."
            )
        aux_level = aux_level or feature_names[-2]
        _check_level_names("aux_level", (aux_level,), feature_names)
        if decoder_level is not None:
            _check_level_names("decoder_level", (decoder_level,), feature_names)
        if backbone_weights is not None:
            load_imagenet_weights(backbone, backbone_weights)
        self.backbone = backbone
        top_stride = backbone.feature_strides[feature_names[-1]]
        self.context_module = self._make_context(
            context,
            context_channels or ppm_channels,
            context_channels or ASPP_CHANNELS,
            context_rates,
            top_stride,
        )
        multi_level = fusion != "none" or dfp
        level_strides = [backbone.feature_strides[n] for n in level_names]
        if fuse_context:
            level_strides.append(top_stride)
        if level_resolution == "output_stride":
            level_strides = [top_stride] * len(level_strides)
        self.fusion_layer = self._make_fusion(
            fusion,
            gate_channels,
            fusion_order,
            fusion_implementation,
            level_strides,
        )
        self.dense_feature_pyramid = (
            DenseFeaturePyramid(
                fused_channels,
                kernel_size=dfp_kernel_size,
                dilation_rates=dfp_dilation_rates,
                name="dense_feature_pyramid",
            )
            if dfp
            else None
        )
        self.classifier_dropout = keras.layers.Dropout(
            dropout, name="classifier_dropout"
        )
        self.classifier = keras.layers.Conv2D(num_classes, 1, name="classifier")
        # Logits leave the model in float32 under mixed precision.
        self.logits_resize = BilinearResize(dtype="float32", name="logits")
        self.aux_head = (
            keras.Sequential(
                [
                    ConvBNReLU(AUX_HEAD_CHANNELS, 3, name="aux_conv"),
                    keras.layers.Dropout(dropout, name="aux_dropout"),
                    keras.layers.Conv2D(num_classes, 1, name="aux_classifier"),
                ],
                name="aux_head",
            )
            if aux_head
            else None
        )

        # === Functional Model ===
        images = keras.Input(shape=input_shape, name="images")
        features = backbone(images)
        top = features[feature_names[-1]]
        context_features = self.context_module(top)
        gates = []
        if multi_level:
            names = list(level_names)
            reduced = [
                ConvBNReLU(fused_channels, 1, name=f"reduce_{name}")(
                    features[name]
                )
                for name in names
            ]
            if fuse_context:
                # The authors' DeepLabV3+ code fuses the ASPP output as the
                # coarsest level.
                names.append("context")
                reduced.append(
                    ConvBNReLU(fused_channels, 1, name="reduce_context")(
                        context_features
                    )
                )
            if level_resolution == "output_stride":
                reduced = [
                    BilinearResize(name=f"resize_{name}")(x, top)
                    for name, x in zip(names, reduced)
                ]
            fused = reduced
            if fusion in ("fpn", "gated_fpn"):
                # The paper's FPN baseline fuses five maps: the PPM context
                # is the top of the pyramid.
                context_level = ConvBNReLU(
                    fused_channels, 1, name="reduce_context"
                )(context_features)
                fused = self.fusion_layer(reduced + [context_level])
            elif self.fusion_layer is not None:
                fused = self.fusion_layer(reduced)
            if fusion in GATED_FUSIONS:
                fused, gates = fused
            fused = fused[: len(names)]
            refined = []
            for name, x in zip(names, fused):
                for index in (1, 2):
                    x = ConvBNReLU(
                        fused_channels, 3, name=f"refine_{name}_{index}"
                    )(x)
                refined.append(x)
            if self.dense_feature_pyramid is not None:
                refined = self.dense_feature_pyramid(
                    [context_features] + refined
                )
            # Everything coarser than the finest level is resized to it; the
            # finest level itself is not (its size is only known at run
            # time, so an identity resize would not be skipped).
            finest, coarser = refined[0], [context_features] + refined[1:]
            head = [finest] + [
                BilinearResize(name=f"head_resize{index}")(x, finest)
                for index, x in enumerate(coarser)
            ]
            head = keras.layers.Concatenate(name="head_concat")(head)
        elif decoder_level is not None:
            low_level = ConvBNReLU(
                DECODER_LOW_LEVEL_CHANNELS, 1, name="decoder_reduce"
            )(features[decoder_level])
            head = keras.layers.Concatenate(name="decoder_concat")(
                [
                    low_level,
                    BilinearResize(name="decoder_resize")(
                        context_features, low_level
                    ),
                ]
            )
            for index in (1, 2):
                head = ConvBNReLU(
                    DECODER_CHANNELS, 3, name=f"decoder_conv{index}"
                )(head)
        else:
            head = context_features
        logits = self.classifier(self.classifier_dropout(head))
        logits = self.logits_resize(logits, images)
        aux_logits = None
        if self.aux_head is not None:
            aux_logits = BilinearResize(dtype="float32", name="aux_logits")(
                self.aux_head(features[aux_level]), images
            )
        super().__init__(inputs=images, outputs=logits, **kwargs)

        # Views of the same graph (no extra weights): training also returns
        # the auxiliary logits, and the gate maps can be read out.
        self._training_view = (
            keras.Model(
                images, [logits, aux_logits], name=f"{self.name}_training"
            )
            if aux_logits is not None
            else None
        )
        self._gate_view = (
            keras.Model(images, [logits, gates], name=f"{self.name}_gates")
            if gates
            else None
        )

        # === Config ===
        self.num_classes = num_classes
        self.backbone_name = backbone_name
        self.fusion = fusion
        self.dfp = dfp
        self.use_aux_head = aux_head
        self.output_stride = output_stride
        self.stem = stem
        self.fused_channels = fused_channels
        self.ppm_channels = ppm_channels
        self.gate_channels = gate_channels
        self.fusion_order = fusion_order
        self.fusion_implementation = fusion_implementation
        self.level_resolution = level_resolution
        self.dfp_kernel_size = dfp_kernel_size
        self.dropout = dropout
        self.aux_loss_weight = aux_loss_weight
        self.ignore_label = ignore_label
        self.image_shape = tuple(input_shape)
        self.context = context
        self.context_channels = context_channels
        self.context_rates = (
            None if context_rates is None else tuple(context_rates)
        )
        self.levels = None if levels is None else tuple(levels)
        self.fuse_context = fuse_context
        self.aux_level = aux_level
        self.decoder_level = decoder_level
        self.dfp_dilation_rates = (
            None if dfp_dilation_rates is None else tuple(dfp_dilation_rates)
        )
        self._segmentation_loss = None

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
            ValueError: for an unknown preset.

        Example:

        >>> model = GFFNet.from_preset("pspnet_resnet18", num_classes=19)
        >>> model.fusion, model.dfp
        ('none', False)
        """
        arguments = preset_arguments(preset)
        arguments.setdefault("name", preset)
        arguments.update(kwargs)
        return cls(num_classes=num_classes, **arguments)

    @staticmethod
    def _make_context(context, ppm_channels, aspp_channels, rates, stride):
        if context == "ppm":
            return PyramidPooling(ppm_channels, name="pyramid_pooling")
        if context == "aspp":
            return AtrousSpatialPyramidPooling(
                aspp_channels,
                rates=rates or ASPP_RATES.get(stride, ASPP_RATES[8]),
                name="aspp",
            )
        if rates is None:
            return DenseAtrousSpatialPyramidPooling(name="dense_aspp")
        return DenseAtrousSpatialPyramidPooling(rates=rates, name="dense_aspp")

    @staticmethod
    def _make_fusion(
        fusion, gate_channels, fusion_order, implementation, level_strides
    ):
        if fusion == "gff":
            # The strides let the fusion group levels of one resolution
            # although the model's input size is unknown when it is built.
            return GatedFullyFusion(
                gate_channels=gate_channels,
                order=fusion_order,
                return_gates=True,
                implementation=implementation,
                level_strides=level_strides,
                name="fusion",
            )
        if fusion == "gated_fpn":
            return GatedFPNFusion(
                gate_channels=gate_channels, return_gates=True, name="fusion"
            )
        layers = {"concat": ConcatFusion, "add": AddFusion, "fpn": FPNFusion}
        return layers[fusion](name="fusion") if fusion in layers else None

    def call(self, inputs, training=None, mask=None, **kwargs):
        if training and self._training_view is not None:
            logits, aux_logits = self._training_view(inputs, training=True)
            return logits, aux_logits
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def gate_maps(self, images):
        """Returns `(logits, gates)` for a batch, in inference mode.

        Args:
            images: `[batch, H, W, 3]` preprocessed images.

        Returns:
            The logits and the list of gate maps, one per fused level
            (finest first; `gated_fpn` adds the context level last), each
            `[batch, H_i, W_i, gate_channels]` in `[0, 1]`.

        Raises:
            ValueError: if the model's fusion has no gates.
        """
        if self._gate_view is None:
            raise ValueError(
                f"fusion={self.fusion!r} has no gates; gate maps exist for "
                f"{GATED_FUSIONS}."
            )
        logits, gates = self._gate_view(images, training=False)
        return logits, list(gates)

    def predict_with_zeroed_gate(self, images, level):
        """Returns the logits with the gates of `level` set to 0 (Fig. 7b).

        "Setting `G_z` to 0" substitutes `G_z = 0` everywhere in eq. 5: level
        `z` sends nothing to the other levels and keeps its own features
        without the self-gate boost while receiving every other level's
        gated features with weight one (see `GatedFullyFusion`). The
        weights and the saved config are not touched; the switch is removed
        again before this method returns, even on error.

        Runs eagerly (like `gate_maps`), in inference mode.

        Args:
            images: `[batch, H, W, 3]` preprocessed images.
            level: int index of the gate to zero (0 is the finest, as in
                `gate_maps`), or a sequence of indices to zero together.

        Returns:
            float32 logits `[batch, H, W, num_classes]`.

        Raises:
            ValueError: if the fusion has no gates or a level is out of
                range.

        Example:

        >>> model = GFFNet(4, backbone="resnet18", output_stride=32)
        >>> images = keras.ops.zeros((1, 64, 64, 3))
        >>> tuple(model.predict_with_zeroed_gate(images, 0).shape)
        (1, 64, 64, 4)
        """
        if self._gate_view is None:
            raise ValueError(
                f"fusion={self.fusion!r} has no gates to zero; gates exist "
                f"for {GATED_FUSIONS}."
            )
        levels = (
            (level,) if isinstance(level, numbers.Integral) else tuple(level)
        )
        num_gates = len(self.fusion_layer.gate_convs)
        for index in levels:
            if (
                not isinstance(index, numbers.Integral)
                or not 0 <= index < num_gates
            ):
                raise ValueError(
                    f"`level` must be a gate index in 0..{num_gates - 1}; "
                    f"received {level!r}."
                )
        previous = self.fusion_layer.zeroed_levels
        self.fusion_layer.zeroed_levels = tuple(int(i) for i in levels)
        try:
            logits = self._gate_view(images, training=False)[0]
        finally:
            self.fusion_layer.zeroed_levels = previous
        return logits

    def parameter_count(self, include_aux_head=False, trainable_only=True):
        """Counts parameters the way the paper's Table 3 does.

        Args:
            include_aux_head: bool, count the auxiliary head (used only in
                training). Defaults to `False`, as Table 3.
            trainable_only: bool, skip BatchNorm moving statistics, matching
                PyTorch's `parameters()`. Defaults to `True`.

        Returns:
            int, the number of scalars.
        """
        weights = self.trainable_weights if trainable_only else self.weights
        excluded = set()
        if self.aux_head is not None and not include_aux_head:
            excluded = {id(w) for w in self.aux_head.weights}
        return int(
            sum(
                int(keras.ops.size(w)) for w in weights if id(w) not in excluded
            )
        )

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Configures training; without `loss`, uses `SegmentationLoss`.

        Args:
            optimizer: as `keras.Model.compile`.
            loss: a loss for the logits, or `None` for
                `SegmentationLoss(ignore_label=self.ignore_label)`. The same
                loss is applied to the auxiliary logits, weighted by
                `aux_loss_weight`.
            **kwargs: other `keras.Model.compile` arguments.
        """
        if loss is None:
            loss = SegmentationLoss(ignore_label=self.ignore_label)
        if isinstance(loss, (str, dict, list, tuple)):
            loss = keras.losses.get(loss)
        self._segmentation_loss = loss
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        aux_logits = None
        if isinstance(y_pred, (tuple, list)):
            y_pred, aux_logits = y_pred
        loss = super().compute_loss(
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=training,
        )
        if aux_logits is not None and self._segmentation_loss is not None:
            aux_loss = self._segmentation_loss(y, aux_logits, sample_weight)
            loss = loss + self.aux_loss_weight * keras.ops.mean(aux_loss)
        return loss

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3 builds the model from a first batch that it averages over
        # all replicas with `strategy.reduce`, which fails in eager mode
        # under MultiWorkerMirroredStrategy (keras-team/keras#20585). The
        # build needs only shapes and dtypes: one local replica's values
        # serve. (TF API: Keras has no notion of distributed values.)
        strategy = getattr(self, "_distribute_strategy", None)
        if iterator is not None and isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):

            def first_replica(value):
                return strategy.experimental_local_results(value)[0]

            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(first_replica, next(batches))
                break
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, data):
        return self._multi_worker_logs(super().train_step(data))

    def test_step(self, data):
        return self._multi_worker_logs(super().test_step(data))

    def _multi_worker_logs(self, logs):
        # Under MultiWorkerMirroredStrategy Keras 3 averages the step's
        # logs with `strategy.reduce("MEAN", value, axis=0)`, which rejects
        # scalars; as vectors of one value they average to the same scalar.
        if not isinstance(
            self._distribute_strategy,
            tf.distribute.MultiWorkerMirroredStrategy,
        ):
            return logs
        return tf.nest.map_structure(
            lambda value: (
                keras.ops.reshape(value, (1,))
                if len(keras.ops.shape(value)) == 0
                else value
            ),
            logs,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, (tuple, list)):
            y_pred = y_pred[0]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self):
        backbone = self.backbone_name
        if backbone is None:
            backbone = keras.saving.serialize_keras_object(self.backbone)
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "backbone": backbone,
            "fusion": self.fusion,
            "dfp": self.dfp,
            "aux_head": self.use_aux_head,
            "output_stride": self.output_stride,
            "stem": self.stem,
            "fused_channels": self.fused_channels,
            "ppm_channels": self.ppm_channels,
            "gate_channels": self.gate_channels,
            "fusion_order": self.fusion_order,
            "fusion_implementation": self.fusion_implementation,
            "level_resolution": self.level_resolution,
            "dfp_kernel_size": self.dfp_kernel_size,
            "dropout": self.dropout,
            "aux_loss_weight": self.aux_loss_weight,
            "ignore_label": self.ignore_label,
            "input_shape": self.image_shape,
            "context": self.context,
            "context_channels": self.context_channels,
            "context_rates": self.context_rates,
            "levels": self.levels,
            "fuse_context": self.fuse_context,
            "aux_level": self.aux_level,
            "decoder_level": self.decoder_level,
            "dfp_dilation_rates": self.dfp_dilation_rates,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
