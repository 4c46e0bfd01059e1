"""ASPP, DenseASPP and the authors' sequential fusion against numpy."""

import numpy as np
import pytest
from references import np_resize_like
from references import np_sigmoid

from gff_keras import layers


def np_conv(x, kernel, dilation=1):
    """'same' convolution, NHWC, odd kernel, any dilation, no bias."""
    size = kernel.shape[0]
    pad = dilation * (size // 2)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    out = 0.0
    for i in range(size):
        for j in range(size):
            window = padded[
                :,
                i * dilation : i * dilation + height,
                j * dilation : j * dilation + width,
            ]
            out = out + window @ kernel[i, j]
    return out


def np_conv_bn_relu(x, block):
    """A `ConvBNReLU` in inference with fresh BatchNorm statistics."""
    kernel = np.asarray(block.conv.kernel)
    scale = 1.0 / np.sqrt(1.0 + block.batch_norm.epsilon)
    return np.maximum(np_conv(x, kernel, block.dilation_rate) * scale, 0.0)


def randomize(layer, seed):
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(0, 0.2, w.shape).astype("float32") for w in layer.weights]
    )
    # The BatchNorm statistics above became random too; reset them so the
    # numpy side can use a fresh BatchNorm.
    for weight in layer.weights:
        if "moving_mean" in weight.path or "beta" in weight.path:
            weight.assign(np.zeros(weight.shape, "float32"))
        if "moving_variance" in weight.path or "gamma" in weight.path:
            weight.assign(np.ones(weight.shape, "float32"))


def test_aspp_matches_numpy():
    x = np.random.default_rng(0).normal(size=(2, 9, 11, 6)).astype("float32")
    aspp = layers.AtrousSpatialPyramidPooling(filters=5, rates=(2, 4))
    aspp(x)
    randomize(aspp, 1)
    out = np.asarray(aspp(x, training=False))

    branches = [np_conv_bn_relu(x, branch) for branch in aspp.branches]
    pooled = np_conv_bn_relu(
        x.mean(axis=(1, 2), keepdims=True), aspp.image_pooling
    )
    branches.append(np.broadcast_to(pooled, branches[0].shape))
    expected = np_conv_bn_relu(
        np.concatenate(branches, axis=-1), aspp.projector
    )
    assert [b.dilation_rate for b in aspp.branches] == [1, 2, 4]
    assert out.shape == (2, 9, 11, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_aspp_without_projection_concatenates_pooling_first():
    """The GFF authors' ASPP: [image pooling, 1x1, rates...], no
    projection."""
    x = np.random.default_rng(4).normal(size=(1, 7, 10, 6)).astype("float32")
    aspp = layers.AtrousSpatialPyramidPooling(
        filters=5, rates=(2, 3), projection=False, image_pooling_first=True
    )
    aspp(x)
    randomize(aspp, 5)
    out = np.asarray(aspp(x, training=False))
    pooled = np_conv_bn_relu(
        x.mean(axis=(1, 2), keepdims=True), aspp.image_pooling
    )
    branches = [np.broadcast_to(pooled, (1, 7, 10, 5))]
    branches += [np_conv_bn_relu(x, branch) for branch in aspp.branches]
    expected = np.concatenate(branches, axis=-1)
    assert out.shape == (1, 7, 10, 20) == aspp.compute_output_shape(x.shape)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="dropout"):
        layers.AtrousSpatialPyramidPooling(projection=False, dropout=0.1)


