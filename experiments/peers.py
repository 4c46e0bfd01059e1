"""GFFNet against the Keras segmenters a user would pick instead.

The peers are keras-hub's `DeepLabV3ImageSegmenter` (DeepLabV3+ on a
ResNet-18 or ResNet-50) and `SegFormerImageSegmenter` (SegFormer-B0), and
keras-cv's `DeepLabV3Plus` (on a ResNet-18 v2), each built without
pretrained weights. Every model, GFFNet included, is trained from scratch
with the recipe of the 400-step synthetic ablation (`ablation_synthetic`'s
`"long"` budget): the same seeded stream of synthetic crops, the same
optimizer, schedule, loss and seeds, and is scored on the same validation
scenes. Each model is also timed at 512x512 on the same machine.
`run_comparison` writes the results; `scripts/compare_peers.py` is its
command line.
"""

import dataclasses
import json
import os
import time
from collections.abc import Callable

import keras
import tensorflow as tf

from experiments import RESULTS_DIR
from experiments.ablation_synthetic import ablation_config
from experiments.ablation_synthetic import run_record
from experiments.ablation_synthetic import summarize_variant
from gff_keras import atomic_files
from gff_keras.benchmarks.flops import count_flops
from gff_keras.benchmarks.machine import machine_description
from gff_keras.benchmarks.timing import measure_model
from gff_keras.data import dataset_info
from gff_keras.losses import SegmentationLoss
from gff_keras.training.experiment_config import ExperimentConfig
from gff_keras.training.experiment_runner import build_model
from gff_keras.training.experiment_runner import make_evaluate_fn
from gff_keras.training.experiment_runner import make_train_dataset
from gff_keras.training.experiment_runner import run_experiment
from gff_keras.training.experiment_runner import run_identity_differences
from gff_keras.training.optimization import build_optimizer

DEFAULT_SEEDS = (0, 1, 2)
# "full" is the committed table (the ablation's 400-step budget, every
# model timed at 512x512); "tiny" runs every peer for a few steps (tests).
# Its scenes and crops are 64 px: DeepLabV3+ upsamples its stride-32
# features by a fixed 8x onto the stride-4 ones, so sides must be multiples
# of 32, and keras-hub's MiT encoder cannot be built for 32 px inputs.
BUDGETS = {
    "full": {
        "ablation_budget": "long",
        "synthetic_image_size": None,
        "crop_size": None,
        "speed_image_size": 512,
        "speed_runs": 3,
    },
    "tiny": {
        "ablation_budget": "reduced",
        "synthetic_image_size": 64,
        "crop_size": 64,
        "speed_image_size": 64,
        "speed_runs": 1,
    },
}
RESULTS_NAME = "peers"
# The committed 400-step ablation: its GFF and GFF+DFP runs are this
# comparison's GFFNet runs (same config, seeds and stream), so the full
# budget reads them instead of training them again.
ABLATION_RESULTS = os.path.join(RESULTS_DIR, "ablation_synthetic_long.json")
# The sections that make two runs the same training, up to the seed.
RECIPE_SECTIONS = ("data", "schedule", "optimizer", "loss")


@dataclasses.dataclass(frozen=True)
class Peer:
    """A segmenter in the comparison.

    Attributes:
        library: the package that provides it (`"gff_keras"`, `"keras_hub"`,
            `"keras_cv"`).
        description: what it is, for the table.
        build: `(num_classes, image_size) -> keras.Model` returning logits
            at the input's resolution; `image_size` is `None` for models
            that accept any size, an int for those that fix it when built.
        fixed_size: whether `build` fixes the input size (SegFormer: the
            keras-hub MiT encoder needs a static shape).
        ablation_variant: for GFFNet rows, the `ablation_synthetic`
            variant trained by the ablation's own runner.
    """

    library: str
    description: str
    build: Callable | None = None
    fixed_size: bool = False
    ablation_variant: str | None = None


def _keras_hub_resnet(depth):
    import keras_hub

    blocks, block_type = {
        18: ([2, 2, 2, 2], "basic_block"),
        50: ([3, 4, 6, 3], "bottleneck_block"),
    }[depth]
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=blocks,
        stackwise_num_strides=[1, 2, 2, 2],
        block_type=block_type,
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )


