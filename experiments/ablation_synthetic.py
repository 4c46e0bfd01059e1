"""The paper's fusion ablations in miniature, on the synthetic scenes.

Seven variants - PSPNet, +concat, +add, +FPN, +gated FPN, +GFF, +GFF+DFP
(paper Tables 1, 2 and 4) - are trained from scratch on the built-in
synthetic street scenes with one narrow ResNet-18 recipe and the same
budget, for several seeds each, then evaluated on the same validation
scenes. `run_ablation` writes every run directory, a results JSON and a
chart; `scripts/ablation_synthetic.py` is its command line.

The synthetic task's thin and small classes (poles and wires 1-3 px wide,
signs and small objects a few pixels across) are the ones the paper says
multi-level fusion helps most, so the results report their IoU apart.
"""

import json
import os
import time

import keras
import numpy as np

from experiments.registry import register
from experiments.synthetic import synthetic_base_config
from gff_keras.benchmarks.machine import machine_description
from gff_keras.data import SyntheticScenes
from gff_keras.data import dataset_info
from gff_keras.data.pipeline import normalize_images
from gff_keras.models.run_directory import LATEST_MODEL
from gff_keras.training.experiment_config import ExperimentConfig

# The fusions with gates, whose gate statistics the study records.
GATED_FUSIONS = ("gff", "gated_fpn")
# variant -> (GFFNet `fusion`, `dfp`); the paper's rows in Table 1 order,
# then Table 2, then the authors' code's pyramid.
VARIANTS = {
    "pspnet": ("none", "none"),
    "concat": ("concat", "none"),
    "add": ("add", "none"),
    "fpn": ("fpn", "none"),
    "gated_fpn": ("gated_fpn", "none"),
    "gff": ("gff", "none"),
    "gff_dfp": ("gff", "dense"),
    # The authors' code's pyramid (DenseASPP blocks, rates 3/6/9/12).
    "gff_dfp_authors": ("gff", "dense_aspp"),
}
# Cityscapes val mIoU. Table 1 and 2: ResNet-101 (GFF+DFP is Table 2's
# single-scale row); Table 4: ResNet-18 (PSPNet, +GFF, +GFF+DFP).
PAPER_MIOU = {
    "resnet101": {
        "pspnet": 78.6,
        "concat": 78.8,
        "add": 78.7,
        "fpn": 79.3,
        "gated_fpn": 79.4,
        "gff": 80.4,
        "gff_dfp": 81.2,
    },
    "resnet18": {"pspnet": 73.0, "gff": 76.6, "gff_dfp": 78.9},
}
THIN_CLASSES = ("pole", "wire")
SMALL_CLASSES = ("small object", "sign")
LARGE_CLASSES = ("sky", "ground", "building", "vegetation")
DEFAULT_SEEDS = (0, 1, 2)
# "full" is the committed table's budget; "long" doubles its steps (run for
# PSPNet, GFF and GFF+DFP, to see whether thin classes emerge); "reduced" is
# a seconds-long run for tests of the runner itself.
BUDGETS = {
    "full": {
        "steps": 200,
        "batch_size": 8,
        "crop_size": 64,
        "image_size": 96,
        "fused_channels": 64,
        "num_eval_examples": 32,
    },
    "long": {
        "steps": 400,
        "batch_size": 8,
        "crop_size": 64,
        "image_size": 96,
        "fused_channels": 64,
        "num_eval_examples": 32,
    },
    "reduced": {
        "steps": 3,
        "batch_size": 2,
        "crop_size": 32,
        "image_size": 48,
        "fused_channels": 16,
        "num_eval_examples": 2,
        # Tests of the runner: no dilated stages (a deterministic step at
        # output stride 8 costs 4x more on CPU) and no TensorBoard images.
        "output_stride": 32,
        "tensorboard_images": 0,
    },
}
GATE_FIGURE_VARIANT = "gff_dfp"


