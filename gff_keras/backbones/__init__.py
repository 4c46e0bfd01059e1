"""Backbones: dilated ResNets and their ImageNet weights."""

from gff_keras.backbones.dilated_resnet import DilatedResNet
from gff_keras.backbones.imagenet_weights import load_imagenet_weights

__all__ = ["DilatedResNet", "load_imagenet_weights"]
