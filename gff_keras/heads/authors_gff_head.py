import keras
from keras import ops

from gff_keras.heads.level_inputs import check_inputs
from gff_keras.heads.level_inputs import resolve_levels
from gff_keras.layers.conv_bn_relu import ConvBNReLU
from gff_keras.layers.dense_aspp_feature_pyramid import DenseASPPFeaturePyramid
from gff_keras.layers.gated_fully_fusion import GatedFullyFusion
from gff_keras.layers.resizing import resize_like


@keras.saving.register_keras_serializable(package="gff_keras")
class AuthorsGFFHead(keras.layers.Layer):
    """The GFF + DFP head of the authors' released DeepLabV3+ network.

    `WiderResNetGFFDFPHead` of lxtGH/DecoupleSegNets (`DeepWV3PlusGFFNet`,
    the paper's Table 8 model), layer for layer, in its order:

    1. the context (their ASPP's 1280-channel concatenation) is projected
       by a 3x3 convolution without bias, BatchNorm or ReLU (`bot_aspp`);
    2. the backbone levels and the projected context are each reduced by a
       1x1 `ConvBNReLU` to `channels`;
    3. `fusion` fuses the reduced levels, finest first, the context last,
       with gates read from the unreduced maps (their default: sequential
       Gated Fully Fusion with `channels`-wide gates on the raw features,
       `gate_input="raw"`);
    4. `pyramid` runs DenseASPP-style blocks from the fused context down,
       all at the finest level's size (their default:
       `DenseASPPFeaturePyramid`, rates 3, 6, 9);
    5. the blocks' outputs and the reduced, unfused context are
       concatenated, `[y_context, context, y_{L}, ..., y_1]`, and classified
       by two 3x3 `ConvBNReLU` of `classifier_channels` and a 1x1
       convolution without bias.

    Every resize samples with PyTorch's `align_corners=True`, and
    `align_corners` tells the `Segmenter` to resize the logits the same
    way. BatchNorm epsilon is PyTorch's 1e-5.

    Args:
        num_classes: int, number of classes.
        levels: the backbone features the head fuses, finest first, or
            `None` for all. Defaults to `("mod2", "mod5")`.
        channels: int, width of the reduced levels. Defaults to `128`.
        context_channels: int, width of the context projection. Defaults
            to `256`.
        classifier_channels: int, width of the classifier's 3x3
            convolutions. Defaults to `256`.
        fusion: a fusion layer taking `(reduced, raw)` level lists, or
            `None` for the authors' (see above).
        pyramid: a pyramid layer taking `[context, levels...]`, or `None`
            for the authors' (see above).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list `[context, level_1, ..., level_L]`.

    Returns:
        `{"logits": ..., "gates": [...]}`, the logits at the finest level's
        size.

    Example:

    >>> head = AuthorsGFFHead(3, levels=None, channels=8, context_channels=8,
    ...                       classifier_channels=8)
    >>> context = keras.ops.ones((1, 4, 4, 20))
    >>> levels = [keras.ops.ones((1, 16, 16, 4)), keras.ops.ones((1, 4, 4, 6))]
    >>> head([context] + levels)["logits"].shape
    (1, 16, 16, 3)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020;
        their code, github.com/lxtGH/DecoupleSegNets, `network/gffnets.py`.
    """

    align_corners = True

    def __init__(
        self,
        num_classes,
        levels=("mod2", "mod5"),
        channels=128,
        context_channels=256,
        classifier_channels=256,
        fusion=None,
        pyramid=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(fusion, dict):
            fusion = keras.saving.deserialize_keras_object(fusion)
        if isinstance(pyramid, dict):
            pyramid = keras.saving.deserialize_keras_object(pyramid)
        if fusion is None:
            fusion = GatedFullyFusion(
                gate_channels=channels,
                order="sequential",
                return_gates=True,
                gate_input="raw",
                align_corners=True,
                dtype=self.dtype_policy,
                name="fusion",
            )
        if pyramid is None:
            pyramid = DenseASPPFeaturePyramid(
                filters=channels,
                bottleneck_filters=channels,
                dilation_rates=(3, 6, 9),
                align_corners=True,
                dtype=self.dtype_policy,
                name="dense_feature_pyramid",
            )
        self.num_classes = num_classes
        self.levels = None if levels is None else tuple(levels)
        self.channels = channels
        self.context_channels = context_channels
        self.classifier_channels = classifier_channels
        self.fusion = fusion
        self.pyramid = pyramid
        self.context_projection = keras.layers.Conv2D(
            context_channels,
            3,
            padding="same",
            use_bias=False,
            dtype=self.dtype_policy,
            name="context_projection",
        )
        self.classifier_convs = [
            ConvBNReLU(
                classifier_channels,
                3,
                dtype=self.dtype_policy,
                name=f"classifier_conv{index}",
            )
            for index in (1, 2)
        ]
        self.classifier = keras.layers.Conv2D(
            num_classes,
            1,
            use_bias=False,
            dtype=self.dtype_policy,
            name="classifier",
        )

    def feature_levels(self, feature_names):
        """The backbone features this head fuses, finest first."""
        return resolve_levels("levels", self.levels, feature_names)

    def build(self, input_shape):
        check_inputs(self, input_shape)
        context_shape, *level_shapes = [tuple(s) for s in input_shape]
        self.context_projection.build(context_shape)
        raw_shapes = level_shapes + [
            context_shape[:3] + (self.context_channels,)
        ]
        self.reducers = []
        for index, shape in enumerate(raw_shapes):
            reducer = ConvBNReLU(
                self.channels, 1, dtype=self.dtype_policy, name=f"reduce{index}"
            )
            reducer.build(shape)
            self.reducers.append(reducer)
        reduced = [shape[:3] + (self.channels,) for shape in raw_shapes]
        # A deserialized part arrives built.
        if not self.fusion.built:
            self.fusion.build(reduced, raw_shapes)
        if not self.pyramid.built:
            self.pyramid.build([reduced[-1]] + reduced)
        pyramid_shapes = self.pyramid.compute_output_shape(
            [reduced[-1]] + reduced
        )
        width = self.channels + sum(shape[-1] for shape in pyramid_shapes)
        finest = level_shapes[0][:3]
        self.classifier_convs[0].build(finest + (width,))
        self.classifier_convs[1].build(finest + (self.classifier_channels,))
        self.classifier.build(finest + (self.classifier_channels,))
        self.built = True

    def call(self, inputs, training=None):
        context, *levels = inputs
        projected = self.context_projection(context)
        raw = levels + [projected]
        reduced = [
            reducer(x, training=training)
            for reducer, x in zip(self.reducers, raw)
        ]
        fused, gates = self.fusion(reduced, raw, training=training)
        # The pyramid's context input is not read by the authors' blocks.
        pyramid = self.pyramid([reduced[-1]] + list(fused), training=training)
        context_up = resize_like(reduced[-1], pyramid[0], self.align_corners)
        x = ops.concatenate(
            [pyramid[-1], context_up] + list(pyramid[-2::-1]), axis=-1
        )
        for conv in self.classifier_convs:
            x = conv(x, training=training)
        return {"logits": self.classifier(x), "gates": list(gates)}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "levels": self.levels,
                "channels": self.channels,
                "context_channels": self.context_channels,
                "classifier_channels": self.classifier_channels,
                "fusion": keras.saving.serialize_keras_object(self.fusion),
                "pyramid": keras.saving.serialize_keras_object(self.pyramid),
            }
        )
        return config
