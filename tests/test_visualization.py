"""Visualization: palettes, overlays, gate maps, gate ablation, the CLIs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from references import np_conv1x1
from references import np_gated_fully_fusion
from references import np_resize_like
from references import np_sigmoid

from gff_keras import GFFNet
from gff_keras import layers
from gff_keras.data import SyntheticScenes
from gff_keras.data import dataset_info
from gff_keras.data import normalize_images
from gff_keras.models import load_model
from gff_keras.visualization import Predictor
from gff_keras.visualization import cityscapes_label_ids
from gff_keras.visualization import class_legend
from gff_keras.visualization import colorize
from gff_keras.visualization import find_images
from gff_keras.visualization import gate_ablation
from gff_keras.visualization import gate_figure
from gff_keras.visualization import gate_grid
from gff_keras.visualization import gate_heatmap
from gff_keras.visualization import overlay
from gff_keras.visualization import panel_grid
from gff_keras.visualization import predict_files
from gff_keras.visualization import prediction_panel
from gff_keras.visualization import read_image
from gff_keras.visualization import write_gate_figures
from gff_keras.visualization.gate_figures import GATE_COLORMAP
from gff_keras.visualization.gate_figures import HIGHLIGHT
from gff_keras.visualization.panels import CAPTION_HEIGHT
from tests.tolerances import assert_network_close

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 8
NUM_LEVELS = 4
SPACING = 4  # the default of gate_grid / gate_figure / panel_grid
SYNTHETIC = dataset_info("synthetic")
PALETTE = np.array(SYNTHETIC.palette, np.uint8)
# Feature maps for the layer-level tests: three sizes, finest first.
LEVEL_SIZES = ((16, 20), (8, 10), (5, 7))
CHANNELS = 6


def small_model(fusion="gff"):
    return GFFNet(
        NUM_CLASSES,
        backbone="resnet18",
        output_stride=32,
        fusion=fusion,
        fused_channels=16,
        context_channels=32,
    )


def open_gates(model, seed=0):
    """Gate weights that keep the gates away from 0 and 1, so zeroing one
    changes the fusion (a fresh model's gates often saturate)."""
    rng = np.random.default_rng(seed)
    for conv in model.head.fusion.gate_convs:
        kernel, bias = conv.get_weights()
        conv.set_weights(
            [0.02 * rng.normal(size=kernel.shape), np.zeros_like(bias)]
        )


def scene(height, width, index=0):
    return SyntheticScenes((height, width)).generate("validation", index)[0]


def ids_from_colors(mask_rgb):
    """Inverts the synthetic palette (its colours are distinct)."""
    lookup = {tuple(color): i for i, color in enumerate(PALETTE.tolist())}
    flat = [lookup[tuple(p)] for p in mask_rgb.reshape(-1, 3).tolist()]
    return np.array(flat).reshape(mask_rgb.shape[:2])


def run_script(name, *args):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as training leaves it: model.keras + config.json."""
    directory = tmp_path_factory.mktemp("run")
    model = small_model()
    open_gates(model)
    model.save(directory / "model.keras")
    (directory / "config.json").write_text(
        json.dumps({"data": {"dataset": "synthetic"}})
    )
    return directory


@pytest.fixture(scope="module")
def input_images(tmp_path_factory):
    """An RGB PNG and a grayscale JPEG of different sizes."""
    directory = tmp_path_factory.mktemp("inputs")
    Image.fromarray(scene(48, 64)).save(directory / "street.png")
    gray = Image.fromarray(scene(40, 56, index=1)).convert("L")
    gray.save(directory / "gray.jpg", quality=95)
    return directory


# === Palettes and overlays ===


def test_colorize_exact_colors_and_ignore_is_black():
    palette = [(10, 20, 30), (0, 0, 255), (200, 100, 0)]
    mask = np.array([[0, 1, 2], [255, 2, 0]])
    expected = np.array(
        [
            [(10, 20, 30), (0, 0, 255), (200, 100, 0)],
            [(0, 0, 0), (200, 100, 0), (10, 20, 30)],
        ],
        np.uint8,
    )
    result = colorize(mask, palette)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)
    # Another ignore label; 255 is then an error like any unknown id.
    np.testing.assert_array_equal(
        colorize(np.array([[7, 1]]), palette, ignore_label=7),
        [[(0, 0, 0), (0, 0, 255)]],
    )
    with pytest.raises(ValueError, match=r"\[3, 255\]"):
        colorize(np.array([[3, 255, 0]]), palette, ignore_label=7)
    with pytest.raises(ValueError, match="integer"):
        colorize(np.zeros((2, 2), np.float32), palette)


def test_colorize_uses_dataset_palettes():
    cityscapes = dataset_info("cityscapes")
    ids = np.arange(cityscapes.num_classes)[None]
    np.testing.assert_array_equal(
        colorize(ids, cityscapes.palette)[0],
        np.array(cityscapes.palette, np.uint8),
    )
    assert tuple(colorize(np.array([[13]]), cityscapes.palette)[0, 0]) == (
        0,
        0,
        142,
    )  # car


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_overlay_alpha_blend_formula(alpha):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    mask = rng.integers(0, NUM_CLASSES, size=(9, 11))
    mask[0, :4] = 255
    result = overlay(image, mask, SYNTHETIC.palette, alpha=alpha)
    assert result.dtype == np.uint8 and result.shape == image.shape
    expected = np.rint(
        (1 - alpha) * image.astype(np.float64) + alpha * PALETTE[mask % 255]
    )
    labelled = mask != 255
    np.testing.assert_array_equal(result[labelled], expected[labelled])
    # Ignored pixels keep the image.
    np.testing.assert_array_equal(result[~labelled], image[~labelled])


def test_overlay_worked_example_and_errors():
    image = np.array([[[100, 100, 100], [0, 255, 10]]], np.uint8)
    mask = np.array([[0, 1]])
    palette = [(200, 0, 0), (0, 0, 255)]
    # 0.75 * 100 + 0.25 * 200 = 125; 0.75 * 100 = 75; 0.75 * 10 + 63.75.
    np.testing.assert_array_equal(
        overlay(image, mask, palette, alpha=0.25),
        [[[125, 75, 75], [0, 191, 71]]],
    )
    gray = overlay(np.full((1, 2), 100, np.uint8), mask, palette, alpha=0.5)
    np.testing.assert_array_equal(gray, [[[150, 50, 50], [50, 50, 178]]])
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, mask, palette, alpha=1.5)
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, np.zeros((2, 2), np.int32), palette)


# === Gate heat maps and grids ===


def test_gate_heatmap_colormap_and_channel_average():
    anchors = GATE_COLORMAP.astype(np.uint8)
    values = np.array([[0.0, 0.25, 0.5, 0.75, 1.0]])
    np.testing.assert_array_equal(gate_heatmap(values)[0], anchors)
    # Linear between anchors; out-of-range values are clipped.
    between = gate_heatmap(np.array([[0.125, -3.0, 7.0]]))[0]
    np.testing.assert_array_equal(
        between[0], np.rint((GATE_COLORMAP[0] + GATE_COLORMAP[1]) / 2)
    )
    np.testing.assert_array_equal(between[1:], anchors[[0, 4]])
    # gate_channels > 1 is averaged over channels: (0 + 1) / 2 = 0.5.
    two_channels = np.stack([np.zeros((3, 4)), np.ones((3, 4))], axis=-1)
    heat = gate_heatmap(two_channels, size=(6, 8))
    assert heat.shape == (6, 8, 3)
    assert (heat == anchors[2]).all()


def test_gate_heatmap_resizes_bilinearly():
    gate = np.array([[0.0, 1.0]])
    heat = gate_heatmap(gate, size=(1, 4))
    # Half-pixel bilinear: 0, 0.25, 0.75, 1 across four output pixels.
    np.testing.assert_array_equal(heat[0], anchors_at([0.0, 0.25, 0.75, 1.0]))


def anchors_at(values):
    return gate_heatmap(np.array([values]))[0]


def test_panel_grid_arithmetic_and_empty_cells():
    panel = np.full((8, 10, 3), 7, np.uint8)
    grid = panel_grid([[panel, None, panel], [panel]], spacing=3)
    assert grid.shape == (2 * 8 + 3, 3 * 10 + 2 * 3, 3)
    assert (grid[:8, :10] == 7).all()
    assert (grid[:8, 13:23] == 255).all()  # the None cell
    assert (grid[11:, 13:] == 255).all()  # missing cells of a short row
    captioned = panel_grid([[panel, panel]], spacing=3, captions=[["a", ""]])
    assert captioned.shape == (8 + CAPTION_HEIGHT, 23, 3)
    assert (captioned[CAPTION_HEIGHT:, :10] == 7).all()
    assert (captioned[:CAPTION_HEIGHT, :10] < 255).any()  # text drawn
    assert (captioned[:CAPTION_HEIGHT, 13:] == 255).all()  # empty caption
    with pytest.raises(ValueError, match="same shape"):
        panel_grid([[panel, np.zeros((8, 9, 3), np.uint8)]])


def test_prediction_panel_ends_with_a_legend_of_the_classes_shown():
    dataset = dataset_info("synthetic")
    height, width = 24, 30
    image = np.full((height, width, 3), 90, np.uint8)
    label = np.full((height, width), 255)  # ignored pixels are not listed
    label[:, :10], label[:, 10:20] = 0, 3

    def predicts_class_five(images, training=False):
        logits = np.zeros(images.shape[:3] + (dataset.num_classes,))
        logits[..., 5] = 1.0
        return logits

    panel = prediction_panel(predicts_class_five, image, label, dataset)
    grid_height = CAPTION_HEIGHT + height
    grid_width = 3 * width + 2 * SPACING
    # Narrower than two legend entries (120 px each): one row per class.
    assert panel.shape == (
        grid_height + SPACING + 3 * CAPTION_HEIGHT,
        grid_width,
        3,
    )
    legend = panel[grid_height + SPACING :]
    np.testing.assert_array_equal(
        legend, class_legend([0, 3, 5], dataset, grid_width)
    )
    # Each row starts with its class's swatch, in the dataset's palette.
    for row, class_id in enumerate((0, 3, 5)):
        swatch = legend[row * CAPTION_HEIGHT + 5, 5]
        np.testing.assert_array_equal(swatch, dataset.palette[class_id])
    assert class_legend([255], dataset, 200).shape == (0, 200, 3)


@pytest.mark.parametrize("captions", [False, True])
def test_gate_grid_has_the_image_and_one_panel_per_level(captions):
    height, width = 40, 56
    image = scene(height, width)
    rng = np.random.default_rng(0)
    sizes = [(10, 14), (5, 7), (3, 4), (2, 2)]
    gates = [rng.uniform(size=(1, h, w, 1)) for h, w in sizes]
    grid = gate_grid(image, gates, captions=captions)
    top = CAPTION_HEIGHT if captions else 0
    assert grid.shape == (
        height + top,
        (NUM_LEVELS + 1) * width + NUM_LEVELS * SPACING,
        3,
    )
    panels = [
        grid[top:, c * (width + SPACING) : c * (width + SPACING) + width]
        for c in range(NUM_LEVELS + 1)
    ]
    np.testing.assert_array_equal(panels[0], image)
    for panel, gate in zip(panels[1:], gates):
        np.testing.assert_array_equal(
            panel, gate_heatmap(gate[0], (height, width))
        )
    for c in range(NUM_LEVELS):
        gap = grid[:, (c + 1) * width + c * SPACING : (c + 1) * (width + 4)]
        assert (gap == 255).all()


# === Zeroing gates (Fig. 7b) ===


def random_levels(seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(2, h, w, CHANNELS)).astype("float32")
        for h, w in LEVEL_SIZES
    ]


def spread_gate_weights(layer, seed=1):
    rng = np.random.default_rng(seed)
    for conv in layer.gate_convs:
        kernel, bias = conv.get_weights()
        conv.set_weights(
            [rng.normal(size=kernel.shape), rng.normal(size=bias.shape)]
        )


@pytest.mark.parametrize("zeroed", [(0,), (1,), (2,), (0, 2)])
@pytest.mark.parametrize("gate_channels", [1, CHANNELS])
def test_zeroed_gff_gate_matches_numpy_eq5(zeroed, gate_channels):
    features = random_levels()
    layer = layers.GatedFullyFusion(
        gate_channels=gate_channels, return_gates=True
    )
    layer(features)
    spread_gate_weights(layer)
    normal, _ = layer(features)
    config = layer.get_config()

    layer.zeroed_levels = zeroed
    fused, used_gates = layer(features)
    layer.zeroed_levels = ()

    gates = [
        np_sigmoid(np_conv1x1(x, conv))
        for x, conv in zip(features, layer.gate_convs)
    ]
    gates = [
        np.zeros_like(g) if i in zeroed else g for i, g in enumerate(gates)
    ]
    expected = np_gated_fully_fusion(features, gates)
    for output, reference in zip(fused, expected):
        np.testing.assert_allclose(
            np.asarray(output), reference, rtol=1e-4, atol=1e-4
        )
    # The same, spelled out: a zeroed level receives every other level's
    # gated features with weight one and sends nothing.
    for z in zeroed:
        received = sum(
            np_resize_like(gates[i] * features[i], features[z])
            for i in range(len(features))
            if i != z
        )
        np.testing.assert_allclose(
            np.asarray(fused[z]), features[z] + received, rtol=1e-4, atol=1e-4
        )
    for level, gate in enumerate(used_gates):
        if level in zeroed:
            assert not np.asarray(gate).any()
        else:
            np.testing.assert_allclose(np.asarray(gate), gates[level], 1e-5)
    # The switch is not configuration, and off again the layer is unchanged.
    assert layer.get_config() == config and "zeroed" not in str(config)
    assert layers.GatedFullyFusion.from_config(config).zeroed_levels == ()
    again, _ = layer(features)
    for a, b in zip(again, normal):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_zeroed_gate_in_sequential_gff_sends_nothing():
    features = random_levels()
    layer = layers.GatedFullyFusion(order="sequential")
    layer(features)
    spread_gate_weights(layer)
    layer.zeroed_levels = (0,)
    fused = layer(features)
    gates = [
        np_sigmoid(np_conv1x1(x, conv))
        for x, conv in zip(features, layer.gate_convs)
    ]
    gates[0] = np.zeros_like(gates[0])
    # Level 0 is fused first and sends nothing once fused, so levels 1 and 2
    # see exactly the simultaneous sums without level 0.
    expected = np_gated_fully_fusion(features, gates)
    np.testing.assert_allclose(np.asarray(fused[0]), expected[0], atol=1e-4)
    level1 = (1 + gates[1]) * features[1] + (1 - gates[1]) * np_resize_like(
        gates[2] * features[2], features[1]
    )
    np.testing.assert_allclose(np.asarray(fused[1]), level1, atol=1e-4)
    # Level 2 receives level 1's fused value and still nothing from level 0.
    level2 = (1 + gates[2]) * features[2] + (1 - gates[2]) * np_resize_like(
        gates[1] * level1, features[2]
    )
    np.testing.assert_allclose(np.asarray(fused[2]), level2, atol=1e-4)


def test_zeroed_gated_fpn_gate_matches_numpy():
    features = random_levels()
    layer = layers.GatedFPNFusion()
    layer(features)
    spread_gate_weights(layer)
    layer.zeroed_levels = (1,)
    fused = layer(features)
    gates = [
        np_sigmoid(np_conv1x1(x, conv))
        for x, conv in zip(features, layer.gate_convs)
    ]
    gates[1] = np.zeros_like(gates[1])
    expected = [features[-1]]
    for level in reversed(range(len(features) - 1)):
        x, gate = features[level], gates[level]
        message = np_resize_like(gates[level + 1] * expected[-1], x)
        expected.append((1 + gate) * x + (1 - gate) * message)
    for output, reference in zip(fused, expected[::-1]):
        np.testing.assert_allclose(np.asarray(output), reference, atol=1e-4)
    # Level 1 sends nothing down: level 0 is its own input doubled by G_0.
    np.testing.assert_allclose(
        np.asarray(fused[0]), (1 + gates[0]) * features[0], atol=1e-4
    )


def test_predict_with_zeroed_gate_equals_a_gate_closed_by_its_weights():
    model = small_model()
    open_gates(model)
    rng = np.random.default_rng(0)
    images = (60 * rng.normal(size=(2, 64, 64, 3))).astype("float32")
    before = np.asarray(model(images, training=False))
    config = model.get_config()

    zeroed = np.asarray(model.predict_with_zeroed_gate(images, 1))
    assert zeroed.shape == before.shape
    assert np.abs(zeroed - before).max() > 1e-3  # the gate mattered
    # The switch is gone afterwards and never reached the config.
    assert model.head.fusion.zeroed_levels == ()
    assert model.get_config() == config
    np.testing.assert_array_equal(
        np.asarray(model(images, training=False)), before
    )

    # sigmoid(0 * x - 200) is exactly 0 in float32: the same gate, closed by
    # weights instead of the switch.
    conv = model.head.fusion.gate_convs[1]
    kernel, bias = conv.get_weights()
    conv.set_weights([np.zeros_like(kernel), np.full_like(bias, -200.0)])
    closed = np.asarray(model(images, training=False))
    assert_network_close(zeroed, closed)
    # Zeroing an already closed gate changes nothing.
    assert not gate_ablation(model, images, 1).any()

    with pytest.raises(ValueError, match="0..3"):
        model.predict_with_zeroed_gate(images, NUM_LEVELS)


def test_gate_ablation_marks_changed_pixels():
    model = small_model()
    open_gates(model)
    images = normalize_images(scene(64, 64)[None])
    logits, _ = model.gate_maps(images)
    predicted = np.argmax(np.asarray(logits), axis=-1)
    changed_any = False
    for level in range(NUM_LEVELS):
        changed = gate_ablation(model, images, level, logits=logits)
        assert changed.shape == (1, 64, 64) and changed.dtype == bool
        ablated = np.argmax(
            np.asarray(model.predict_with_zeroed_gate(images, level)), -1
        )
        np.testing.assert_array_equal(changed, ablated != predicted)
        changed_any |= changed.any()
    assert changed_any
    # Without precomputed logits it runs the model with the learned gates.
    np.testing.assert_array_equal(gate_ablation(model, images, 3), changed)


def test_gate_figure_layout_and_panels():
    model = small_model()
    open_gates(model)
    height, width = 48, 64
    image = scene(height, width)
    figure = gate_figure(model, image, SYNTHETIC.palette)
    row = height + CAPTION_HEIGHT
    assert figure.shape == (
        2 * row + SPACING,
        (NUM_LEVELS + 1) * width + NUM_LEVELS * SPACING,
        3,
    )

    def panel(r, c):
        top = r * (row + SPACING) + CAPTION_HEIGHT
        left = c * (width + SPACING)
        return figure[top : top + height, left : left + width]

    inputs = normalize_images(image[None])
    logits, gates = model.gate_maps(inputs)
    prediction = np.argmax(np.asarray(logits)[0], axis=-1)
    np.testing.assert_array_equal(panel(0, 0), image)
    np.testing.assert_array_equal(
        panel(1, 0), overlay(image, prediction, SYNTHETIC.palette)
    )
    for level in range(NUM_LEVELS):
        np.testing.assert_array_equal(
            panel(0, level + 1),
            gate_heatmap(np.asarray(gates[level])[0], (height, width)),
        )
        changed = gate_ablation(model, inputs, level, logits=logits)[0]
        ablation = panel(1, level + 1)
        highlighted = (ablation == HIGHLIGHT).all(axis=-1)
        np.testing.assert_array_equal(highlighted, changed)
        gray = ablation[~highlighted]
        assert (gray[:, 0] == gray[:, 1]).all() and (
            gray[:, 1] == gray[:, 2]
        ).all()


def test_gate_figure_with_a_dataset_ends_with_a_legend_of_predictions():
    model = small_model()
    open_gates(model)
    image = scene(48, 64)
    figure = gate_figure(model, image, SYNTHETIC.palette)
    with_legend = gate_figure(
        model, image, SYNTHETIC.palette, dataset=SYNTHETIC
    )
    height, width = figure.shape[:2]
    np.testing.assert_array_equal(with_legend[:height], figure)
    logits, _ = model.gate_maps(normalize_images(image[None]))
    predicted = np.unique(np.argmax(np.asarray(logits)[0], axis=-1))
    np.testing.assert_array_equal(
        with_legend[height + SPACING :],
        class_legend(predicted, SYNTHETIC, width),
    )
    assert with_legend.shape[0] > height + SPACING


def test_models_without_gates_are_refused(tmp_path):
    model = small_model(fusion="add")
    with pytest.raises(ValueError, match="no gates"):
        model.predict_with_zeroed_gate(np.zeros((1, 64, 64, 3)), 0)
    with pytest.raises(ValueError, match="no gates"):
        gate_figure(model, scene(64, 64), SYNTHETIC.palette)
    with pytest.raises(ValueError, match="no gates"):
        write_gate_figures(model, [], str(tmp_path), SYNTHETIC)


# === Files in, PNGs out ===


def test_read_image_converts_to_rgb_and_names_bad_files(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "gray.png")
    rgb = read_image(str(tmp_path / "gray.png"))
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], gray)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    np.testing.assert_array_equal(
        read_image(str(tmp_path / "alpha.png")), rgba[..., :3]
    )
    data = (tmp_path / "gray.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name in ("truncated.png", "empty.jpg", "missing.png"):
        with pytest.raises(ValueError, match=name):
            read_image(str(tmp_path / name))


def test_find_images_files_folders_globs(tmp_path):
    for name in ("b.png", "a.JPG", "notes.txt", "sub/c.jpeg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    folder = str(tmp_path)
    assert find_images(folder) == [
        os.path.join(folder, "a.JPG"),
        os.path.join(folder, "b.png"),
    ]
    assert find_images([f"{folder}/**/*.jpeg", f"{folder}/b.png"]) == [
        os.path.join(folder, "sub", "c.jpeg"),
        os.path.join(folder, "b.png"),
    ]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        find_images([f"{folder}/b.png", f"{folder}/nothing-here/*.png"])


def test_cityscapes_label_ids_match_cityscapesscripts():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    train_ids = np.arange(19)
    expected = [labels.trainId2label[t].id for t in range(19)]
    np.testing.assert_array_equal(cityscapes_label_ids(train_ids), expected)
    assert cityscapes_label_ids(np.array([255]))[0] == 0
    with pytest.raises(ValueError, match="19"):
        cityscapes_label_ids(np.array([19]))


class _ServingModule(tf.Module):
    """The SPEC 6 export contract, with a rule the test can predict: the
    class of a pixel is its red value // 32."""

    # No AutoGraph: nothing to convert, and its conversion cache once
    # handed this method another function's converted code under xdist.
    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
        autograph=False,
    )
    def serve(self, inputs):
        predictions = tf.cast(inputs[..., 0], tf.int32) // 32
        confidence = tf.ones(tf.shape(predictions), tf.float32)
        return {"predictions": predictions, "confidence": confidence}


