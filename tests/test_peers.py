"""GFFNet against keras-hub and keras-cv segmenters (experiments/peers.py)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments import peers
from gff_keras.training import SegmentationLoss

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_peer_shares_the_ablation_recipe():
    reference = peers.peer_config("gffnet_gff_dfp", seed=2).to_dict()
    assert reference["schedule"]["steps"] == 400
    assert reference["data"]["batch_size"] == 8
    assert reference["data"]["crop_size"] == 64
    for name in peers.PEERS:
        values = peers.peer_config(name, seed=2).to_dict()
        for section in ("data", "schedule", "optimizer", "loss"):
            assert values[section] == reference[section], (name, section)
        assert values["runtime"]["seed"] == 2
        assert values["runtime"]["deterministic"]
    assert peers.peer_config("gffnet_gff").model.dfp.type == "none"
    with pytest.raises(KeyError, match="Unknown peer 'unet'"):
        peers.peer_config("unet")
    with pytest.raises(KeyError, match="Unknown budget"):
        peers.peer_config("gffnet_gff", budget="huge")


def test_gffnet_rows_reuse_only_matching_ablation_runs(tmp_path):
    def write(budget="long", lr=None, seeds=(0, 1, 2), variant="gff"):
        config = peers.peer_config("gffnet_gff").to_dict()
        # A file written before data.check existed matches all the same.
        del config["data"]["check"]
        if lr is not None:
            config["optimizer"]["learning_rate"] = lr
        runs = [{"seed": seed, "mean_iou": 0.1 * seed} for seed in seeds]
        path = tmp_path / f"ablation_{budget}_{lr}_{len(seeds)}.json"
        path.write_text(
            json.dumps(
                {
                    "budget": budget,
                    "config": config,
                    "variants": {variant: {"runs": runs}},
                }
            )
        )
        return str(path)

    runs = peers.ablation_runs("gffnet_gff", (2, 0), "full", write())
    assert [run["seed"] for run in runs] == [2, 0]
    assert peers.ablation_runs("gffnet_gff_dfp", (0,), "full", write()) is None
    assert peers.ablation_runs("gffnet_gff", (0,), "tiny", write()) is None
    assert (
        peers.ablation_runs("gffnet_gff", (0,), "full", write("full")) is None
    )
    assert (
        peers.ablation_runs("gffnet_gff", (0,), "full", write(lr=0.02)) is None
    )
    assert (
        peers.ablation_runs("gffnet_gff", (0, 1), "full", write(seeds=(0,)))
        is None
    )
    assert (
        peers.ablation_runs("hub_segformer_b0", (0,), "full", write()) is None
    )
    missing = str(tmp_path / "missing.json")
    assert peers.ablation_runs("gffnet_gff", (0,), "full", missing) is None
    # The committed ablation holds the GFFNet rows of the committed table.
    committed = peers.ablation_runs(
        "gffnet_gff_dfp", peers.DEFAULT_SEEDS, "full", peers.ABLATION_RESULTS
    )
    assert [run["seed"] for run in committed] == list(peers.DEFAULT_SEEDS)


def test_a_peer_whose_library_is_missing_is_named_with_the_reason(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(
        peers.PEERS,
        "missing_peer",
        peers.Peer("no_such_segmentation_library", "absent", build=None),
    )
    results = peers.run_comparison(
        str(tmp_path / "runs"),
        peers=("missing_peer",),
        seeds=(0,),
        budget="tiny",
        log=lambda line: None,
    )
    assert results["models"] == {}
    reason = results["errors"]["missing_peer"]
    assert "no_such_segmentation_library is not installed" in reason
    assert "gff_keras[peers]" in reason
    with open(tmp_path / "runs" / "peers.json") as f:
        assert json.load(f)["errors"] == results["errors"]
    assert "| missing_peer | did not run: " in peers.markdown_table(results)


# One run of the comparison script with one GFFNet row (the ablation's own
# runner) and one keras-hub row (the shared training of every other peer,
# here through SegFormer's fixed-size rebuild, the path with most steps);
# the other peers share that training code, and
# `test_every_peer_builds_predicts_and_trains` steps each of them.
TINY_RUN_PEERS = ("gffnet_gff", "hub_segformer_b0")


@pytest.mark.slow
def test_compare_peers_tiny_budget_trains_scores_and_times(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "scripts", "compare_peers.py"),
            "--budget=tiny",
            "--seeds=0",
            f"--peers={','.join(TINY_RUN_PEERS)}",
            f"--output_dir={tmp_path / 'runs'}",
            f"--results_dir={tmp_path / 'results'}",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "results" / "peers_tiny.json") as f:
        results = json.load(f)
    # keras-hub and keras-cv are test dependencies: every peer must run.
    assert results["errors"] == {}
    assert list(results["models"]) == list(TINY_RUN_PEERS)
    assert results["budget_settings"]["speed_image_size"] == 64
    assert results["versions"]["keras_hub"]
    for name, model in results["models"].items():
        assert [run["seed"] for run in model["runs"]] == [0]
        run = model["runs"][0]
        assert 0.0 <= run["mean_iou"] <= 1.0
        assert len(run["per_class_iou"]) == 8
        assert model["mean_iou"]["mean"] == run["mean_iou"]
        assert model["parameters"] > 1e6
        assert model["gflops"] > 0 and model["forward_ms"] > 0
        assert model["train_step_ms"] > 0
        assert f"| {name} | {model['library']} |" in result.stdout
        run_dir = tmp_path / "runs" / f"{name}_seed0"
        assert os.path.exists(run_dir / "evaluation.json")
        # GFFNet rows are the ablation's own runs; the others save weights.
        if peers.PEERS[name].ablation_variant:
            assert os.path.exists(run_dir / "metrics.json")
        else:
            assert os.path.exists(run_dir / "model.weights.h5")


@pytest.mark.parametrize(
    "name", [name for name in peers.PEERS if peers.PEERS[name].build]
)
def test_every_peer_builds_predicts_and_trains(name):
    # What the comparison trains: logits for 8 classes at the input's
    # size, moved by a step of the shared loss.
    peer = peers.PEERS[name]
    model = peer.build(8, 64 if peer.fixed_size else None)
    assert model.count_params() > 1e6
    images = np.random.default_rng(0).uniform(size=(1, 64, 64, 3))
    logits = model(images.astype("float32"), training=False)
    assert tuple(logits.shape) == (1, 64, 64, 8)
    assert np.all(np.isfinite(np.asarray(logits)))
    # The comparison's evaluation traces it for images of any size, with
    # the scenes' size stated (UpSampling2D needs a static size).
    scored = tf.function(peers._StaticShape(model, 64))
    traced = scored.get_concrete_function(tf.TensorSpec([None, None, None, 3]))
    assert traced.output_shapes.as_list() == [None, 64, 64, 8]
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=SegmentationLoss(ignore_label=255),
        metrics=[],
    )
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(images, np.ones((1, 64, 64), np.int32))
    assert np.isfinite(loss)
    changed = [
        not np.array_equal(old, np.asarray(new))
        for old, new in zip(before, model.trainable_weights)
    ]
    assert sum(changed) > 0.9 * len(changed)