def _hub_deeplab(depth):
    def build(num_classes, image_size=None):
        import keras_hub

        # The settings of keras-hub's DeepLabV3+ preset: ASPP on the
        # stride-32 features, 48-channel stride-4 projection, no dilation
        # in the encoder.
        backbone = keras_hub.models.DeepLabV3Backbone(
            image_encoder=_keras_hub_resnet(depth),
            low_level_feature_key="P2",
            spatial_pyramid_pooling_key="P5",
            upsampling_size=8,
            dilation_rates=[6, 12, 18],
        )
        return keras_hub.models.DeepLabV3ImageSegmenter(
            backbone=backbone, num_classes=num_classes, activation=None
        )

    return build


def _hub_segformer_b0(num_classes, image_size):
    import keras_hub

    # MiT-B0 as in keras-hub's `mit_b0` preset, SegFormer-B0's 256-channel
    # decoder.
    encoder = keras_hub.models.MiTBackbone(
        layerwise_depths=[2, 2, 2, 2],
        num_layers=4,
        layerwise_num_heads=[1, 2, 5, 8],
        layerwise_sr_ratios=[8, 4, 2, 1],
        max_drop_path_rate=0.1,
        layerwise_patch_sizes=[7, 3, 3, 3],
        layerwise_strides=[4, 2, 2, 2],
        hidden_dims=[32, 64, 160, 256],
        image_shape=(image_size, image_size, 3),
    )
    backbone = keras_hub.models.SegFormerBackbone(
        image_encoder=encoder, projection_filters=256
    )
    return keras_hub.models.SegFormerImageSegmenter(
        backbone=backbone, num_classes=num_classes
    )


def _cv_deeplab_resnet18_v2(num_classes, image_size=None):
    import keras_cv

    backbone = keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[64, 128, 256, 512],
        stackwise_blocks=[2, 2, 2, 2],
        stackwise_strides=[1, 2, 2, 2],
        include_rescaling=False,
    )
    segmenter = keras_cv.models.DeepLabV3Plus(
        backbone=backbone, num_classes=num_classes
    )
    # keras-cv's head ends in a softmax; the log of its probabilities are
    # logits with the same softmax, so the shared loss trains it as a
    # keras-cv user's cross-entropy on probabilities would.
    inputs = keras.Input((None, None, 3))
    probabilities = segmenter(inputs)
    logits = keras.layers.Activation(_log_probabilities, name="log")(
        probabilities
    )
    return keras.Model(inputs, logits, name="keras_cv_deeplabv3plus")


def _log_probabilities(probabilities):
    return keras.ops.log(keras.ops.maximum(probabilities, 1e-7))


PEERS = {
    "gffnet_gff": Peer(
        "gff_keras",
        "GFFNet, GFF on a dilated ResNet-18 (output stride 8)",
        ablation_variant="gff",
    ),
    "gffnet_gff_dfp": Peer(
        "gff_keras",
        "GFFNet, GFF+DFP on a dilated ResNet-18 (output stride 8)",
        ablation_variant="gff_dfp",
    ),
    "hub_deeplabv3plus_resnet18": Peer(
        "keras_hub",
        "DeepLabV3ImageSegmenter (DeepLabV3+), ResNet-18",
        _hub_deeplab(18),
    ),
    "hub_deeplabv3plus_resnet50": Peer(
        "keras_hub",
        "DeepLabV3ImageSegmenter (DeepLabV3+), ResNet-50",
        _hub_deeplab(50),
    ),
    "hub_segformer_b0": Peer(
        "keras_hub",
        "SegFormerImageSegmenter, SegFormer-B0 (MiT-B0)",
        _hub_segformer_b0,
        fixed_size=True,
    ),
    "cv_deeplabv3plus_resnet18v2": Peer(
        "keras_cv",
        "DeepLabV3Plus, ResNet-18 v2",
        _cv_deeplab_resnet18_v2,
    ),
}


