"""The ImageNet statistics that the two input conventions subtract.

"caffe" (`keras.applications.resnet.preprocess_input`, the pipelines' and
the exports' input): BGR on the 0-255 scale minus `IMAGENET_BGR_MEAN`.
"torch" (`keras.applications.densenet.preprocess_input`, and the GFF
authors' PyTorch code): RGB scaled to [0, 1], minus `TORCH_RGB_MEAN`,
divided by `TORCH_RGB_STD`.
"""

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
TORCH_RGB_MEAN = (0.485, 0.456, 0.406)
TORCH_RGB_STD = (0.229, 0.224, 0.225)
