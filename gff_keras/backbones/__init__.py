"""Backbones: the feature-pyramid protocol, dilated ResNets, DenseNets,
Wider-ResNet-38, any Keras encoder, and ImageNet weights."""

from gff_keras.backbones.backbone import Backbone
from gff_keras.backbones.dilated_densenet import DilatedDenseNet
from gff_keras.backbones.dilated_resnet import DilatedResNet
from gff_keras.backbones.feature_pyramid_backbone import FeaturePyramidBackbone
from gff_keras.backbones.imagenet_weights import load_imagenet_weights
from gff_keras.backbones.wider_resnet38 import WiderResNet38

__all__ = [
    "Backbone",
    "DilatedDenseNet",
    "DilatedResNet",
    "FeaturePyramidBackbone",
    "WiderResNet38",
    "load_imagenet_weights",
]
