import keras

from gff_keras.backbones.backbone import Backbone
from gff_keras.backbones.dilated_resnet import BN_EPSILON
from gff_keras.backbones.dilated_resnet import STAGE_STRIDES
from gff_keras.backbones.dilated_resnet import STEM_STRIDE
from gff_keras.backbones.dilation import OUTPUT_STRIDES
from gff_keras.backbones.dilation import dilation_plan
from gff_keras.layers.caffe_to_torch_inputs import CaffeToTorchInputs
from gff_keras.layers.dilated_conv2d import DilatedConv2D
from gff_keras.layers.fused_batch_normalization import FusedBatchNormalization

# Dense layers per block for each depth (Huang et al. 2017, Table 1).
DENSENET_LAYOUTS = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
}
GROWTH_RATE = 32
# Transitions halve the channels ("compression" 0.5).
COMPRESSION = 0.5
FEATURE_NAMES = ("dense1", "dense2", "dense3", "dense4")
INPUT_PREPROCESSINGS = ("caffe", "torch")


@keras.saving.register_keras_serializable(package="gff_keras")
class DilatedDenseNet(Backbone):
    """DenseNet whose last dense blocks trade stride for dilation.

    A functional model mapping images to the outputs of the four dense
    blocks, `{"dense1", "dense2", "dense3", "dense4"}` (strides 4, 8, 16, 32
    for the plain network); `dense4` is taken after the final BN-ReLU, the
    output of `keras.applications.DenseNet121(include_top=False)`.
    `output_stride=8` removes the average pooling of the last two
    transitions and dilates blocks 3 and 4 by 2 and 4 (DenseASPP's
    backbone); `16` does so for the last transition and block 4 only. The
    attributes `feature_names`, `feature_strides` and `feature_channels`
    describe the outputs.
    Unlike `DilatedResNet`'s first block, every layer of a dilated block
    uses the block's full rate: the stride it replaces was the pooling of
    the transition before the block, not a convolution inside it.

    Every layer name, shape and order matches `keras.applications`'
    DenseNet121/169/201, so `load_imagenet_weights` copies ImageNet weights
    one to one, and at `output_stride=32` the features equal
    keras.applications' for the same preprocessed images. By default the
    model takes the project's ResNet-style ("caffe") input and converts it
    to DenseNet's ("torch": RGB in [0, 1], standardized) itself, so the
    data pipelines and exported models work unchanged.

    BatchNorm layers use `synchronized=True`, as in `DilatedResNet`.

    Args:
        depth: int, one of 121, 169, 201. Defaults to `121`.
        output_stride: int, 8, 16 or 32. Defaults to `8`.
        bn_momentum: BatchNorm momentum. Defaults to `0.9` (PyTorch's 0.1).
        input_shape: tuple, image shape. Defaults to `(None, None, 3)`.
        input_preprocessing: `"caffe"` (the input of
            `keras.applications.resnet.preprocess_input`, which this
            project's pipelines and exported models produce; converted
            inside the model by `CaffeToTorchInputs`) or `"torch"` (the
            input of `keras.applications.densenet.preprocess_input`, fed
            straight to the first convolution). Defaults to `"caffe"`.
        **kwargs: base model arguments such as `name`.

    Raises:
        ValueError: for an unknown depth, output stride or input
            preprocessing.

    Example:

    >>> backbone = DilatedDenseNet(depth=121, output_stride=8)
    >>> features = backbone(keras.ops.zeros((1, 64, 64, 3)))
    >>> tuple(features["dense4"].shape)
    (1, 8, 8, 1024)

    Reference:
        Huang et al., "Densely Connected Convolutional Networks", CVPR
        2017; Yang et al., "DenseASPP for Semantic Segmentation in Street
        Scenes", CVPR 2018.
    """

    def __init__(
        self,
        depth=121,
        output_stride=8,
        bn_momentum=0.9,
        input_shape=(None, None, 3),
        input_preprocessing="caffe",
        **kwargs,
    ):
        if input_preprocessing not in INPUT_PREPROCESSINGS:
            raise ValueError(
                f"`input_preprocessing` must be one of {INPUT_PREPROCESSINGS}"
                f"; received {input_preprocessing!r}."
            )
        if depth not in DENSENET_LAYOUTS:
            raise ValueError(
                f"`depth` must be one of {sorted(DENSENET_LAYOUTS)}; "
                f"received {depth}."
            )
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(
                f"`output_stride` must be one of {OUTPUT_STRIDES}; "
                f"received {output_stride}."
            )

        # === Functional Model ===
        images = keras.Input(shape=input_shape, name="images")
        x = images
        if input_preprocessing == "caffe":
            x = CaffeToTorchInputs(name="caffe_to_torch_inputs")(x)
        # keras.applications leaves its paddings unnamed; these are the
        # names they get in a fresh session, so both models list alike.
        x = keras.layers.ZeroPadding2D(3, name="zero_padding2d")(x)
        x = keras.layers.Conv2D(
            64, 7, strides=2, use_bias=False, name="conv1_conv"
        )(x)
        x = self._batch_norm("conv1_bn", bn_momentum)(x)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
        x = keras.layers.ZeroPadding2D(1, name="zero_padding2d_1")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
        features = {}
        # A DenseNet's four blocks stride like a ResNet's four stages (4, 8,
        # 16, 32), so the same plan trades each transition's pooling for
        # dilation; unlike the ResNet, every layer of a dilated block uses
        # the block's full rate (DenseASPP), since the stride it replaces
        # came before the block.
        plan = dilation_plan(output_stride, STAGE_STRIDES, STEM_STRIDE)
        for index, (layers, (stride, dilation, _)) in enumerate(
            zip(DENSENET_LAYOUTS[depth], plan)
        ):
            if index:
                # keras.applications names the transition before block
                # `index + 1` "pool{index + 1}".
                x = self._transition(
                    x, f"pool{index + 1}", stride == 2, bn_momentum
                )
            for layer in range(layers):
                x = self._dense_layer(
                    x,
                    dilation,
                    f"conv{index + 2}_block{layer + 1}",
                    bn_momentum,
                )
            features[FEATURE_NAMES[index]] = x
        x = self._batch_norm("bn", bn_momentum)(x)
        features[FEATURE_NAMES[-1]] = keras.layers.Activation(
            "relu", name="relu"
        )(x)
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
        self.bn_momentum = bn_momentum
        self.image_shape = tuple(input_shape)
        self.input_preprocessing = input_preprocessing

    @staticmethod
    def _batch_norm(name, momentum):
        return FusedBatchNormalization(
            epsilon=BN_EPSILON, momentum=momentum, synchronized=True, name=name
        )

    @classmethod
    def _dense_layer(cls, x, dilation, name, momentum):
        """BN-ReLU-1x1 (4k) and BN-ReLU-3x3 (k), concatenated to the input."""
        y = cls._batch_norm(f"{name}_0_bn", momentum)(x)
        y = keras.layers.Activation("relu", name=f"{name}_0_relu")(y)
        y = keras.layers.Conv2D(
            4 * GROWTH_RATE, 1, use_bias=False, name=f"{name}_1_conv"
        )(y)
        y = cls._batch_norm(f"{name}_1_bn", momentum)(y)
        y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
        # Dilated: trained as shifted matrix products (see DilatedConv2D).
        convolution = DilatedConv2D if dilation > 1 else keras.layers.Conv2D
        y = convolution(
            GROWTH_RATE,
            3,
            padding="same",
            dilation_rate=dilation,
            use_bias=False,
            name=f"{name}_2_conv",
        )(y)
        return keras.layers.Concatenate(name=f"{name}_concat")([x, y])

    @classmethod
    def _transition(cls, x, name, pool, momentum):
        x = cls._batch_norm(f"{name}_bn", momentum)(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
        x = keras.layers.Conv2D(
            int(x.shape[-1] * COMPRESSION),
            1,
            use_bias=False,
            name=f"{name}_conv",
        )(x)
        if pool:
            x = keras.layers.AveragePooling2D(
                2, strides=2, name=f"{name}_pool"
            )(x)
        return x

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depth": self.depth,
            "output_stride": self.output_stride,
            "bn_momentum": self.bn_momentum,
            "input_shape": self.image_shape,
            "input_preprocessing": self.input_preprocessing,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