def peer_config(
    name: str, seed: int = 0, budget: str = "full"
) -> ExperimentConfig:
    """The shared training recipe, as an `ExperimentConfig`.

    Every model gets the same data, optimizer, schedule and evaluation:
    those of the ablation's GFF+DFP run at the budget's size. For GFFNet
    rows it is the ablation variant's own config.

    Args:
        name: a key of `PEERS`.
        seed: the training seed.
        budget: a key of `BUDGETS`.

    Returns:
        A validated `ExperimentConfig`.

    Raises:
        KeyError: for an unknown peer or budget.
    """
    if name not in PEERS:
        raise KeyError(f"Unknown peer {name!r}; peers: {', '.join(PEERS)}.")
    if budget not in BUDGETS:
        raise KeyError(
            f"Unknown budget {budget!r}; budgets: {', '.join(BUDGETS)}."
        )
    settings = BUDGETS[budget]
    variant = PEERS[name].ablation_variant or "gff_dfp"
    config = ablation_config(variant, seed, settings["ablation_budget"])
    config.name = f"peers_{name}"
    if settings["synthetic_image_size"]:
        config.data.synthetic_image_size = settings["synthetic_image_size"]
    if settings["crop_size"]:
        config.data.crop_size = settings["crop_size"]
    return config.validate()


def _build_peer(peer, num_classes, image_size):
    if peer.fixed_size:
        return peer.build(num_classes, image_size)
    return peer.build(num_classes, None)


def _train_peer(peer, config, run_dir):
    """Trains a non-GFFNet peer on the shared stream; returns its scores."""
    info = dataset_info(config.data.dataset)
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.runtime.seed)
    keras.mixed_precision.set_global_policy("float32")
    model = _build_peer(peer, info.num_classes, config.data.crop_size)
    model.compile(
        optimizer=build_optimizer(config.optimizer, config.schedule),
        loss=SegmentationLoss(ignore_label=info.ignore_label),
        # keras-hub tasks add an accuracy metric by default, which expects
        # labels with a trailing channel axis; none is needed here.
        metrics=[],
    )
    model.fit(
        make_train_dataset(config),
        epochs=1,
        steps_per_epoch=config.schedule.steps,
        shuffle=False,
        verbose=0,
    )
    scored = model
    if peer.fixed_size:
        # The same weights at the validation scenes' size.
        scored = peer.build(info.num_classes, config.data.synthetic_image_size)
        scored.set_weights(model.get_weights())
    evaluation = make_evaluate_fn(config)(
        _StaticShape(scored, config.data.synthetic_image_size)
    )
    with atomic_files.replaced_when_written(
        os.path.join(run_dir, "model.weights.h5")
    ) as path:
        model.save_weights(path)
    return evaluation


class _StaticShape:
    """Calls a model on square images of a size known when traced.

    The evaluation traces its prediction once for any image size; the
    keras-hub MiT encoder computes its token grid from the static shape,
    and UpSampling2D cannot resize a tensor whose size is unknown, so the
    synthetic scenes' fixed size is stated first.
    """

    def __init__(self, model, image_size):
        self.model = model
        self.image_size = image_size

    def __call__(self, images, training=False):
        size = self.image_size
        # TF API: Keras has no op that states a tensor's static shape.
        images = tf.ensure_shape(images, [None, size, size, 3])
        return self.model(images, training=training)


def train_and_evaluate(name: str, seed: int, budget: str, run_dir: str):
    """Trains one model for one seed (or reads its finished run).

    GFFNet rows run the ablation's own runner (`run_experiment`); the other
    peers are compiled with the same optimizer and loss and fit on the same
    stream. `<run_dir>/evaluation.json` marks a finished run, so an
    interrupted comparison continues.

    Returns:
        `ablation_synthetic.run_record` of the evaluation after the last
        step (training seconds included).
    """
    record_file = os.path.join(run_dir, "evaluation.json")
    if os.path.exists(record_file):
        with open(record_file) as f:
            return json.load(f)
    peer = PEERS[name]
    config = peer_config(name, seed, budget)
    keras.backend.clear_session()
    started = time.time()
    if peer.ablation_variant:
        evaluation = run_experiment(config, run_dir)["final"]
    else:
        os.makedirs(run_dir, exist_ok=True)
        evaluation = _train_peer(peer, config, run_dir)
    record = run_record(seed, evaluation, time.time() - started)
    atomic_files.write_json(record_file, record)
    return record


