"""How close two float32 runs of one network can be asked to agree.

Eager against graph, frozen against variable filters, an export against the
Keras model, one window against the whole image, a saved model against its
reload: each pair computes the same function with the same weights, but
oneDNN, Eigen and Grappler choose the order of the additions (blocking,
vectorization, fused kernels) per CPU, per shape and per graph. Float32 keeps
24 significant bits. A reordered sum of `n` products may move its result by
up to about `n` units in the last place of the largest partial sum, typically
`sqrt(n)`: for the 3x3x512 convolutions of a ResNet (n = 4608) that is
2**6 to 2**12 ulps. BatchNorm keeps every layer's activations near unit
scale, so these errors do not grow layer by layer in relative terms; they
add up over the few dozen layers of the network to about 2**10 ulps of the
largest activation. So two runs may differ by

    NETWORK_RELATIVE_BOUND = 2**10 * eps(float32) ~ 1.2e-4

relative to the largest magnitude of the output (not element by element:
an output near zero carries the absolute error of the large values it was
summed from). This is CPU-independent; an absolute 1e-5 is not, since it
holds only where the logits stay below 0.1 and on one CPU's kernels.

A real bug (a wrong mean, swapped channels, a missing layer) changes the
outputs by a sizeable fraction of their own scale, so the comparisons stay
able to fail: `test_export.py` exports with the mean subtracted in RGB order
and with the channels left unswapped, and the confidences then differ from
the Keras model's by 170 and 230 times the bound (measured on an AMD EPYC).

Probabilities follow from the logits: for `p = softmax(z)`,
`dp_i = p_i (dz_i - sum_j p_j dz_j)`, and `|dz_i - sum_j p_j dz_j| <=
2 (1 - p_i) max|dz|`, so `|dp_i| <= 2 p_i (1 - p_i) max|dz| <= max|dz| / 2`.
The arg max of a pixel cannot change where its two best logits are further
apart than twice the logits' bound.

Comparisons of a single operation with an independent numpy formula (one
layer, the loss, the metrics, a resize) are exact math on small values and
keep their tight tolerances in the tests themselves.
"""

import numpy as np

FLOAT32_EPS = float(np.finfo(np.float32).eps)
NETWORK_RELATIVE_BOUND = 2**10 * FLOAT32_EPS


def logits_tolerance(logits) -> float:
    """Absolute tolerance between two runs of a network giving `logits`."""
    return NETWORK_RELATIVE_BOUND * float(np.max(np.abs(logits)))


def probability_tolerance(logits) -> float:
    """Absolute tolerance for softmax probabilities of `logits`."""
    return logits_tolerance(logits) / 2


def assert_network_close(actual, expected, err_msg=""):
    """Asserts two float32 runs of one network agree within the bound."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(
        np.asarray(actual),
        expected,
        rtol=0,
        atol=logits_tolerance(expected),
        err_msg=err_msg,
    )


def assert_probabilities_close(actual, expected, logits):
    """Asserts probabilities agree within the bound their logits allow."""
    np.testing.assert_allclose(
        np.asarray(actual),
        np.asarray(expected),
        rtol=0,
        atol=probability_tolerance(logits),
    )


def decided_pixels(scores, tolerance=None):
    """Pixels whose arg max cannot change within the scores' tolerance.

    Args:
        scores: `[..., classes]` logits or probabilities.
        tolerance: the scores' absolute tolerance; `None` for
            `logits_tolerance(scores)`.

    Returns:
        A boolean mask of the pixels whose two best scores are further apart
        than twice the tolerance.
    """
    scores = np.asarray(scores)
    if tolerance is None:
        tolerance = logits_tolerance(scores)
    top2 = np.sort(scores, -1)[..., -2:]
    return top2[..., 1] - top2[..., 0] > 2 * tolerance