def test_predict_files_from_a_saved_model(tmp_path, input_images):
    run = tmp_path / "run"
    module = _ServingModule()
    tf.saved_model.save(
        module,
        str(run / "export" / "3"),
        signatures={"serving_default": module.serve},
    )
    (run / "config.json").write_text(
        json.dumps({"data": {"dataset": "cityscapes"}})
    )
    segmenter = Predictor.load(str(run))
    assert segmenter.model is None and segmenter.dataset == "cityscapes"
    cityscapes = dataset_info("cityscapes")
    path = str(input_images / "street.png")
    written = predict_files(
        segmenter,
        [path],
        str(tmp_path / "out"),
        cityscapes,
        write_cityscapes_label_ids=True,
    )
    out = tmp_path / "out"
    assert written == [
        str(out / "street_mask.png"),
        str(out / "street_overlay.png"),
        str(out / "cityscapes_label_ids" / "street_labelIds.png"),
    ]
    classes = read_image(path)[..., 0].astype(np.int32) // 32
    mask = np.asarray(Image.open(out / "street_mask.png"))
    np.testing.assert_array_equal(mask, colorize(classes, cityscapes.palette))
    label_ids = np.asarray(Image.open(written[2]))
    assert label_ids.dtype == np.uint8 and label_ids.ndim == 2
    np.testing.assert_array_equal(label_ids, cityscapes_label_ids(classes))
    # A Serving base directory (numeric versions) works the same way.
    assert Predictor.load(str(run / "export")).path.endswith("3")
    with pytest.raises(ValueError, match="Cityscapes"):
        predict_files(
            segmenter,
            [path],
            str(out),
            SYNTHETIC,
            write_cityscapes_label_ids=True,
        )
    with pytest.raises(FileNotFoundError, match="No model"):
        Predictor.load(str(tmp_path / "out"))


