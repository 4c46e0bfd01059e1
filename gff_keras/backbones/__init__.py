"""Backbones: dilated ResNets, DenseNets, Wider-ResNet-38, ImageNet weights."""

from gff_keras.backbones.dilated_densenet import DilatedDenseNet
from gff_keras.backbones.dilated_resnet import DilatedResNet
from gff_keras.backbones.imagenet_weights import load_imagenet_weights
from gff_keras.backbones.wider_resnet38 import WiderResNet38

__all__ = [
    "DilatedDenseNet",
    "DilatedResNet",
    "WiderResNet38",
    "load_imagenet_weights",
]