def measure_speed(
    name: str, image_size: int, runs: int = 3, budget: str = "full"
) -> dict:
    """Parameters, GFLOPs, forward and training-step time of one model.

    The model is the one trained in the comparison (8 synthetic classes);
    forward is one `image_size` image, the training step two (SGD with
    momentum, the shared loss), as in `scripts/benchmark.py`.

    Returns:
        `parameters`, `gflops` (multiply-adds counted as 2, for one image),
        `forward_ms`, `train_step_ms`.
    """
    peer = PEERS[name]
    info = dataset_info("synthetic")
    keras.backend.clear_session()
    if peer.ablation_variant:
        # The GFFNet trained at this budget (its head width depends on it).
        model = build_model(peer_config(name, budget=budget))
        loss = None
    else:
        model = _build_peer(peer, info.num_classes, image_size)
        loss = SegmentationLoss(ignore_label=info.ignore_label)
    flops = count_flops(model, (1, image_size, image_size, 3), by_op_type=True)
    timing = measure_model(
        model, image_size, runs=runs, warmup=1, train_runs=runs, loss=loss
    )
    return {
        "parameters": int(model.count_params()),
        "gflops": round(flops["multiply_add"] / 1e9, 2),
        "forward_ms": timing["forward_ms"],
        "train_step_ms": timing["train_step_ms"],
    }


def ablation_runs(
    name: str, seeds, budget: str, results_file: str
) -> list | None:
    """A GFFNet row's runs from an ablation results file, if they match.

    Args:
        name: a GFFNet key of `PEERS`.
        seeds: the seeds wanted.
        budget: a key of `BUDGETS`.
        results_file: an `ablation_synthetic` results JSON.

    Returns:
        The run records for `seeds`, or `None` when the file is missing,
        was trained at another budget or with another recipe, or lacks the
        variant or a seed.
    """
    variant = PEERS[name].ablation_variant
    if not variant or not os.path.exists(results_file):
        return None
    with open(results_file) as f:
        results = json.load(f)
    if results.get("budget") != BUDGETS[budget]["ablation_budget"]:
        return None
    wanted = peer_config(name, seeds[0], budget).to_dict()
    if run_identity_differences(
        {
            section: results["config"].get(section)
            for section in RECIPE_SECTIONS
        },
        {section: wanted[section] for section in RECIPE_SECTIONS},
    ):
        return None
    runs = {
        run["seed"]: run
        for run in results["variants"].get(variant, {}).get("runs", [])
    }
    if not all(seed in runs for seed in seeds):
        return None
    return [runs[seed] for seed in seeds]


def _train_seeds(name, seeds, budget, output_dir, log):
    runs = []
    for seed in seeds:
        run_dir = os.path.join(output_dir, f"{name}_seed{seed}")
        runs.append(train_and_evaluate(name, seed, budget, run_dir))
        log(
            f"{name} seed {seed}: mIoU {runs[-1]['mean_iou']:.3f} "
            f"({runs[-1]['seconds']:.0f} s)"
        )
    return runs


def _unavailable(peer):
    """Why a peer cannot run here, or `None`."""
    if peer.library == "gff_keras":
        return None
    try:
        __import__(peer.library)
    except ImportError as error:
        return (
            f"{peer.library} is not installed ({error}); "
            "pip install 'gff_keras[peers]'"
        )
    return None