@pytest.mark.parametrize(
    "options",
    [[], ["--assume_frozen_weights"]],
    ids=["default", "assume_frozen_weights"],
)
def test_predict_script_end_to_end(tmp_path, run_dir, input_images, options):
    out = tmp_path / "out"
    result = run_script(
        "predict.py",
        f"--model_dir={run_dir}",
        f"--input={input_images}",
        f"--output_dir={out}",
        *options,
    )
    assert result.returncode == 0, result.stderr
    model = load_model(str(run_dir))
    for stem, ext in (("street", "png"), ("gray", "jpg")):
        image = read_image(str(input_images / f"{stem}.{ext}"))
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        overlaid = np.asarray(Image.open(out / f"{stem}_overlay.png"))
        assert mask.shape == overlaid.shape == image.shape
        # Every mask pixel is a palette colour, and the classes are the
        # model's prediction for the normalized image.
        ids = ids_from_colors(mask)
        logits = model.predict(normalize_images(image[None]), verbose=0)
        np.testing.assert_array_equal(ids, np.argmax(logits[0], axis=-1))
        np.testing.assert_array_equal(
            overlaid, overlay(image, ids, SYNTHETIC.palette)
        )
    assert sorted(os.listdir(out)) == [
        "gray_mask.png",
        "gray_overlay.png",
        "street_mask.png",
        "street_overlay.png",
    ]


