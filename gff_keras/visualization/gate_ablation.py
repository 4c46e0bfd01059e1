import numpy as np


def gate_ablation(model, images, level, logits=None) -> np.ndarray:
    """Pixels whose predicted class changes when gate `level` is zeroed.

    The paper's Fig. 7(b) experiment: the prediction with the learned gates
    is compared with the prediction after setting `G_level` to 0 (see
    `GFFNet.predict_with_zeroed_gate` for what that means in eq. 5).

    Args:
        model: a `GFFNet` with a gated fusion (`"gff"` or `"gated_fpn"`).
        images: `[batch, H, W, 3]` preprocessed images
            (`gff_keras.data.normalize_images`).
        level: int gate index, 0 the finest (or a sequence of indices
            zeroed together).
        logits: optional logits of `images` with the learned gates, to save
            one forward pass when they are already known.

    Returns:
        bool array `[batch, H, W]`, `True` where the class changed.

    Raises:
        ValueError: if the model has no gates or `level` is out of range.

    Example:

    >>> from gff_keras import GFFNet
    >>> model = GFFNet(4, backbone="resnet18", output_stride=32)
    >>> images = np.zeros((1, 64, 64, 3), np.float32)
    >>> gate_ablation(model, images, 0).shape
    (1, 64, 64)
    """
    if logits is None:
        logits, _ = model.gate_maps(images)
    ablated = model.predict_with_zeroed_gate(images, level)
    before = np.argmax(np.asarray(logits), axis=-1)
    after = np.argmax(np.asarray(ablated), axis=-1)
    return before != after