def run_comparison(
    output_dir: str,
    *,
    peers=tuple(PEERS),
    seeds=DEFAULT_SEEDS,
    budget: str = "full",
    results_file: str | None = None,
    ablation_results: str | None = None,
    speed_only=(),
    log=print,
) -> dict:
    """Trains, scores and times every peer; writes the results JSON.

    A peer whose library is missing, or that fails to build or train, is
    recorded under `"errors"` with the reason, and the others go on.
    GFFNet rows are read from `ablation_results` when it holds their
    variant and seeds at this budget and recipe (`ablation_runs`); they
    are timed here all the same.

    Args:
        output_dir: folder for the run directories
            (`<output_dir>/<peer>_seed<seed>`).
        peers: keys of `PEERS`.
        seeds: training seeds; every peer gets all of them.
        budget: a key of `BUDGETS`.
        results_file: defaults to `<output_dir>/peers.json`.
        ablation_results: an `ablation_synthetic` results JSON whose
            matching GFFNet runs are used instead of training them;
            `None` trains every model.
        speed_only: peers that are timed but not trained (their row has
            no runs and says so), for models whose training this machine
            cannot afford at the budget.
        log: progress printer.

    Returns:
        The results dict written to `results_file`.

    Raises:
        KeyError: for an unknown peer or budget.
    """
    for name in peers:
        peer_config(name, budget=budget)
    settings = BUDGETS[budget]
    results_file = results_file or os.path.join(
        output_dir, f"{RESULTS_NAME}.json"
    )
    models, errors = {}, {}
    started = time.time()
    for name in peers:
        peer = PEERS[name]
        reason = _unavailable(peer)
        if reason:
            errors[name] = reason
            log(f"{name}: skipped, {reason}")
            continue
        source = None
        try:
            runs = None
            if ablation_results:
                runs = ablation_runs(name, seeds, budget, ablation_results)
            if name in speed_only:
                runs = []
                log(f"{name}: timed only, not trained")
            elif runs:
                with open(ablation_results) as f:
                    machine = json.load(f)["machine"]
                source = f"{os.path.basename(ablation_results)} ({machine})"
                log(f"{name}: {len(runs)} seeds read from {source}")
            else:
                runs = _train_seeds(name, seeds, budget, output_dir, log)
            speed = measure_speed(
                name,
                settings["speed_image_size"],
                settings["speed_runs"],
                budget,
            )
        # Reported in the results, not hidden: the other peers go on.
        except Exception as error:
            errors[name] = f"{type(error).__name__}: {error}"
            log(f"{name}: failed, {errors[name]}")
            continue
        log(
            f"{name}: {speed['forward_ms']:.0f} ms forward, "
            f"{speed['train_step_ms']:.0f} ms train step"
        )
        models[name] = {
            "library": peer.library,
            "description": peer.description,
            "trained_in": ("not trained" if not runs else source or "this run"),
            "runs": runs,
            **(summarize_variant(runs) if runs else {}),
            **speed,
        }
    results = {
        "description": __doc__.strip().splitlines()[0],
        "command": (
            f"python scripts/compare_peers.py --budget={budget} "
            f"--output_dir={output_dir} --peers={','.join(peers)} "
            f"--seeds={','.join(str(seed) for seed in seeds)}"
            + (f" --speed_only={','.join(speed_only)}" if speed_only else "")
        ),
        "budget": budget,
        "budget_settings": settings,
        "recipe": peer_config(peers[0], seeds[0], budget).to_dict(),
        "seeds": list(seeds),
        "speed_image_size": settings["speed_image_size"],
        "machine": machine_description(),
        "versions": _versions(),
        "total_seconds": round(time.time() - started, 1),
        "models": models,
        "errors": errors,
    }
    atomic_files.write_json(results_file, results)
    return results


def _versions():
    versions = {"keras": keras.__version__, "tensorflow": tf.__version__}
    for library in ("keras_hub", "keras_cv"):
        try:
            versions[library] = __import__(library).__version__
        except ImportError:
            versions[library] = None
    return versions


def markdown_table(results: dict) -> str:
    """The results as a markdown table (scores in %, mean ± std)."""

    def cell(spread):
        return f"{100 * spread['mean']:.1f} ± {100 * spread['std']:.1f}"

    size = results["speed_image_size"]
    lines = [
        f"| model | library | mIoU | thin IoU | small IoU | large IoU | "
        f"params (M) | GFLOPs ({size}²) | forward ms | train step ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, model in results["models"].items():
        scores = ["not trained"] * 4
        if model["runs"]:
            scores = [
                cell(model[key])
                for key in ("mean_iou", "thin_iou", "small_iou", "large_iou")
            ]
        lines.append(
            f"| {name} | {model['library']} | {' | '.join(scores)} | "
            f"{model['parameters'] / 1e6:.1f} | {model['gflops']:.1f} | "
            f"{model['forward_ms']:.0f} | {model['train_step_ms']:.0f} |"
        )
    for name, reason in results["errors"].items():
        lines.append(f"| {name} | did not run: {reason} |")
    return "\n".join(lines)
