"""Keras layers of the GFF network and its baselines."""

from gff_keras.layers.add_fusion import AddFusion
from gff_keras.layers.atrous_spatial_pyramid_pooling import (
    AtrousSpatialPyramidPooling,
)
from gff_keras.layers.bilinear_resize import BilinearResize
from gff_keras.layers.caffe_to_torch_inputs import CaffeToTorchInputs
from gff_keras.layers.concat_fusion import ConcatFusion
from gff_keras.layers.constant_padding2d import ConstantPadding2D
from gff_keras.layers.conv_bn_relu import ConvBNReLU
from gff_keras.layers.dense_aspp_feature_pyramid import DenseASPPFeaturePyramid
from gff_keras.layers.dense_atrous_spatial_pyramid_pooling import (
    DenseAtrousSpatialPyramidPooling,
)
from gff_keras.layers.dense_feature_pyramid import DenseFeaturePyramid
from gff_keras.layers.dilated_conv2d import DilatedConv2D
from gff_keras.layers.fpn_fusion import FPNFusion
from gff_keras.layers.fused_batch_normalization import FusedBatchNormalization
from gff_keras.layers.gated_fpn_fusion import GatedFPNFusion
from gff_keras.layers.gated_fully_fusion import GatedFullyFusion
from gff_keras.layers.pyramid_pooling import PyramidPooling
from gff_keras.layers.small_map_conv2d import SmallMapConv2D

__all__ = [
    "AddFusion",
    "AtrousSpatialPyramidPooling",
    "BilinearResize",
    "CaffeToTorchInputs",
    "ConcatFusion",
    "ConstantPadding2D",
    "ConvBNReLU",
    "DilatedConv2D",
    "DenseAtrousSpatialPyramidPooling",
    "DenseASPPFeaturePyramid",
    "DenseFeaturePyramid",
    "FPNFusion",
    "FusedBatchNormalization",
    "GatedFPNFusion",
    "GatedFullyFusion",
    "PyramidPooling",
    "SmallMapConv2D",
]
