"""The dilation plan every dilated backbone shares (DeepLab's atrous nets).

A backbone is a stem followed by stages; each stage may halve the size
first with a pooling that is always kept, then by its first block's stride.
Below the requested output stride, a stage keeps stride 1 instead and
dilates its convolutions by the stride it gave up (times the dilation of the
stages before), so receptive fields and pretrained weights stay valid.
"""

import collections

OUTPUT_STRIDES = (8, 16, 32)

Stage = collections.namedtuple(
    "Stage", ("stride", "dilation", "feature_stride")
)
Stage.__doc__ = """One stage of a dilated backbone.

Attributes:
    stride: the stride of the stage's first block (1 once dilated).
    dilation: the dilation rate of the stage's convolutions.
    feature_stride: the stride of the stage's output relative to the image.
"""


def dilation_plan(
    output_stride: int,
    stage_strides,
    stem_stride: int = 1,
    pool_strides=None,
) -> list:
    """Plans each stage's stride and dilation for an output stride.

    Args:
        output_stride: 8, 16 or 32, the stride of the last stage's output.
        stage_strides: the stride of each stage's first block in the plain
            network, e.g. `(1, 2, 2, 2)` for ResNet's res2..res5.
        stem_stride: the stride of everything before the first stage (4 for
            ResNet's 7x7 convolution and max pool).
        pool_strides: `None` or one stride per stage of a pooling that
            precedes the stage and is never traded for dilation
            (Wider-ResNet-38's pool2 and pool3).

    Returns:
        A list of `Stage(stride, dilation, feature_stride)`, one per stage.

    Raises:
        ValueError: for an output stride other than 8, 16 or 32, or
            `pool_strides` of another length than `stage_strides`.

    Example:

    >>> [tuple(s) for s in dilation_plan(8, (1, 2, 2, 2), stem_stride=4)]
    [(1, 1, 4), (2, 1, 8), (1, 2, 8), (1, 4, 8)]
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"`output_stride` must be one of {OUTPUT_STRIDES}; received "
            f"{output_stride}."
        )
    pool_strides = pool_strides or (1,) * len(stage_strides)
    if len(pool_strides) != len(stage_strides):
        raise ValueError(
            "`pool_strides` needs one entry per stage; received "
            f"{tuple(pool_strides)} for {tuple(stage_strides)}."
        )
    plan = []
    current = stem_stride
    dilation = 1
    for stride, pool in zip(stage_strides, pool_strides):
        current *= pool
        if current * stride > output_stride:
            dilation *= stride
            stride = 1
        current *= stride
        plan.append(Stage(stride, dilation, current))
    return plan