def ablation_config(
    variant: str,
    seed: int = 0,
    budget: str = "full",
    mixed_precision: str = "float32",
) -> ExperimentConfig:
    """The config of one ablation run.

    Args:
        variant: a key of `VARIANTS`.
        seed: training seed (weights, crops, order); the scenes themselves
            are the same for every seed.
        budget: `"full"` (the committed results), `"long"` (400 steps) or
            `"reduced"` (tests).
        mixed_precision: the Keras dtype policy of training
            (`runtime.mixed_precision`); the committed results are float32.

    Returns:
        A deterministic `ExperimentConfig` without export.

    Raises:
        KeyError: for an unknown variant or budget.
        ValueError: for an unknown `mixed_precision`, naming
            `runtime.mixed_precision`.
    """
    if variant not in VARIANTS:
        raise KeyError(
            f"Unknown ablation variant {variant!r}; variants: "
            f"{', '.join(VARIANTS)}."
        )
    if budget not in BUDGETS:
        raise KeyError(
            f"Unknown budget {budget!r}; budgets: {', '.join(BUDGETS)}."
        )
    sizes = BUDGETS[budget]
    fusion, dfp = VARIANTS[variant]
    config = synthetic_base_config(
        f"Synthetic ablation, {variant} on a narrow ResNet-18 "
        f"({budget} budget: {sizes['steps']} steps)"
    )
    config.name = f"synthetic_ablation_{variant}"
    config.model.fusion.type = fusion
    config.model.dfp.type = dfp
    if fusion != "none" or dfp != "none":
        # PSPNet has no fusion head to narrow.
        config.model.head.channels = sizes["fused_channels"]
    config.model.context.channels = 2 * sizes["fused_channels"]
    config.data.batch_size = sizes["batch_size"]
    config.data.crop_size = sizes["crop_size"]
    config.data.synthetic_image_size = sizes["image_size"]
    config.data.num_eval_examples = sizes["num_eval_examples"]
    config.schedule.steps = sizes["steps"]
    config.runtime.seed = int(seed)
    config.runtime.mixed_precision = mixed_precision
    # Same seed, same numbers: the runner's results must be reproducible.
    config.runtime.deterministic = True
    config.runtime.steps_per_loop = sizes["steps"]
    config.runtime.eval_every = sizes["steps"]
    config.runtime.log_every = max(1, sizes["steps"] // 10)
    config.runtime.export = False
    config.runtime.verbose = 0
    # Only where a budget sets them: the committed runs' configs must stay
    # those their results files record (`experiments.peers` compares them).
    if "output_stride" in sizes:
        config.model.backbone.output_stride = sizes["output_stride"]
    if "tensorboard_images" in sizes:
        config.runtime.tensorboard_images = sizes["tensorboard_images"]
    return config.validate()


def _register_variants():
    for variant in VARIANTS:
        # Bind the loop variable now, not when the factory runs.
        def factory(variant=variant):
            return ablation_config(variant)

        register(f"synthetic_ablation_{variant}")(factory)


_register_variants()


def _mean_iou(per_class_iou, names):
    values = [per_class_iou[n] for n in names]
    values = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def run_record(seed: int, evaluation: dict, seconds: float) -> dict:
    """One run's scores: mIoU, thin/small/large IoU, per-class IoU, time."""
    per_class = {k: float(v) for k, v in evaluation["per_class_iou"].items()}
    return {
        "seed": int(seed),
        "mean_iou": float(evaluation["mean_iou"]),
        "thin_iou": _mean_iou(per_class, THIN_CLASSES),
        "small_iou": _mean_iou(per_class, SMALL_CLASSES),
        "thin_small_iou": _mean_iou(per_class, THIN_CLASSES + SMALL_CLASSES),
        "large_iou": _mean_iou(per_class, LARGE_CLASSES),
        "per_class_iou": per_class,
        "seconds": round(seconds, 1),
    }


def _spread(values):
    values = np.asarray(values, np.float64)
    return {
        "mean": float(values.mean()),
        # Sample standard deviation (n - 1), 0 for a single seed.
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
    }


def summarize_variant(runs: list) -> dict:
    """Mean and sample standard deviation over seeds of every score."""
    keys = ("mean_iou", "thin_iou", "small_iou", "thin_small_iou")
    summary = {k: _spread([r[k] for r in runs]) for k in keys + ("large_iou",)}
    classes = runs[0]["per_class_iou"]
    summary["per_class_iou"] = {
        name: _spread([r["per_class_iou"][name] for r in runs])
        for name in classes
    }
    return summary


def gate_statistics(model, num_scenes: int, image_size: int) -> dict:
    """Mean gate value of each level on thin, small and large classes.

    Gates are resized (bilinearly) to the scene and averaged over the
    pixels of each class group on validation scenes, answering the paper's
    Fig. 6/7 claim numerically: do the fine levels open their gates on
    thin structures?

    Args:
        model: a trained `GFFNet` with gated fusion.
        num_scenes: validation scenes to average over.
        image_size: scene side.

    Returns:
        `{"G1": {"thin": ..., "small": ..., "large": ...}, ...}`.
    """
    info = dataset_info("synthetic")
    groups = {"thin": THIN_CLASSES, "small": SMALL_CLASSES}
    groups["large"] = LARGE_CLASSES
    ids = {
        group: [info.class_names.index(n) for n in names]
        for group, names in groups.items()
    }
    scenes = SyntheticScenes((image_size, image_size))
    sums, counts = {}, {}
    for index in range(num_scenes):
        image, label = scenes.generate("validation", index)
        inputs = normalize_images(image[None])
        _, gates = model.gate_maps(inputs)
        for level, gate in enumerate(gates):
            # Under mixed precision the gates are bfloat16 or float16, whose
            # sums over thousands of pixels stop growing (8-bit mantissa).
            gate = keras.ops.cast(gate, "float32")
            gate = keras.ops.image.resize(
                keras.ops.mean(gate, axis=-1, keepdims=True),
                (image_size, image_size),
            )
            gate = np.asarray(gate)[0, ..., 0]
            for group, class_ids in ids.items():
                pixels = np.isin(label, class_ids)
                key = (f"G{level + 1}", group)
                sums[key] = sums.get(key, 0.0) + float(gate[pixels].sum())
                counts[key] = counts.get(key, 0) + int(pixels.sum())
    levels = sorted({level for level, _ in sums})
    return {
        level: {
            group: sums[level, group] / max(counts[level, group], 1)
            for group in groups
        }
        for level in levels
    }


def run_ablation(
    output_dir: str,
    *,
    variants=tuple(VARIANTS),
    seeds=DEFAULT_SEEDS,
    budget: str = "full",
    mixed_precision: str = "float32",
    results_file: str | None = None,
    plot_file: str | None = None,
    gate_figure_dir: str | None = None,
    log=print,
) -> dict:
    """Trains and evaluates every variant for every seed; writes results.

    Runs go to `<output_dir>/<variant>_seed<seed>` as ordinary run
    directories; a finished run is evaluated again rather than retrained,
    so an interrupted ablation continues where it stopped.

    Args:
        output_dir: folder for the run directories.
        variants: keys of `VARIANTS` to run.
        seeds: training seeds; every variant gets all of them.
        budget: a key of `BUDGETS`.
        mixed_precision: the training dtype policy; other than float32 the
            run directories are `<variant>_seed<seed>_<mixed_precision>`,
            so runs of different precisions never meet.
        results_file: JSON path; defaults to
            `<output_dir>/ablation_synthetic.json`.
        plot_file: PNG path for the chart; `None` skips it.
        gate_figure_dir: folder for gate figures of the `"gff_dfp"` seed-0
            model (`None` skips them).
        log: progress printer.

    Returns:
        The results dict written to `results_file`.
    """
    from gff_keras.training.experiment_runner import run_experiment

    results_file = results_file or os.path.join(
        output_dir, "ablation_synthetic.json"
    )
    runs, gate_stats = {}, {}
    started = time.time()
    for variant in variants:
        runs[variant] = []
        for seed in seeds:
            config = ablation_config(variant, seed, budget, mixed_precision)
            run_name = f"{variant}_seed{seed}"
            if mixed_precision != "float32":
                run_name += f"_{mixed_precision}"
            run_dir = os.path.join(output_dir, run_name)
            keras.backend.clear_session()
            tick = time.time()
            summary = run_experiment(config, run_dir)
            record = run_record(seed, summary["final"], time.time() - tick)
            runs[variant].append(record)
            log(
                f"{variant:>9} seed {seed}: mIoU {record['mean_iou']:.3f}, "
                f"thin/small {record['thin_small_iou']:.3f} "
                f"({record['seconds']:.0f} s)"
            )
            if VARIANTS[variant][0] in GATED_FUSIONS:
                model = keras.saving.load_model(
                    os.path.join(run_dir, LATEST_MODEL)
                )
                sizes = BUDGETS[budget]
                gate_stats.setdefault(variant, []).append(
                    gate_statistics(
                        model, sizes["num_eval_examples"], sizes["image_size"]
                    )
                )
                if (
                    gate_figure_dir
                    and variant == GATE_FIGURE_VARIANT
                    and seed == seeds[0]
                ):
                    _write_gate_figures(model, gate_figure_dir, sizes)
    results = {
        "description": __doc__.strip().splitlines()[0],
        "command": (
            "python scripts/ablation_synthetic.py "
            f"--output_dir={output_dir} --budget={budget} "
            f"--variants={','.join(variants)} "
            f"--seeds={','.join(str(seed) for seed in seeds)}"
            + (
                f" --mixed_precision={mixed_precision}"
                if mixed_precision != "float32"
                else ""
            )
        ),
        "budget": budget,
        "budget_settings": BUDGETS[budget],
        "mixed_precision": mixed_precision,
        "config": ablation_config(
            variants[0], seeds[0], budget, mixed_precision
        ).to_dict(),
        "seeds": list(seeds),
        "machine": machine_description(),
        "total_seconds": round(time.time() - started, 1),
        "thin_classes": list(THIN_CLASSES),
        "small_classes": list(SMALL_CLASSES),
        "paper_miou": PAPER_MIOU,
        "variants": {
            variant: {"runs": variant_runs, **summarize_variant(variant_runs)}
            for variant, variant_runs in runs.items()
        },
        "gate_statistics": {
            variant: {
                level: {
                    group: _spread([s[level][group] for s in stats])
                    for group in stats[0][level]
                }
                for level in stats[0]
            }
            for variant, stats in gate_stats.items()
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(results_file)), exist_ok=True)
    with open(results_file, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    if plot_file:
        from experiments.ablation_chart import ablation_chart

        ablation_chart(results).save(plot_file)
    return results


def markdown_table(results: dict) -> str:
    """The results as a markdown table beside the paper's Cityscapes rows.

    Columns: mIoU, thin (pole, wire), small (small object, sign) and large
    class IoU as mean +- sample std over seeds (in %), the gain over
    PSPNet, and the paper's mIoU and gain (ResNet-101 Tables 1-2;
    ResNet-18 Table 4 in brackets).
    """

    def cell(spread):
        return f"{100 * spread['mean']:.1f} ± {100 * spread['std']:.1f}"

    variants = results["variants"]
    base = variants.get("pspnet", {}).get("mean_iou", {}).get("mean")
    paper = results["paper_miou"]
    lines = [
        "| variant | mIoU | gain | thin IoU | small IoU | large IoU | "
        "paper mIoU (R101) | paper gain (R101 / R18) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, variant in variants.items():
        gain = (
            f"{100 * (variant['mean_iou']['mean'] - base):+.1f}"
            if base is not None
            else "-"
        )
        r101 = paper["resnet101"].get(name)
        r18 = paper["resnet18"].get(name)
        paper_gain = "-"
        if r101 is not None and name != "pspnet":
            paper_gain = f"{r101 - paper['resnet101']['pspnet']:+.1f}"
            if r18 is not None:
                paper_gain += f" / {r18 - paper['resnet18']['pspnet']:+.1f}"
        lines.append(
            f"| {name} | {cell(variant['mean_iou'])} | {gain} | "
            f"{cell(variant['thin_iou'])} | {cell(variant['small_iou'])} | "
            f"{cell(variant['large_iou'])} | "
            f"{r101 if r101 is not None else '-'} | {paper_gain} |"
        )
    return "\n".join(lines)


def _write_gate_figures(model, output_dir, sizes):
    from gff_keras.visualization import write_gate_figures

    scenes = SyntheticScenes((sizes["image_size"],) * 2)
    named = (
        (f"validation_{i}", scenes.generate("validation", i)[0])
        for i in range(2)
    )
    write_gate_figures(model, named, output_dir, dataset_info("synthetic"))
