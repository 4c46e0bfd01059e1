"""CPU-sized experiments on the built-in synthetic scenes (no download)."""

from experiments.registry import register
from gff_keras.training.experiment_config import ExperimentConfig


def synthetic_base_config(description):
    config = ExperimentConfig(description=description)
    config.data.dataset = "synthetic"
    config.model.preset = "gffnet_resnet18"
    # Trained from scratch: no ImageNet download, and a learning rate ten
    # times the paper's fine-tuning rate.
    config.model.backbone.weights = None
    config.optimizer.learning_rate = 0.01
    return config


@register("synthetic_quickstart")
def synthetic_quickstart():
    """The README's demo: GFF+DFP on ResNet-18, a few minutes on 2 cores."""
    config = synthetic_base_config(
        "GFFNet (GFF+DFP, ResNet-18) on 64x64 synthetic crops, 200 steps"
    )
    config.data.crop_size = 64
    config.data.batch_size = 4
    config.data.num_eval_examples = 32
    config.schedule.steps = 200
    config.runtime.steps_per_loop = 50
    config.runtime.eval_every = 100
    config.runtime.log_every = 10
    config.runtime.num_visualizations = 4
    return config


@register("synthetic_tiny")
def synthetic_tiny():
    """Seconds-long smoke run for tests: small widths, 32x32 crops."""
    config = synthetic_base_config("Tiny GFFNet smoke test on synthetic scenes")
    config.model.backbone.output_stride = 32
    config.model.head.channels = 16
    config.model.context.channels = 32
    config.data.crop_size = 32
    config.data.batch_size = 2
    config.data.num_train_examples = 16
    config.data.num_eval_examples = 2
    config.data.synthetic_image_size = 48
    config.schedule.steps = 4
    config.runtime.steps_per_loop = 2
    config.runtime.eval_every = 2
    config.runtime.log_every = 1
    config.runtime.verbose = 2
    # Pictures at each evaluation run the model eagerly several times per
    # image (a gate figure zeroes each gate in turn): a third of this run's
    # time. Tests that read them ask for them.
    config.runtime.tensorboard_images = 0
    return config


@register("synthetic_tiny_pspnet")
def synthetic_tiny_pspnet():
    """`synthetic_tiny` as PSPNet, for tests of the training loop itself.

    Resuming, crash safety and distribution do not depend on the head; the
    PSPNet graph without the fusion head traces in half the time, and a
    process of these tests is mostly tracing (15 s against 29 s a run on
    2 AMD EPYC cores).
    """
    config = synthetic_tiny()
    config.description = "Tiny PSPNet (no fusion head) on synthetic scenes"
    config.model.preset = "pspnet_resnet18"
    config.model.head.channels = None
    return config
