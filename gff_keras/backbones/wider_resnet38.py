import collections

import keras

from gff_keras.backbones.backbone import Backbone
from gff_keras.backbones.dilation import OUTPUT_STRIDES
from gff_keras.backbones.dilation import dilation_plan
from gff_keras.layers.caffe_to_torch_inputs import CaffeToTorchInputs
from gff_keras.layers.constant_padding2d import ConstantPadding2D
from gff_keras.layers.dilated_conv2d import DilatedConv2D
from gff_keras.layers.fused_batch_normalization import FusedBatchNormalization

# One "mod" (group of residual blocks) of a Wider-ResNet.
#   name: the output's name, as in inplace_abn (`mod2` ... `mod7`).
#   blocks: number of pre-activation residual blocks.
#   channels: output channels of each convolution of a block: two entries
#       for two 3x3 convolutions, three for a 1x1-3x3-1x1 bottleneck.
#   dropout: rate of the channel dropout before a block's last convolution.
#   pooled: whether a 3x3, stride-2 max pool precedes the mod.
#   stride: stride of the mod's first block in the plain network (output
#       stride 32); `dilation_plan` trades it for dilation (inplace_abn's
#       `dilation=True`: the full rate in every block of a dilated mod).
_Mod = collections.namedtuple(
    "_Mod",
    ("name", "blocks", "channels", "dropout", "pooled", "stride"),
)

# Wider-ResNet-38 "A2": inplace_abn's `WiderResNetA2` with structure
# [3, 3, 6, 3, 1, 1], the backbone of DeepLabV3+ in GSCNN, NVIDIA's
# semantic-segmentation and the GFF authors' code. At output stride 8 (their
# `dilation=True`) only mod4 keeps its stride; mod5 is dilated by 2 and
# mod6, mod7 by 4.
WIDER_RESNET38_LAYOUT = (
    _Mod("mod2", 3, (128, 128), 0.0, True, 1),
    _Mod("mod3", 3, (256, 256), 0.0, True, 1),
    _Mod("mod4", 6, (512, 512), 0.0, False, 2),
    _Mod("mod5", 3, (512, 1024), 0.0, False, 2),
    _Mod("mod6", 1, (512, 1024, 2048), 0.3, False, 2),
    _Mod("mod7", 1, (1024, 2048, 4096), 0.5, False, 1),
)
STEM_CHANNELS = 64
FEATURE_NAMES = tuple(mod.name for mod in WIDER_RESNET38_LAYOUT)
# PyTorch's BatchNorm epsilon, which the released ImageNet / Mapillary
# weights were trained with.
BN_EPSILON = 1e-5
INPUT_PREPROCESSINGS = ("caffe", "torch")


