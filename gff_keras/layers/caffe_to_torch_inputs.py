import keras
from keras import ops

from gff_keras.imagenet_statistics import IMAGENET_BGR_MEAN
from gff_keras.imagenet_statistics import TORCH_RGB_MEAN
from gff_keras.imagenet_statistics import TORCH_RGB_STD


@keras.saving.register_keras_serializable(package="gff_keras")
class CaffeToTorchInputs(keras.layers.Layer):
    """Converts "caffe"-preprocessed images to "torch" preprocessing.

    The data pipelines and exported models feed every backbone the input of
    `keras.applications.resnet.preprocess_input` (BGR, ImageNet mean
    subtracted, 0-255 scale). DenseNet's ImageNet weights expect
    `keras.applications.densenet.preprocess_input` instead (RGB in [0, 1],
    standardized by the ImageNet mean and standard deviation). This layer
    maps one to the other, so one pipeline serves both backbones.

    Example:

    >>> import numpy as np
    >>> bgr = np.zeros((1, 2, 2, 3), "float32")  # the ImageNet mean colour
    >>> np.round(CaffeToTorchInputs()(bgr)[0, 0, 0], 4).tolist()
    [0.0, 0.0, 0.0]
    """

    def call(self, inputs):
        rgb = ops.flip(inputs + ops.array(IMAGENET_BGR_MEAN, inputs.dtype), -1)
        mean = ops.array(TORCH_RGB_MEAN, inputs.dtype)
        std = ops.array(TORCH_RGB_STD, inputs.dtype)
        return (rgb / 255.0 - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape
