import os

from PIL import Image

from gff_keras.models.gffnet import GATED_FUSIONS
from gff_keras.visualization.gate_figure import gate_figure

FIGURE_SUFFIX = "_gates.png"


def write_gate_figures(
    model, named_images, output_dir: str, dataset, alpha: float = 0.5
) -> list:
    """Writes the paper's gate figure (`gate_figure`) for each image.

    Args:
        model: a `GFFNet` with `fusion="gff"` or `"gated_fpn"`.
        named_images: iterable of `(name, uint8 RGB image)`; the figure of
            `name` is written to `<output_dir>/<name>_gates.png`. Images are
            taken one at a time, so a generator keeps memory flat.
        output_dir: folder to write to; created if missing.
        dataset: the `DatasetInfo` giving the palette and ignore label.
        alpha: mask weight in the prediction overlay. Defaults to `0.5`.

    Returns:
        List of the written files.

    Raises:
        ValueError: if the model has no gates or its class count differs
            from the dataset's (checked before any image is read), or when
            two images share a name.

    Example:

    >>> import numpy as np
    >>> from gff_keras import GFFNet
    >>> from gff_keras.data import dataset_info
    >>> model = GFFNet(8, backbone="resnet18", output_stride=32)
    >>> images = [("scene", np.zeros((64, 64, 3), np.uint8))]
    >>> write_gate_figures(model, images, "out",
    ...                    dataset_info("synthetic"))  # doctest: +SKIP
    ['out/scene_gates.png']
    """
    fusion = getattr(model, "fusion", None)
    if fusion not in GATED_FUSIONS:
        raise ValueError(
            f"The model's fusion ({fusion!r}) has no gates to visualize; "
            f"gate maps exist for fusion in {GATED_FUSIONS}."
        )
    if model.num_classes != dataset.num_classes:
        raise ValueError(
            f"The model predicts {model.num_classes} classes but dataset "
            f"{dataset.name!r} has {dataset.num_classes}; pass the dataset "
            "the model was trained on."
        )
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for name, image in named_images:
        figure = gate_figure(
            model, image, dataset.palette, dataset.ignore_label, alpha
        )
        target = os.path.join(output_dir, name + FIGURE_SUFFIX)
        if target in written:
            raise ValueError(
                f"Two images are named {name!r}; their figures would "
                "overwrite each other."
            )
        Image.fromarray(figure).save(target)
        written.append(target)
    return written
