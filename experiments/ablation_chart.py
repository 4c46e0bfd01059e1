"""Bar chart of the synthetic ablation results, drawn with Pillow."""

from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

PANEL_WIDTH = 520
PANEL_HEIGHT = 400
MARGIN = {"left": 56, "right": 16, "top": 48, "bottom": 64}
ALL_CLASSES_COLOR = (120, 150, 200)
THIN_CLASSES_COLOR = (230, 140, 50)
SEED_DOT_COLOR = (40, 40, 40)
GRID_COLOR = (225, 225, 225)


def _panel(results, score, title, color, font, small_font):
    image = Image.new("RGB", (PANEL_WIDTH, PANEL_HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    variants = results["variants"]
    names = list(variants)
    highest = max(
        max(run[score] for run in variants[name]["runs"]) for name in names
    )
    top_value = max(0.1, min(1.0, (int(highest * 10) + 1) / 10))
    left, top = MARGIN["left"], MARGIN["top"]
    bottom = PANEL_HEIGHT - MARGIN["bottom"]
    right = PANEL_WIDTH - MARGIN["right"]

    def y_of(value):
        return bottom - (bottom - top) * value / top_value

    ticks = round(top_value / 0.05)
    for tick in range(ticks + 1):
        value = tick * 0.05
        y = y_of(value)
        draw.line([(left, y), (right, y)], fill=GRID_COLOR)
        draw.text(
            (left - 6, y),
            f"{value:.2f}",
            fill="black",
            font=small_font,
            anchor="rm",
        )
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black")
    slot = (right - left) / len(names)
    for index, name in enumerate(names):
        center = left + slot * (index + 0.5)
        mean = variants[name][score]["mean"]
        std = variants[name][score]["std"]
        half = slot * 0.3
        draw.rectangle(
            [(center - half, y_of(mean)), (center + half, bottom)], fill=color
        )
        draw.line(
            [(center, y_of(mean - std)), (center, y_of(mean + std))],
            fill="black",
            width=2,
        )
        for end in (mean - std, mean + std):
            draw.line(
                [(center - 6, y_of(end)), (center + 6, y_of(end))],
                fill="black",
                width=2,
            )
        runs = variants[name]["runs"]
        for offset, run in enumerate(runs):
            x = center + (offset - (len(runs) - 1) / 2) * 7
            y = y_of(run[score])
            draw.ellipse([(x - 3, y - 3), (x + 3, y + 3)], fill=SEED_DOT_COLOR)
        draw.text(
            (center, bottom + 8),
            name,
            fill="black",
            font=small_font,
            anchor="ma",
        )
        draw.text(
            (center, bottom + 26),
            f"{mean:.3f}",
            fill="black",
            font=small_font,
            anchor="ma",
        )
    draw.text(
        (PANEL_WIDTH / 2, 14), title, fill="black", font=font, anchor="ma"
    )
    return image


def ablation_chart(results: dict) -> Image.Image:
    """Mean, standard deviation and per-seed dots of every variant.

    Left: mIoU over all classes; right: mean IoU of the thin and small
    classes (highlighted in orange).

    Args:
        results: the dict `run_ablation` writes.

    Returns:
        A Pillow RGB image.
    """
    font = ImageFont.load_default(size=16)
    small_font = ImageFont.load_default(size=12)
    thin = ", ".join(results["thin_classes"] + results["small_classes"])
    panels = [
        _panel(
            results,
            "mean_iou",
            "mIoU, all classes",
            ALL_CLASSES_COLOR,
            font,
            small_font,
        ),
        _panel(
            results,
            "thin_small_iou",
            f"IoU of thin/small: {thin}",
            THIN_CLASSES_COLOR,
            font,
            small_font,
        ),
    ]
    seeds = len(results["seeds"])
    footer = (
        f"Bars: mean over {seeds} seeds; whiskers: +-1 sample std; dots: "
        f"seeds. {results['budget_settings']['steps']} steps, "
        f"{results['machine']}."
    )
    chart = Image.new("RGB", (2 * PANEL_WIDTH, PANEL_HEIGHT + 24), "white")
    for index, panel in enumerate(panels):
        chart.paste(panel, (index * PANEL_WIDTH, 0))
    ImageDraw.Draw(chart).text(
        (PANEL_WIDTH, PANEL_HEIGHT + 4),
        footer,
        fill="black",
        font=small_font,
        anchor="ma",
    )
    return chart