def test_dense_aspp_matches_numpy():
    x = np.random.default_rng(2).normal(size=(1, 10, 8, 4)).astype("float32")
    dense_aspp = layers.DenseAtrousSpatialPyramidPooling(
        bottleneck_filters=6, growth_filters=3, rates=(1, 3, 5)
    )
    dense_aspp(x)
    randomize(dense_aspp, 3)
    out = np.asarray(dense_aspp(x, training=False))

    features = x
    for reduction, atrous in zip(
        dense_aspp.reductions, dense_aspp.atrous_convs
    ):
        grown = np_conv_bn_relu(np_conv_bn_relu(features, reduction), atrous)
        features = np.concatenate([features, grown], axis=-1)
    # Every atrous layer reads the input and all earlier layers.
    assert [r.conv.kernel.shape[2] for r in dense_aspp.reductions] == [
        4,
        7,
        10,
    ]
    assert out.shape == (1, 10, 8, 4 + 3 * 3)
    np.testing.assert_allclose(out[..., :4], x, atol=1e-6)
    np.testing.assert_allclose(out, features, rtol=1e-4, atol=1e-4)


def test_dilated_dense_feature_pyramid_runs_rates_top_down():
    dfp = layers.DenseFeaturePyramid(
        filters=4, kernel_size=3, dilation_rates=(3, 6, 9)
    )
    rng = np.random.default_rng(4)
    inputs = [
        rng.normal(size=(1, h, w, 5)).astype("float32")
        for h, w in ((4, 4), (16, 16), (8, 8), (4, 4))
    ]
    outputs = dfp(inputs)
    # blocks[0] is the finest level's; the coarsest runs first with rate 3.
    assert [b.dilation_rate for b in dfp.blocks] == [9, 6, 3]
    assert [tuple(o.shape) for o in outputs] == [
        (1, 16, 16, 4),
        (1, 8, 8, 4),
        (1, 4, 4, 4),
    ]
    with pytest.raises(ValueError, match="one rate per level"):
        layers.DenseFeaturePyramid(dilation_rates=(3, 6))(inputs)


def test_sequential_fusion_matches_the_authors_update_order():
    """Transcribes the released DeepLabV3+ GFF head's three-level update.

    Gates come from the inputs; the finest level is fused first, the middle
    level then receives the finest level's fused value, and the coarsest
    receives both fused values (C-channel gates).
    """
    channels = 6
    rng = np.random.default_rng(5)
    fine, middle, coarse = [
        rng.normal(size=(2, h, w, channels)).astype("float32")
        for h, w in ((12, 16), (6, 8), (6, 8))
    ]
    layer = layers.GatedFullyFusion(
        gate_channels=channels, order="sequential", return_gates=True
    )
    layer([fine, middle, coarse])
    for conv in layer.gate_convs:
        kernel, bias = conv.get_weights()
        conv.set_weights(
            [rng.normal(size=kernel.shape), rng.normal(size=bias.shape)]
        )
    (out_fine, out_middle, out_coarse), _ = layer([fine, middle, coarse])

    def gate(x, index):
        kernel, bias = layer.gate_convs[index].get_weights()
        return np_sigmoid(x @ kernel[0, 0] + bias)

    g1, g2, g3 = gate(fine, 0), gate(middle, 1), gate(coarse, 2)
    resize = np_resize_like
    new_fine = (
        fine
        + g1 * fine
        + (1 - g1) * (resize(g2 * middle, fine) + resize(g3 * coarse, fine))
    )
    new_middle = (
        middle
        + g2 * middle
        + (1 - g2)
        * (resize(g1 * new_fine, middle) + resize(g3 * coarse, middle))
    )
    new_coarse = (
        coarse
        + g3 * coarse
        + (1 - g3)
        * (resize(g2 * new_middle, coarse) + resize(g1 * new_fine, coarse))
    )
    for output, expected in (
        (out_fine, new_fine),
        (out_middle, new_middle),
        (out_coarse, new_coarse),
    ):
        np.testing.assert_allclose(
            np.asarray(output), expected, rtol=1e-4, atol=1e-4
        )


def test_context_modules_reject_bad_rates():
    with pytest.raises(ValueError, match="rates"):
        layers.AtrousSpatialPyramidPooling(rates=(0, 6))
    with pytest.raises(ValueError, match="rates"):
        layers.DenseAtrousSpatialPyramidPooling(rates=())
