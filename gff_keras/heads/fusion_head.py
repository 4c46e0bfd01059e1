import keras
from keras import ops

from gff_keras.heads.level_inputs import check_inputs
from gff_keras.heads.level_inputs import resolve_levels
from gff_keras.layers.conv_bn_relu import ConvBNReLU
from gff_keras.layers.resizing import resize_like

LEVEL_RESOLUTIONS = ("native", "output_stride")


@keras.saving.register_keras_serializable(package="gff_keras")
class FusionHead(keras.layers.Layer):
    """The GFF paper's head (Fig. 3) around any fusion and pyramid part.

    Each backbone level is reduced to `channels` by a 1x1 `ConvBNReLU`,
    the levels are fused by `fusion` (GFF, or a Table 1 baseline), each is
    refined by two 3x3 `ConvBNReLU`, the dense feature pyramid `pyramid`
    spreads the context down the levels, and the context and every level are
    concatenated at the finest level's size for dropout and a 1x1
    classifier.

    - `fuse_context=True` appends the reduced context as the coarsest fused
      level (the authors' DeepLabV3+ code fuses its ASPP output).
    - Top-down fusions (`FPNFusion`, `GatedFPNFusion`: `fusion.top_down`)
      receive the reduced context as the top of their pyramid, the paper's
      five-map FPN baseline; it is not refined or classified as a level.
    - `level_resolution="output_stride"` first resizes every reduced level
      to the context's size (1/8), which is cheaper and classifies at 1/8.

    Args:
        num_classes: int, number of classes.
        fusion: a fusion layer taking and returning a list of levels (e.g.
            `GatedFullyFusion`, `AddFusion`), or `None` to refine the levels
            unfused. Layers with `return_gates=True` return their gates,
            which the head passes on.
        pyramid: a `DenseFeaturePyramid`, or `None`.
        channels: int, width of every reduced and refined level. Defaults to
            `256`.
        levels: backbone feature names to read, finest first, or `None` for
            all of them. Defaults to `None`.
        level_resolution: `"native"` or `"output_stride"`. Defaults to
            `"native"`.
        fuse_context: bool, fuse the context as a level. Defaults to
            `False`.
        dropout: float, dropout before the classifier. Defaults to `0.1`.
        **kwargs: base layer arguments.

    Raises:
        ValueError: for an unknown `level_resolution`, `fuse_context` with a
            top-down fusion, or a head with neither fusion nor pyramid that
            reads fewer than two levels; when built, for inputs that are not
            `[context, level_1, ...]`.

    Call arguments:
        inputs: list `[context, level_1, ..., level_L]`, finest level first.

    Returns:
        `{"logits": [batch, H_1, W_1, num_classes]}` at the finest level's
        size (the context's with `level_resolution="output_stride"`), plus
        `"gates"` (a list of gate maps) when the fusion returns gates.

    Example:

    >>> from gff_keras.layers import GatedFullyFusion
    >>> head = FusionHead(3, fusion=GatedFullyFusion(), channels=8)
    >>> context = keras.ops.ones((1, 8, 8, 16))
    >>> levels = [keras.ops.ones((1, 16, 16, 4)), keras.ops.ones((1, 8, 8, 4))]
    >>> head([context] + levels)["logits"].shape
    (1, 16, 16, 3)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020.
    """

    def __init__(
        self,
        num_classes,
        fusion=None,
        pyramid=None,
        channels=256,
        levels=None,
        level_resolution="native",
        fuse_context=False,
        dropout=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(fusion, dict):
            fusion = keras.saving.deserialize_keras_object(fusion)
        if isinstance(pyramid, dict):
            pyramid = keras.saving.deserialize_keras_object(pyramid)
        if level_resolution not in LEVEL_RESOLUTIONS:
            raise ValueError(
                f"`level_resolution` must be one of {LEVEL_RESOLUTIONS}; "
                f"received {level_resolution!r}."
            )
        if fuse_context and getattr(fusion, "top_down", False):
            raise ValueError(
                f"`fuse_context=True` does not apply to "
                f"{type(fusion).__name__}: a top-down fusion already takes "
                "the context as its top level."
            )
        self.num_classes = num_classes
        self.fusion = fusion
        self.pyramid = pyramid
        self.channels = channels
        self.levels = None if levels is None else tuple(levels)
        self.level_resolution = level_resolution
        self.fuse_context = fuse_context
        self.dropout = dropout
        self.classifier_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="classifier_dropout"
        )
        self.classifier = keras.layers.Conv2D(
            num_classes, 1, dtype=self.dtype_policy, name="classifier"
        )

    @property
    def returns_gates(self):
        return bool(getattr(self.fusion, "return_gates", False))

    @property
    def _raw_gates(self):
        """Whether the fusion's gates read the levels before reduction."""
        return getattr(self.fusion, "gate_input", "reduced") == "raw"

    def feature_levels(self, feature_names):
        """The backbone features this head reads, finest first."""
        return resolve_levels("levels", self.levels, feature_names)

    def _conv(self, kernel_size, name):
        return ConvBNReLU(
            self.channels, kernel_size, dtype=self.dtype_policy, name=name
        )

    def build(self, input_shape):
        check_inputs(self, input_shape)
        context_shape, *level_shapes = [tuple(s) for s in input_shape]
        count = len(level_shapes) + int(self.fuse_context)
        if self.fusion is None and self.pyramid is None and count < 1:
            raise ValueError("`FusionHead` needs at least one level.")

        def reduced(shape):
            return shape[:3] + (self.channels,)

        self.reducers = []
        for index, shape in enumerate(level_shapes):
            reducer = self._conv(1, f"reduce{index}")
            reducer.build(shape)
            self.reducers.append(reducer)
        shapes = [reduced(s) for s in level_shapes]
        self.context_reducer = None
        top_down = getattr(self.fusion, "top_down", False)
        if self.fuse_context or top_down:
            self.context_reducer = self._conv(1, "reduce_context")
            self.context_reducer.build(context_shape)
        if self.fuse_context:
            shapes.append(reduced(context_shape))
        if self.level_resolution == "output_stride":
            shapes = [reduced(context_shape)] * count
        raw_gates = self._raw_gates
        if raw_gates and self.level_resolution == "output_stride":
            raise ValueError(
                "`FusionHead`: gates on the raw levels (`gate_input='raw'`) "
                "need `level_resolution='native'`."
            )
        if self.fusion is not None:
            fusion_shapes = shapes + ([reduced(context_shape)] * top_down)
            # A deserialized part arrives built.
            if not self.fusion.built:
                raw_shapes = list(level_shapes)
                if self.fuse_context:
                    raw_shapes.append(context_shape)
                self.fusion.build(
                    fusion_shapes, *([raw_shapes] if raw_gates else [])
                )
            fused = self.fusion.compute_output_shape(fusion_shapes)
            shapes = [
                tuple(s) for s in (fused[0] if self.returns_gates else fused)
            ]
            shapes = shapes[:count]
        self.refiners = []
        for index, shape in enumerate(shapes):
            first = self._conv(3, f"refine{index}_1")
            second = self._conv(3, f"refine{index}_2")
            first.build(shape)
            second.build(reduced(shape))
            self.refiners.append([first, second])
        shapes = [reduced(s) for s in shapes]
        if self.pyramid is not None:
            if not self.pyramid.built:
                self.pyramid.build([context_shape] + shapes)
            shapes = self.pyramid.compute_output_shape([context_shape] + shapes)
        width = context_shape[-1] + sum(s[-1] for s in shapes)
        self.classifier.build(shapes[0][:3] + (width,))
        self.built = True

    def call(self, inputs, training=None):
        context, *levels = inputs
        x = [
            reducer(level, training=training)
            for reducer, level in zip(self.reducers, levels)
        ]
        if self.fuse_context:
            x.append(self.context_reducer(context, training=training))
        if self.level_resolution == "output_stride":
            x = [resize_like(level, context) for level in x]
        gates = None
        if self.fusion is not None:
            fusion_inputs = x
            if getattr(self.fusion, "top_down", False):
                # The paper's FPN baseline fuses five maps: the context is
                # the top of the pyramid.
                top = self.context_reducer(context, training=training)
                fusion_inputs = x + [top]
            if self._raw_gates:
                raw = levels + ([context] if self.fuse_context else [])
                fused = self.fusion(fusion_inputs, raw, training=training)
            else:
                fused = self.fusion(fusion_inputs, training=training)
            if self.returns_gates:
                fused, gates = fused
            x = list(fused[: len(x)])
        refined = []
        for (first, second), level in zip(self.refiners, x):
            level = first(level, training=training)
            refined.append(second(level, training=training))
        if self.pyramid is not None:
            refined = self.pyramid([context] + refined, training=training)
        # Everything coarser than the finest level is resized to it; the
        # finest level itself is not (its size is only known at run time,
        # so an identity resize would not be skipped).
        finest = refined[0]
        head = [finest] + [
            resize_like(level, finest) for level in [context] + refined[1:]
        ]
        head = ops.concatenate(head, axis=-1)
        head = self.classifier_dropout(head, training=training)
        outputs = {"logits": self.classifier(head)}
        if gates is not None:
            outputs["gates"] = list(gates)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "fusion": keras.saving.serialize_keras_object(self.fusion),
                "pyramid": keras.saving.serialize_keras_object(self.pyramid),
                "channels": self.channels,
                "levels": self.levels,
                "level_resolution": self.level_resolution,
                "fuse_context": self.fuse_context,
                "dropout": self.dropout,
            }
        )
        return config
