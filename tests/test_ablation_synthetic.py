"""The synthetic ablation runner: reproducible numbers, results files."""

import json
import os
import subprocess
import sys

import keras
import pytest
from PIL import Image

from experiments import ablation_synthetic
from experiments import get_experiment
from gff_keras import GFFNet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_ablation_script(output_dir, results_dir, variants="pspnet,gff"):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "scripts", "ablation_synthetic.py"),
            "--budget=reduced",
            f"--variants={variants}",
            "--seeds=3",
            f"--output_dir={output_dir}",
            f"--results_dir={results_dir}",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(
        os.path.join(results_dir, "ablation_synthetic_reduced.json")
    ) as f:
        return json.load(f), result.stdout


def scores(results):
    return {
        name: [
            (run["seed"], run["mean_iou"], run["per_class_iou"])
            for run in variant["runs"]
        ]
        for name, variant in results["variants"].items()
    }


@pytest.mark.slow
def test_rerun_with_the_same_seed_gives_the_same_numbers(tmp_path):
    first, stdout = run_ablation_script(tmp_path / "a", tmp_path / "a_results")
    # The rerun repeats the variant with gates (its numbers and gate
    # statistics), not the whole table: each run costs tens of seconds.
    second, _ = run_ablation_script(
        tmp_path / "b", tmp_path / "b_results", variants="gff"
    )
    assert scores(second)["gff"] == scores(first)["gff"]
    assert first["gate_statistics"] == second["gate_statistics"]

    assert list(first["variants"]) == ["pspnet", "gff"]
    gff = first["variants"]["gff"]
    assert set(gff["runs"][0]["per_class_iou"]) == {
        "sky", "ground", "building", "vegetation", "pole", "wire",
        "small object", "sign",
    }  # fmt: skip
    for key in ("mean_iou", "thin_iou", "small_iou", "thin_small_iou"):
        assert set(gff[key]) == {"mean", "std"}
    assert gff["mean_iou"]["std"] == 0.0  # one seed
    assert first["budget_settings"]["steps"] == 3
    assert set(first["gate_statistics"]["gff"]) == {"G1", "G2", "G3", "G4"}
    for groups in first["gate_statistics"]["gff"].values():
        for group in ("thin", "small", "large"):
            assert 0.0 <= groups[group]["mean"] <= 1.0
    assert "pspnet" not in first["gate_statistics"]

    chart = Image.open(
        tmp_path / "a_results" / "ablation_synthetic_reduced.png"
    )
    assert chart.size[0] > 800 and chart.size[1] > 300
    assert "gff: mIoU" in stdout
    assert "| variant | mIoU | gain |" in stdout


def test_configs_share_one_budget_and_differ_only_in_fusion():
    configs = {
        name: ablation_synthetic.ablation_config(name, seed=1)
        for name in ablation_synthetic.VARIANTS
    }
    reference = configs["pspnet"].to_dict()
    for name, config in configs.items():
        values = config.to_dict()
        assert values["data"] == reference["data"]
        assert values["schedule"] == reference["schedule"]
        assert values["optimizer"] == reference["optimizer"]
        assert values["runtime"]["seed"] == 1
        assert values["runtime"]["deterministic"]
        fusion, dfp = ablation_synthetic.VARIANTS[name]
        assert (config.model.fusion.type, config.model.dfp.type) == (
            fusion,
            dfp,
        )
        # Registered, so train.py --experiment can run any variant.
        registered = get_experiment(f"synthetic_ablation_{name}")
        assert registered.model.fusion.type == fusion
    with pytest.raises(KeyError, match="Unknown ablation variant"):
        ablation_synthetic.ablation_config("unet")


def test_a_mixed_precision_ablation_differs_only_in_its_policy():
    float32 = ablation_synthetic.ablation_config("gff", seed=2, budget="long")
    bf16 = ablation_synthetic.ablation_config(
        "gff", seed=2, budget="long", mixed_precision="mixed_bfloat16"
    )
    assert float32.runtime.mixed_precision == "float32"
    assert bf16.runtime.mixed_precision == "mixed_bfloat16"
    bf16.runtime.mixed_precision = "float32"
    assert bf16.to_dict() == float32.to_dict()
    with pytest.raises(ValueError, match="runtime.mixed_precision"):
        ablation_synthetic.ablation_config("gff", mixed_precision="bf16")


def test_gate_statistics_of_a_bfloat16_model_match_its_float32_twin():
    # The gates of a mixed-precision model are bfloat16; averaged over a
    # scene's thousands of pixels in that dtype the sums stop growing and
    # the "large" mean came out near 0.03 for every seed.
    def small_gffnet():
        return GFFNet(
            8,
            backbone="resnet18",
            output_stride=32,
            fused_channels=16,
            context_channels=32,
        )

    float32 = small_gffnet()
    expected = ablation_synthetic.gate_statistics(float32, 1, 64)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        bfloat16 = small_gffnet()
        bfloat16.set_weights(float32.get_weights())
        actual = ablation_synthetic.gate_statistics(bfloat16, 1, 64)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for level, groups in expected.items():
        for group, value in groups.items():
            # bfloat16 activations: about 2-3 significant digits.
            assert actual[level][group] == pytest.approx(value, abs=0.02), (
                level,
                group,
            )
