import numpy as np

from gff_keras.data import catalog

# Class ids, in `catalog.SYNTHETIC_CLASSES` order.
SKY, GROUND, BUILDING, VEGETATION, POLE, WIRE, SMALL_OBJECT, SIGN = range(8)
# Mean RGB of each class. Poles, wires and signs are deliberately close to
# the building and sky colours, so recognising them needs shape and context,
# not colour alone.
CLASS_COLORS = np.array(
    [
        (150, 180, 215),  # sky
        (110, 100, 85),  # ground
        (135, 125, 120),  # building
        (70, 115, 55),  # vegetation
        (120, 120, 125),  # pole
        (95, 100, 115),  # wire
        (170, 80, 60),  # small object
        (150, 140, 95),  # sign
    ],
    np.float32,
)
SPLIT_STREAMS = {"train": 0, "validation": 1, "test": 2}
DEFAULT_SIZES = {"train": 1024, "validation": 128, "test": 128}


class SyntheticScenes:
    """Procedural street-like scenes with large regions and thin structures.

    Each image has sky over ground, buildings with window texture,
    vegetation blobs, thin poles (1-3 px wide) carrying small signs, 1 px
    sagging wires, and small objects of a few pixels; colours jitter per
    image, and Gaussian noise covers everything. Large classes are easy;
    poles, wires, signs and small objects need fine resolution, which is
    what multi-level fusion is for. Scene `i` of a split depends only on
    `(seed, split, i)`, so data is reproducible and needs no files.

    Args:
        image_size: `(height, width)` of every scene. Defaults to
            `(192, 192)`.
        seed: int, base seed. Defaults to `0`.

    Example:

    >>> image, label = SyntheticScenes((64, 96)).generate("train", 3)
    >>> image.shape, image.dtype, label.shape, int(label.max()) < 8
    ((64, 96, 3), dtype('uint8'), (64, 96), True)
    """

    num_classes = len(catalog.SYNTHETIC_CLASSES)

    def __init__(self, image_size=(192, 192), seed=0):
        self.image_size = tuple(int(s) for s in image_size)
        self.seed = int(seed)

    def generate(self, split: str, index: int):
        """Returns scene `index` of `split` as `(image uint8, label uint8)`."""
        rng = np.random.default_rng(
            [self.seed, SPLIT_STREAMS[split], int(index)]
        )
        height, width = self.image_size
        rows, cols = np.mgrid[:height, :width].astype(np.float32)
        label = np.full((height, width), SKY, np.uint8)
        horizon = rng.uniform(0.35, 0.65) * height
        label[rows >= horizon] = GROUND

        for _ in range(rng.integers(1, 5)):
            left = rng.uniform(-0.1, 0.9) * width
            right = left + rng.uniform(0.1, 0.35) * width
            top = horizon - rng.uniform(0.15, 0.45) * height
            inside = (cols >= left) & (cols < right)
            label[inside & (rows >= top) & (rows < horizon + 2)] = BUILDING

        for _ in range(rng.integers(1, 6)):
            cy = horizon + rng.uniform(-0.1, 0.15) * height
            cx = rng.uniform(0, width)
            ry, rx = rng.uniform(0.04, 0.12, 2) * (height, width)
            blob = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
            label[blob] = VEGETATION

        pole_tops = []
        for _ in range(rng.integers(1, 5)):
            x = rng.uniform(0.05, 0.95) * width
            half_width = rng.uniform(0.5, 1.5)
            base = horizon + rng.uniform(0.05, 0.3) * height
            top = base - rng.uniform(0.3, 0.6) * height
            pole = (np.abs(cols - x) <= half_width) & (rows >= top)
            label[pole & (rows <= base)] = POLE
            pole_tops.append((top, x))
            if rng.random() < 0.7:
                sign_h, sign_w = rng.uniform(3, 7, 2)
                sign_top = top + rng.uniform(0, 6)
                sign = (
                    (rows >= sign_top)
                    & (rows < sign_top + sign_h)
                    & (cols >= x + half_width)
                    & (cols < x + half_width + sign_w)
                )
                label[sign] = SIGN

        for _ in range(rng.integers(0, 4)):
            if len(pole_tops) >= 2 and rng.random() < 0.6:
                (y0, x0), (y1, x1) = rng.choice(pole_tops, 2, replace=False)
            else:
                y0, y1 = rng.uniform(0.05, 0.5, 2) * height
                x0, x1 = 0.0, float(width - 1)
            x0, x1 = min(x0, x1), max(x0, x1)
            span = np.clip((cols - x0) / max(x1 - x0, 1.0), 0, 1)
            sag = rng.uniform(2, 10) * 4 * span * (1 - span)
            line_y = y0 + (y1 - y0) * span + sag
            wire = (np.abs(rows - line_y) <= 0.5) & (cols >= x0) & (cols <= x1)
            label[wire & (label == SKY)] = WIRE

        for _ in range(rng.integers(2, 9)):
            cy = rng.uniform(horizon + 3, height - 2)
            cx = rng.uniform(2, width - 2)
            radius = rng.uniform(1.5, 4.5)
            disc = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
            label[disc] = SMALL_OBJECT

        colors = CLASS_COLORS + rng.normal(0, 12, CLASS_COLORS.shape)
        image = colors[label]
        # Window grid on buildings, leaf texture on vegetation, a vertical
        # gradient on the sky.
        windows = (np.sin(rows * 0.9) > 0.6) & (np.sin(cols * 0.7) > 0.5)
        image[(label == BUILDING) & windows] -= 35
        leaves = rng.normal(0, 18, (height, width, 1))
        image += np.where((label == VEGETATION)[..., None], leaves, 0)
        image += np.where(
            (label == SKY)[..., None], (rows / height * 30)[..., None], 0
        )
        image += rng.normal(0, 10, image.shape)
        image = np.clip(image, 0, 255).astype(np.uint8)
        return image, label