@keras.saving.register_keras_serializable(package="gff_keras")
class WiderResNet38(Backbone):
    """Wider-ResNet-38 (A2), the backbone of DeepLabV3+ in the GFF paper.

    A pre-activation ResNet with few, wide blocks: a 3x3 convolution at full
    resolution (64 channels, `mod1`), then six "mods" described by
    `WIDER_RESNET38_LAYOUT`: mod2 and mod3 each after a 3x3, stride-2 max
    pool, blocks of two 3x3 convolutions in mod2-mod5, one wide bottleneck
    block each in mod6 and mod7 (with channel dropout 0.3 and 0.5 before
    their last convolution), and optionally a final BN-ReLU (`bn_out`,
    inplace_abn's classifier trunk; the GFF authors' network reads the raw
    mod7 instead). Each block
    normalizes and activates its input once (`bn1`); its shortcut is the
    raw input, or a 1x1 projection of the activated input when the width or
    the resolution changes.

    The model maps images to `{"mod2", ..., "mod7"}` (strides 2, 4, 8, 16,
    32, 32 for the plain network; 128 to 4096 channels), each the raw sum
    of its last block, `mod7` after `bn_out` when there is one.
    `output_stride=8` keeps mod5-mod7 at 1/8 of the input
    with dilation 2 (mod5) and 4 (mod6, mod7), the dilated network of GSCNN
    and the authors' DeepLabV3+; `16` dilates mod6 and mod7 by 2. The
    attributes `feature_names` (finest first), `feature_strides` and
    `feature_channels` describe the outputs.

    Padding is PyTorch's at every input size, so converted weights see the
    pixels they were trained on: the stride-2 max pools and the stride-2
    3x3 convolution pad one pixel on each side (the pools with `-inf`),
    where Keras' `"same"` pads one pixel after the input on even sizes.

    The network's weights come from PyTorch ("torch" input: RGB in [0, 1],
    standardized by the ImageNet mean and standard deviation). With
    `input_preprocessing="caffe"` a weightless `CaffeToTorchInputs` layer
    converts the pipelines' input (BGR, ImageNet mean subtracted, 0-255),
    so one pipeline and one export serve every backbone.

    BatchNorm layers use `synchronized=True` so that they compute statistics
    over the global batch under a distribution strategy.

    Args:
        output_stride: int, 8, 16 or 32. Defaults to `8`.
        bn_momentum: BatchNorm momentum. Defaults to `0.9` (PyTorch's 0.1).
        input_shape: tuple, image shape. Defaults to `(None, None, 3)`.
        bn_out: bool, end with inplace_abn's BN-ReLU on mod7. Defaults to
            `True`.
        input_preprocessing: `"caffe"` (convert the pipelines' input) or
            `"torch"` (take normalized RGB as is). Defaults to `"caffe"`.
        **kwargs: base model arguments such as `name`.

    Raises:
        ValueError: for an unknown output stride or input preprocessing.

    Example:

    >>> backbone = WiderResNet38(output_stride=8)
    >>> features = backbone(keras.ops.zeros((1, 32, 32, 3)))
    >>> tuple(features["mod7"].shape)
    (1, 4, 4, 4096)

    Reference:
        Wu, Shen and van den Hengel, "Wider or Deeper: Revisiting the ResNet
        Model for Visual Recognition", Pattern Recognition 2019; Rota Bulò,
        Porzi and Kontschieder, "In-Place Activated BatchNorm for
        Memory-Optimized Training of DNNs", CVPR 2018 (whose model zoo
        defines the A2 variant).
    """

    def __init__(
        self,
        output_stride=8,
        bn_momentum=0.9,
        input_shape=(None, None, 3),
        bn_out=True,
        input_preprocessing="caffe",
        **kwargs,
    ):
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(
                f"`output_stride` must be one of {OUTPUT_STRIDES}; "
                f"received {output_stride}."
            )
        if input_preprocessing not in INPUT_PREPROCESSINGS:
            raise ValueError(
                f"`input_preprocessing` must be one of {INPUT_PREPROCESSINGS}; "
                f"received {input_preprocessing!r}."
            )

        # === Functional Model ===
        images = keras.Input(shape=input_shape, name="images")
        x = images
        if input_preprocessing == "caffe":
            x = CaffeToTorchInputs(name="caffe_to_torch_inputs")(x)
        x = keras.layers.Conv2D(
            STEM_CHANNELS, 3, padding="same", use_bias=False, name="mod1_conv"
        )(x)
        features = {}
        plan = dilation_plan(
            output_stride,
            [mod.stride for mod in WIDER_RESNET38_LAYOUT],
            pool_strides=[
                2 if mod.pooled else 1 for mod in WIDER_RESNET38_LAYOUT
            ],
        )
        for mod, (stride, dilation, _) in zip(WIDER_RESNET38_LAYOUT, plan):
            if mod.pooled:
                pool = mod.name.replace("mod", "pool")
                x = ConstantPadding2D(1, float("-inf"), name=f"{pool}_pad")(x)
                x = keras.layers.MaxPooling2D(3, strides=2, name=pool)(x)
            for index in range(mod.blocks):
                x = self._residual_block(
                    x,
                    mod.channels,
                    stride=stride if index == 0 else 1,
                    dilation=dilation,
                    dropout=mod.dropout,
                    momentum=bn_momentum,
                    name=f"{mod.name}_block{index + 1}",
                )
            features[mod.name] = x
        if bn_out:
            features[FEATURE_NAMES[-1]] = self._bn_relu(
                x, "bn_out", bn_momentum
            )
        super().__init__(
            inputs=images,
            outputs=features,
            feature_names=FEATURE_NAMES,
            feature_strides=[stage.feature_stride for stage in plan],
            **kwargs,
        )

        # === Config ===
        self.output_stride = output_stride
        self.bn_momentum = bn_momentum
        self.image_shape = tuple(input_shape)
        self.bn_out = bn_out
        self.input_preprocessing = input_preprocessing

    @staticmethod
    def _batch_norm(name, momentum):
        return FusedBatchNormalization(
            epsilon=BN_EPSILON, momentum=momentum, synchronized=True, name=name
        )

    @classmethod
    def _bn_relu(cls, x, name, momentum):
        x = cls._batch_norm(name, momentum)(x)
        return keras.layers.Activation("relu", name=f"{name}_relu")(x)

    @classmethod
    def _residual_block(
        cls, x, channels, stride, dilation, dropout, momentum, name
    ):
        """inplace_abn's pre-activation `IdentityResidualBlock`.

        Layers are named `{name}_bn1`, `{name}_conv1`, `{name}_bn2`, ...,
        `{name}_dropout`, `{name}_proj` and `{name}_add`.
        """
        activated = cls._bn_relu(x, f"{name}_bn1", momentum)
        shortcut = x
        if stride != 1 or x.shape[-1] != channels[-1]:
            shortcut = keras.layers.Conv2D(
                channels[-1],
                1,
                strides=stride,
                use_bias=False,
                name=f"{name}_proj",
            )(activated)
        # The stride sits on the first convolution: the first 3x3 one of a
        # two-convolution block, the first 1x1 one of a bottleneck.
        kernels = (3, 3) if len(channels) == 2 else (1, 3, 1)
        y = activated
        for index, (filters, kernel) in enumerate(zip(channels, kernels)):
            if index:
                y = cls._bn_relu(y, f"{name}_bn{index + 1}", momentum)
            if index == len(channels) - 1 and dropout:
                # PyTorch's Dropout2d, which GSCNN's A2 uses: whole channels.
                y = keras.layers.SpatialDropout2D(
                    dropout, name=f"{name}_dropout"
                )(y)
            strides = stride if index == 0 else 1
            padding = "same"
            if strides > 1 and kernel > 1:
                # PyTorch's symmetric padding; "same" would pad only after
                # the input on even sizes.
                y = keras.layers.ZeroPadding2D(
                    dilation * (kernel // 2), name=f"{name}_conv{index + 1}_pad"
                )(y)
                padding = "valid"
            rate = dilation if kernel == 3 else 1
            # Dilated: trained as shifted matrix products (see DilatedConv2D).
            convolution = DilatedConv2D if rate > 1 else keras.layers.Conv2D
            y = convolution(
                filters,
                kernel,
                strides=strides,
                padding=padding,
                dilation_rate=rate,
                use_bias=False,
                name=f"{name}_conv{index + 1}",
            )(y)
        return keras.layers.Add(name=f"{name}_add")([shortcut, y])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "output_stride": self.output_stride,
            "bn_momentum": self.bn_momentum,
            "input_shape": self.image_shape,
            "bn_out": self.bn_out,
            "input_preprocessing": self.input_preprocessing,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
