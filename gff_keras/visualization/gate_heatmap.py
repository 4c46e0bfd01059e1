import numpy as np
import tensorflow as tf

# A viridis-like ramp (dark blue-purple at 0, teal at 0.5, yellow at 1),
# linear between these five anchors: perceptually ordered and readable in
# grayscale, so gate values compare across panels.
GATE_COLORMAP = np.array(
    [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ],
    np.float64,
)


def gate_heatmap(gate, size=None) -> np.ndarray:
    """Renders one gate map as an RGB heat map.

    Gate values are mapped on the fixed range `[0, 1]` (not stretched per
    map), so a panel's colours mean the same in every level and image:
    `GATE_COLORMAP[0]` for a closed gate, `GATE_COLORMAP[-1]` for an open
    one, linear in between.

    Args:
        gate: `[h, w]` or `[h, w, gate_channels]` values in `[0, 1]`; a
            multi-channel gate (the authors' `gate_channels=C`) is averaged
            over channels.
        size: optional `(height, width)` to resize to, bilinearly with
            half-pixel centres (as the model resizes its features), before
            colouring. Defaults to the gate's own size.

    Returns:
        uint8 array `[height, width, 3]`.

    Raises:
        ValueError: if `gate` is not rank 2 or 3.

    Example:

    >>> gate_heatmap(np.array([[0.0, 1.0]])).tolist()
    [[[68, 1, 84], [253, 231, 37]]]
    """
    gate = np.asarray(gate, np.float32)
    if gate.ndim == 3:
        gate = gate.mean(axis=-1)
    if gate.ndim != 2:
        raise ValueError(
            "`gate` must be [h, w] or [h, w, channels]; received shape "
            f"{gate.shape}."
        )
    if size is not None and tuple(size) != gate.shape:
        resized = tf.image.resize(
            gate[None, :, :, None], tuple(int(s) for s in size), "bilinear"
        )
        gate = np.asarray(resized)[0, :, :, 0]
    positions = np.linspace(0.0, 1.0, len(GATE_COLORMAP))
    values = np.clip(gate.astype(np.float64), 0.0, 1.0)
    channels = [
        np.interp(values, positions, GATE_COLORMAP[:, c]) for c in range(3)
    ]
    return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)
