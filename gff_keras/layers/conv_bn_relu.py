import keras

from gff_keras.layers.dilated_conv2d import DilatedConv2D
from gff_keras.layers.fused_batch_normalization import FusedBatchNormalization


@keras.saving.register_keras_serializable(package="gff_keras")
class ConvBNReLU(keras.layers.Layer):
    """Convolution, synchronized batch normalization and ReLU.

    The building block of every head layer in the paper ("all convolutional
    layers are followed by batch normalization and ReLU"). The convolution has
    no bias because BatchNorm's offset replaces it. BatchNorm is created with
    `synchronized=True`, so under a `tf.distribute` strategy its batch
    statistics are computed over the global batch (the paper's synchronized
    BN); with one device it is a plain BatchNorm.

    Args:
        filters: int, output channels.
        kernel_size: int, square kernel size. Defaults to `1`.
        strides: int. Defaults to `1`.
        dilation_rate: int. Defaults to `1`.
        activation: activation after BatchNorm, or `None`. Defaults to
            `"relu"`.
        momentum: BatchNorm moving-average momentum. Defaults to `0.9`,
            the equivalent of PyTorch's `momentum=0.1` that the paper used.
        epsilon: BatchNorm epsilon. Defaults to `1e-5`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Example:

    >>> layer = ConvBNReLU(256, kernel_size=3)
    >>> layer(keras.ops.zeros((1, 32, 32, 64))).shape
    (1, 32, 32, 256)
    """

    def __init__(
        self,
        filters,
        kernel_size=1,
        strides=1,
        dilation_rate=1,
        activation="relu",
        momentum=0.9,
        epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.dilation_rate = dilation_rate
        self.activation = activation
        self.momentum = momentum
        self.epsilon = epsilon

        rates = (
            (dilation_rate,) * 2
            if isinstance(dilation_rate, int)
            else tuple(dilation_rate)
        )
        # Dilated: trained as shifted matrix products (see DilatedConv2D).
        convolution = DilatedConv2D if max(rates) > 1 else keras.layers.Conv2D
        self.conv = convolution(
            filters,
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            dtype=self.dtype_policy,
            name="conv",
        )
        self.batch_norm = FusedBatchNormalization(
            momentum=momentum,
            epsilon=epsilon,
            synchronized=True,
            dtype=self.dtype_policy,
            name="bn",
        )
        self.activation_layer = (
            keras.layers.Activation(
                activation, dtype=self.dtype_policy, name="act"
            )
            if activation is not None
            else None
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"`ConvBNReLU` expects a rank-4 input [batch, height, width, "
                f"channels]; received shape {input_shape}."
            )
        self.conv.build(input_shape)
        output_shape = self.conv.compute_output_shape(input_shape)
        self.batch_norm.build(output_shape)
        self.built = True

    def call(self, inputs, training=None):
        x = self.conv(inputs, training=training)
        x = self.batch_norm(x, training=training)
        if self.activation_layer is not None:
            x = self.activation_layer(x)
        return x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "dilation_rate": self.dilation_rate,
                "activation": self.activation,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
            }
        )
        return config