def test_predict_script_names_a_bad_image(tmp_path, run_dir):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    result = run_script(
        "predict.py",
        f"--model_dir={run_dir}",
        f"--input={tmp_path / 'broken.png'}",
        f"--output_dir={tmp_path / 'out'}",
    )
    assert result.returncode != 0
    assert "broken.png" in result.stderr and "Traceback" not in result.stderr


def test_visualize_gates_script_end_to_end(tmp_path, run_dir, input_images):
    out = tmp_path / "gates"
    result = run_script(
        "visualize_gates.py",
        f"--model_dir={run_dir}",
        f"--input={input_images}/*",
        f"--output_dir={out}",
    )
    assert result.returncode == 0, result.stderr
    for stem, ext, (height, width) in (
        ("street", "png", (48, 64)),
        ("gray", "jpg", (40, 56)),
    ):
        figure = np.asarray(Image.open(out / f"{stem}_gates.png"))
        # Two rows of captions + panels; the image and one panel per level;
        # then a legend of whole caption-high rows.
        panels = 2 * (height + CAPTION_HEIGHT) + SPACING
        legend_height = figure.shape[0] - panels - SPACING
        assert legend_height >= CAPTION_HEIGHT
        assert legend_height % CAPTION_HEIGHT == 0
        assert figure.shape[1:] == (
            (NUM_LEVELS + 1) * width + NUM_LEVELS * SPACING,
            3,
        )
        image = read_image(str(input_images / f"{stem}.{ext}"))
        np.testing.assert_array_equal(
            figure[CAPTION_HEIGHT : CAPTION_HEIGHT + height, :width], image
        )
        for c in range(NUM_LEVELS):
            left = (c + 1) * width + c * SPACING
            assert (figure[:panels, left : left + SPACING] == 255).all()


def test_visualize_gates_script_on_synthetic_scenes(tmp_path, run_dir):
    out = tmp_path / "gates"
    result = run_script(
        "visualize_gates.py",
        f"--model_dir={run_dir / 'model.keras'}",
        "--num_images=2",
        "--image_size=32,40",
        f"--output_dir={out}",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == [
        "synthetic_0000_gates.png",
        "synthetic_0001_gates.png",
    ]
    figure = Image.open(out / "synthetic_0001_gates.png")
    assert figure.size[0] == (NUM_LEVELS + 1) * 40 + NUM_LEVELS * SPACING
    # The panels, then at least one legend row.
    assert figure.size[1] >= (
        2 * (32 + CAPTION_HEIGHT) + 2 * SPACING + CAPTION_HEIGHT
    )
