"""Benchmarks: FLOP counting against hand counts, benchmark.py rows."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from gff_keras import GFFNet
from gff_keras.benchmarks import LIMIT_KINDS
from gff_keras.benchmarks import count_flops
from gff_keras.benchmarks import measure_convolution_limit
from gff_keras.benchmarks import measure_frozen_forward
from gff_keras.benchmarks import measure_inference_cost
from gff_keras.benchmarks import measure_model
from gff_keras.benchmarks import timing
from gff_keras.benchmarks.convolution_limit import convolution_flops
from gff_keras.keras_internals import op_determinism_enabled

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_script(name, *flags):
    """Runs scripts/<name>.py in a subprocess with the repository on path."""
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", f"{name}.py"), *flags],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=600,
    )


def test_flops_of_convolutions_and_dense_layers_equal_hand_counts():
    inputs = keras.Input((12, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    # Strided: 6x4 outputs, each 3*3*4 multiply-adds per filter.
    x = keras.layers.Conv2D(6, 3, strides=2, dilation_rate=1, padding="same")(x)
    # Dilated: TensorFlow runs it as a convolution of space-to-batch
    # blocks, exact when the size is a multiple of the rate (6x4, 2).
    x = keras.layers.Conv2D(2, 3, dilation_rate=2, padding="same")(x)
    outputs = keras.layers.Dense(5)(x)
    model = keras.Model(inputs, outputs)
    counts = count_flops(model, (2, 12, 8, 3), by_op_type=True)

    batch = 2
    first = 2 * batch * 12 * 8 * 4 * (3 * 3 * 3)
    second = 2 * batch * 6 * 4 * 6 * (3 * 3 * 4)
    third = 2 * batch * 6 * 4 * 2 * (3 * 3 * 6)
    dense = 2 * batch * 6 * 4 * 5 * 2
    biases = batch * 6 * 4 * (6 + 2 + 5)
    assert counts["Conv2D"] == first + second + third
    assert counts["MatMul"] == dense
    assert counts["BiasAdd"] == biases
    assert counts["multiply_add"] == first + second + third + dense
    assert counts["total"] == first + second + third + dense + biases
    assert counts["total"] == count_flops(model, (2, 12, 8, 3))


def test_flops_need_a_full_shape():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    with pytest.raises(ValueError, match="fully known"):
        count_flops(model, (1, None, None, 3))


def test_gff_flops_grow_with_the_added_layers():
    small = dict(backbone="resnet18", output_stride=8, context_channels=32)
    psp = GFFNet(5, fusion="none", dfp=False, **small)
    gff = GFFNet(5, fusion="gff", dfp=False, fused_channels=16, **small)
    shape = (1, 64, 64, 3)
    psp_flops, gff_flops = count_flops(psp, shape), count_flops(gff, shape)
    # Two 3x3 16->16 convs at each level's resolution: res2 at 1/4, the
    # other three at 1/8 (a lower bound on what GFF adds).
    refine = 2 * 2 * (16 * 16 + 3 * 8 * 8) * 16 * 9 * 16
    assert gff_flops - psp_flops > refine


def tiny_model():
    return GFFNet(
        4,
        backbone="resnet18",
        output_stride=32,
        fused_channels=16,
        context_channels=32,
    )


@pytest.mark.slow
def test_measure_model_reports_positive_timings(monkeypatch):
    model = tiny_model()
    row = measure_model(model, 48, runs=3, warmup=1, train_runs=2)
    assert row["forward_ms"] > 0 and row["train_step_ms"] > 0
    # Every timed call is kept, the reported figure is their median.
    assert len(row["forward_ms_all"]) == 3
    assert row["forward_ms"] == pytest.approx(
        sorted(row["forward_ms_all"])[1], abs=0.01
    )
    assert len(row["train_step_ms_all"]) == 2
    assert row["train_step_ms"] == pytest.approx(
        sum(row["train_step_ms_all"]) / 2, abs=0.01
    )
    assert row["images_per_s"] == pytest.approx(
        2e3 / row["train_step_ms"], rel=1e-2
    )
    assert row["peak_memory_mb"] > 100

    # After a deterministic training run in the same process (the peers
    # comparison), timings still run the kernels of a default run: under
    # op determinism a small-crop GFFNet step took 4.6x as long.
    states = []

    def timed(function, runs, warmup):
        states.append(op_determinism_enabled())
        return timings_ms(function, runs, warmup)

    timings_ms = timing._timings_ms
    monkeypatch.setattr(timing, "_timings_ms", timed)
    tf.config.experimental.enable_op_determinism()
    try:
        forward_only = measure_model(model, 48, runs=1, warmup=1, train_runs=0)
        assert op_determinism_enabled()  # restored
    finally:
        tf_config.disable_op_determinism()
    assert states == [False]
    assert set(forward_only) == {
        "forward_ms",
        "forward_ms_all",
        "peak_memory_mb",
    }


@pytest.mark.slow
def test_benchmark_script_writes_one_row_per_variant_and_preset(tmp_path):
    # One process for the three variants and a preset: each start of the
    # script costs seconds of TensorFlow import.
    out = tmp_path / "rows.json"
    result = _run_script(
        "benchmark",
        "--models=psp,gff,gff_dfp,denseaspp_gff_dfp_densenet121",
        "--backbone=resnet18",
        "--num_classes=5",
        "--image_size=32",
        "--no_timing",
        f"--json_out={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(r["model"], r["backbone"]) for r in rows] == [
        ("psp", "resnet18"),
        ("gff", "resnet18"),
        ("gff_dfp", "resnet18"),
        ("denseaspp_gff_dfp_densenet121", "densenet121"),
    ]
    for row in rows:
        assert {"backbone", "image_size", "params", "flops"} <= set(row)
        assert row["image_size"] == 32 and row["flops"] > 0
        # A preset keeps its own output stride unless one is given.
        assert row["output_stride"] == 8
        assert "forward_ms" not in row
    params = [r["params"] for r in rows[:3]]
    flops = [r["flops"] for r in rows[:3]]
    assert params == sorted(params) and flops == sorted(flops)
    expected = GFFNet(5, backbone="resnet18", fusion="gff", dfp=True)
    assert rows[2]["params"] == expected.parameter_count()
    expected = GFFNet.from_preset("denseaspp_gff_dfp_densenet121", 5)
    assert rows[3]["params"] == expected.parameter_count()
    assert "| gff_dfp | resnet18 |" in result.stdout
    assert "| denseaspp_gff_dfp_densenet121 | densenet121 |" in result.stdout


def test_measure_frozen_forward_reports_a_positive_time():
    model = tiny_model()
    row = measure_frozen_forward(model, 48, runs=1, warmup=1)
    assert set(row) == {
        "frozen_forward_ms",
        "frozen_forward_ms_all",
        "peak_memory_mb",
    }
    assert row["frozen_forward_ms"] > 0
    assert row["frozen_forward_ms_all"] == [row["frozen_forward_ms"]]


@pytest.mark.parametrize("kind", LIMIT_KINDS)
def test_convolution_limit_reports_the_probe_flops_and_rate(kind):
    shape = (1, 8, 8, 16)
    limit = measure_convolution_limit(kind, runs=2, warmup=1, shape=shape)
    forward_flops = 2 * 8 * 8 * 16 * 16 * 9
    assert convolution_flops(shape) == forward_flops
    expected = 3 * forward_flops if kind == "training" else forward_flops
    assert limit["gflops"] == pytest.approx(expected / 1e9, abs=1e-5)
    assert limit["ms"] > 0
    assert limit["gflops_per_s"] == pytest.approx(
        expected / limit["ms"] / 1e6, rel=0.05, abs=0.1
    )
    with pytest.raises(ValueError, match="must be one of"):
        measure_convolution_limit("backward", shape=shape)


def _load_script(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(REPO, "scripts", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fractions_of_the_limit_count_convolution_flops_only():
    benchmark = _load_script("benchmark")
    row = {
        "flops": 12e9,  # convolutions and BatchNorm arithmetic
        "conv_flops": 10e9,
        "forward_ms": 100.0,
        "frozen_forward_ms": 50.0,
        "train_step_ms": 1000.0,
    }
    limits = {
        "forward_variable": {"gflops_per_s": 200.0},
        "forward_constant": {"gflops_per_s": 400.0},
        "training": {"gflops_per_s": 150.0},
    }
    settings = {"image_size": 512, "train_image_size": 256,
                "train_batch_size": 2}  # fmt: skip
    benchmark.add_fractions(row, settings, limits)
    # 10 GFLOP in 0.1 s = 100 GFLOP/s of 200; frozen 200 of 400.
    assert row["forward_of_limit"] == pytest.approx(0.5)
    assert row["frozen_of_limit"] == pytest.approx(0.5)
    # 3 x 10 GFLOP x (256/512)^2 x 2 images = 15 GFLOP in 1 s, of 150.
    assert row["train_gflops_per_s"] == pytest.approx(15.0)
    assert row["train_of_limit"] == pytest.approx(0.1)


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "variables"])
def test_inference_cost_times_whole_images_and_sliding_windows(frozen):
    model = tiny_model()
    whole = measure_inference_cost(model, (40, 56), frozen=frozen, runs=2)
    assert whole["image_shape"] == [40, 56] and whole["frozen"] is frozen
    assert whole["mode"] == "whole" and len(whole["forward_ms_all"]) == 2
    assert whole["setup_ms"] > 0 and whole["first_call_ms"] > 0
    assert whole["forward_ms"] > 0 and whole["peak_memory_mb"] > 100
    windows = measure_inference_cost(
        model, (40, 56), mode="slide", crop_size=32, stride=24,
        frozen=frozen, runs=1,
    )  # fmt: skip
    assert (windows["mode"], windows["crop_size"], windows["stride"]) == (
        "slide",
        32,
        24,
    )
    with pytest.raises(ValueError, match="needs `crop_size`"):
        measure_inference_cost(model, (40, 56), mode="slide")


@pytest.mark.slow
def test_inference_cost_script_writes_a_row_per_setting(tmp_path):
    out = tmp_path / "cost.json"
    result = _run_script(
        "benchmark_inference_cost",
        "--backbone=resnet18",
        "--model=psp",
        "--num_classes=3",
        "--sizes=40x56",
        "--slide=40x56:32:24",
        # Without --keras: a fresh process per setting is seconds of
        # TensorFlow import; the Keras path is measured in
        # test_inference_cost_times_whole_images_and_sliding_windows.
        "--runs=1",
        f"--json_out={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(r["mode"], r["frozen"]) for r in rows] == [
        ("whole", True),
        ("slide", True),
    ]
    assert all(r["image_shape"] == [40, 56] for r in rows)
    assert "| psp | resnet18 | 40x56 | slide 32/24 | frozen |" in result.stdout
    bad = _run_script(
        "benchmark_inference_cost",
        "--sizes=1024",
    )
    assert bad.returncode != 0
    assert "expected HxW, e.g. 1024x2048; got '1024'" in bad.stderr
