import keras

from gff_keras.backbones.backbone import Backbone
from gff_keras.backbones.dilation import OUTPUT_STRIDES
from gff_keras.backbones.dilation import dilation_plan
from gff_keras.layers.conv_bn_relu import ConvBNReLU
from gff_keras.layers.dilated_conv2d import DilatedConv2D
from gff_keras.layers.fused_batch_normalization import FusedBatchNormalization
from gff_keras.layers.small_map_conv2d import SmallMapConv2D

# (block type, blocks per stage) for each depth, as in He et al. 2016.
RESNET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)
FEATURE_NAMES = ("res2", "res3", "res4", "res5")
STEMS = ("standard", "deep")
# keras.applications.ResNet uses this epsilon; keeping it makes copied
# weights reproduce its features exactly.
BN_EPSILON = 1.001e-5


# ResNet's stem (7x7 convolution and max pool) strides 4; res2 keeps it and
# res3..res5 halve the size in their first block.
STEM_STRIDE = 4
STAGE_STRIDES = (1, 2, 2, 2)


@keras.saving.register_keras_serializable(package="gff_keras")
class DilatedResNet(Backbone):
    """ResNet v1 whose last stages trade stride for dilation.

    A functional model mapping images to the outputs of the four residual
    stages, `{"res2", "res3", "res4", "res5"}` (strides 4, 8, 16, 32 for the
    plain network). `output_stride=8` keeps res4 and res5 at 1/8 of the input
    by dilating their 3x3 convolutions by 2 and 4; `16` dilates only res5.
    The attribute `feature_names` lists the outputs finest first and
    `feature_strides` maps each output name to its stride.
    The first block of a dilated stage uses the dilation of the stage before
    (the stride it replaces), as torchvision's `replace_stride_with_dilation`
    and mmsegmentation do.

    With `stem="standard"` every layer name, shape and order matches
    `keras.applications.ResNet50/101/152` (7x7 stem, stride on the first 1x1
    convolution of a bottleneck, biased convolutions), so
    `load_imagenet_weights` copies ImageNet weights one to one, and at
    `output_stride=32` the features equal keras.applications'. `stem="deep"`
    replaces the 7x7 convolution with PSPNet's three 3x3 convolutions
    (64, 64, 128 channels). ResNet-18/34 use basic blocks with the stride on
    the first 3x3 convolution.

    Inputs are images preprocessed like `keras.applications.resnet`
    ("caffe": BGR, mean subtracted, not scaled) when ImageNet weights are
    used.

    BatchNorm layers use `synchronized=True` so that they compute statistics
    over the global batch under a distribution strategy.

    Args:
        depth: int, one of 18, 34, 50, 101, 152. Defaults to `50`.
        output_stride: int, 8, 16 or 32. Defaults to `8`.
        stem: `"standard"` or `"deep"`. Defaults to `"standard"`.
        bn_momentum: BatchNorm momentum. Defaults to `0.9` (PyTorch's 0.1).
        input_shape: tuple, image shape. Defaults to `(None, None, 3)`.
        **kwargs: base model arguments such as `name`.

    Raises:
        ValueError: for an unknown depth, output stride or stem.

    Example:

    >>> backbone = DilatedResNet(depth=18, output_stride=8)
    >>> features = backbone(keras.ops.zeros((1, 64, 64, 3)))
    >>> {k: tuple(v.shape) for k, v in features.items()}["res5"]
    (1, 8, 8, 512)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016;
        Chen et al., "Rethinking Atrous Convolution for Semantic Image
        Segmentation", 2017.
    """

    def __init__(
        self,
        depth=50,
        output_stride=8,
        stem="standard",
        bn_momentum=0.9,
        input_shape=(None, None, 3),
        **kwargs,
    ):
        if depth not in RESNET_LAYOUTS:
            raise ValueError(
                f"`depth` must be one of {sorted(RESNET_LAYOUTS)}; "
                f"received {depth}."
            )
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(
                f"`output_stride` must be one of {OUTPUT_STRIDES}; "
                f"received {output_stride}."
            )
        if stem not in STEMS:
            raise ValueError(
                f"`stem` must be one of {STEMS}; received {stem!r}."
            )
        block_type, blocks = RESNET_LAYOUTS[depth]
        expansion = 4 if block_type == "bottleneck" else 1

        # === Functional Model ===
        images = keras.Input(shape=input_shape, name="images")
        x = self._stem(images, stem, bn_momentum)
        features = {}
        previous_dilation = 1
        plan = dilation_plan(output_stride, STAGE_STRIDES, STEM_STRIDE)
        for stage, (width, count, (stride, dilation, _)) in enumerate(
            zip(STAGE_WIDTHS, blocks, plan)
        ):
            for index in range(count):
                name = f"conv{stage + 2}_block{index + 1}"
                first = index == 0
                x = self._residual_block(
                    x,
                    width,
                    block_type,
                    stride=stride if first else 1,
                    dilation=previous_dilation if first else dilation,
                    projection=first
                    and (stride != 1 or x.shape[-1] != width * expansion),
                    momentum=bn_momentum,
                    name=name,
                )
            previous_dilation = dilation
            features[FEATURE_NAMES[stage]] = x
        super().__init__(
            inputs=images,
            outputs=features,
            feature_names=FEATURE_NAMES,
            feature_strides=[stage.feature_stride for stage in plan],
            **kwargs,
        )

        # === Config ===
        self.depth = depth
        self.output_stride = output_stride
        self.stem = stem
        self.bn_momentum = bn_momentum
        self.image_shape = tuple(input_shape)

    @staticmethod
    def _batch_norm(name, momentum):
        return FusedBatchNormalization(
            epsilon=BN_EPSILON, momentum=momentum, synchronized=True, name=name
        )

    @classmethod
    def _stem(cls, x, stem, momentum):
        if stem == "standard":
            x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
            x = keras.layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
            x = cls._batch_norm("conv1_bn", momentum)(x)
            x = keras.layers.Activation("relu", name="conv1_relu")(x)
        else:
            for index, (filters, strides) in enumerate(
                ((64, 2), (64, 1), (128, 1))
            ):
                x = ConvBNReLU(
                    filters,
                    kernel_size=3,
                    strides=strides,
                    momentum=momentum,
                    epsilon=BN_EPSILON,
                    name=f"stem_conv{index + 1}",
                )(x)
        x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
        return keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    @classmethod
    def _conv_bn(
        cls,
        x,
        filters,
        kernel_size,
        name,
        momentum,
        strides=1,
        dilation=1,
        relu=True,
    ):
        # Both train faster than Conv2D on small maps: a dilated one as
        # shifted matrix products (DilatedConv2D), an undilated one with a
        # convolution for its input gradient (SmallMapConv2D).
        convolution = DilatedConv2D if dilation > 1 else SmallMapConv2D
        x = convolution(
            filters,
            kernel_size,
            strides=strides,
            padding="same" if kernel_size > 1 else "valid",
            dilation_rate=dilation,
            name=f"{name}_conv",
        )(x)
        x = cls._batch_norm(f"{name}_bn", momentum)(x)
        if relu:
            x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
        return x

    @classmethod
    def _residual_block(
        cls,
        x,
        width,
        block_type,
        stride,
        dilation,
        projection,
        momentum,
        name,
    ):
        """A ResNet v1 block named like keras.applications' `{name}_1_conv`."""
        expansion = 4 if block_type == "bottleneck" else 1
        shortcut = x
        if projection:
            shortcut = cls._conv_bn(
                x,
                width * expansion,
                1,
                f"{name}_0",
                momentum,
                strides=stride,
                relu=False,
            )
        if block_type == "bottleneck":
            x = cls._conv_bn(x, width, 1, f"{name}_1", momentum, stride)
            x = cls._conv_bn(
                x, width, 3, f"{name}_2", momentum, dilation=dilation
            )
            x = cls._conv_bn(x, 4 * width, 1, f"{name}_3", momentum, relu=False)
        else:
            x = cls._conv_bn(
                x, width, 3, f"{name}_1", momentum, stride, dilation
            )
            x = cls._conv_bn(
                x,
                width,
                3,
                f"{name}_2",
                momentum,
                dilation=dilation,
                relu=False,
            )
        x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
        return keras.layers.Activation("relu", name=f"{name}_out")(x)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depth": self.depth,
            "output_stride": self.output_stride,
            "stem": self.stem,
            "bn_momentum": self.bn_momentum,
            "input_shape": self.image_shape,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
