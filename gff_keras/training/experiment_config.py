"""Typed experiment configs: model, data, optimizer, schedule, loss, runtime.

An `ExperimentConfig` is everything `run_experiment` needs; the named paper
experiments in `experiments/` are instances of it. Overrides use dotted keys
(`"optimizer.learning_rate=0.02"`) and reject keys that do not exist.
"""

import dataclasses
import json
import typing

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
EVAL_MODES = ("whole", "slide", "ms_flip")


@dataclasses.dataclass
class ModelConfig:
    """`GFFNet` arguments (see its docstring); `num_classes` comes from data.

    `backbone_weights` is `"imagenet"`, a weight file, or `None` (random
    initialization). `init_from` names a `.keras` model whose weights are
    copied into every layer of the same name and shape before training (the
    paper starts its Table 1 fusion ablations from a trained PSPNet).
    """

    backbone: str = "resnet101"
    fusion: str = "gff"
    dfp: bool = True
    aux_head: bool = True
    output_stride: int = 8
    stem: str = "standard"
    backbone_weights: str | None = "imagenet"
    init_from: str | None = None
    fused_channels: int = 256
    ppm_channels: int = 512
    gate_channels: int = 1
    fusion_order: str = "simultaneous"
    fusion_implementation: str = "grouped"
    level_resolution: str = "native"
    dfp_kernel_size: int = 1
    dropout: float = 0.1
    aux_loss_weight: float = 0.4
    context: str = "ppm"
    context_channels: int | None = None
    context_rates: tuple[int, ...] | None = None
    levels: tuple[str, ...] | None = None
    fuse_context: bool = False
    aux_level: str | None = None
    decoder_level: str | None = None
    dfp_dilation_rates: tuple[int, ...] | None = None


@dataclasses.dataclass
class DataConfig:
    """Dataset and input pipeline.

    `batch_size` is the global batch, split evenly over replicas (the paper
    fixes the mini-batch, 8 or 16, whatever the number of GPUs).
    `num_train_examples` / `num_eval_examples` limit the synthetic dataset's
    size (and cap evaluation on any dataset).
    """

    dataset: str = "ade20k"
    data_dir: str | None = None
    crop_size: int = 512
    batch_size: int = 16
    eval_batch_size: int = 1
    scale_min: float = 0.75
    scale_max: float = 2.0
    skip_bad_examples: bool = False
    train_split: str = "train"
    eval_split: str = "validation"
    num_train_examples: int | None = None
    num_eval_examples: int | None = None
    synthetic_image_size: int = 192


@dataclasses.dataclass
class OptimizerConfig:
    """SGD with momentum and L2 weight decay on conv kernels."""

    learning_rate: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False


@dataclasses.dataclass
class ScheduleConfig:
    """Poly decay `lr * (1 - step / steps) ** power`, optional warm-up."""

    steps: int = 150_000
    power: float = 0.9
    warmup_steps: int = 0
    warmup_ratio: float = 0.1


@dataclasses.dataclass
class LossConfig:
    """Cross-entropy ignoring 255; optional online hard example mining."""

    ohem: bool = False
    ohem_threshold: float = 0.7
    ohem_min_kept: int = 100_000


@dataclasses.dataclass
class RuntimeConfig:
    """Devices, precision, seeds and the checkpoint / evaluation schedule.

    Training runs in loops of `steps_per_loop` steps; after each loop the
    resume backup and `checkpoints/latest.keras` are written, and every
    `eval_every` steps (a multiple of `steps_per_loop`) the model is
    evaluated and `checkpoints/best.keras` kept.
    """

    strategy: str = "auto"
    tpu: str = ""
    mixed_precision: str = "float32"
    jit_compile: bool = False
    seed: int | None = 0
    deterministic: bool = False
    steps_per_loop: int = 1000
    eval_every: int = 10_000
    log_every: int = 50
    eval_mode: str = "whole"
    eval_crop_size: int | None = None
    eval_stride: int | None = None
    export: bool = True
    num_visualizations: int = 0
    verbose: int = 1


@dataclasses.dataclass
class ExperimentConfig:
    """One training experiment.

    `paper_miou` is the number the experiment should reproduce (percent, on
    `paper_reference`'s split and inference mode); `None` for experiments the
    paper does not have.
    """

    name: str = "custom"
    description: str = ""
    paper_reference: str = ""
    paper_miou: float | None = None
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(
        default_factory=OptimizerConfig
    )
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

    def validate(self) -> "ExperimentConfig":
        """Checks values that would otherwise fail late; returns `self`.

        Raises:
            ValueError: naming the field and the accepted values.
        """
        # Imported here: gff_keras.models imports gff_keras.training.
        from gff_keras.models.gffnet import BACKBONES
        from gff_keras.models.gffnet import CONTEXTS
        from gff_keras.models.gffnet import FUSIONS

        checks = [
            (self.model.fusion in FUSIONS, "model.fusion", FUSIONS),
            (self.model.context in CONTEXTS, "model.context", CONTEXTS),
            (self.model.backbone in BACKBONES, "model.backbone", BACKBONES),
            (
                self.runtime.strategy in STRATEGIES,
                "runtime.strategy",
                STRATEGIES,
            ),
            (
                self.runtime.mixed_precision in PRECISIONS,
                "runtime.mixed_precision",
                PRECISIONS,
            ),
            (
                self.runtime.eval_mode in EVAL_MODES,
                "runtime.eval_mode",
                EVAL_MODES,
            ),
        ]
        if (
            self.model.backbone == "wider_resnet38"
            and self.model.backbone_weights == "imagenet"
        ):
            raise ValueError(
                "model.backbone_weights='imagenet': keras.applications has "
                "no Wider-ResNet-38 weights; set model.backbone_weights=none "
                "and load converted weights with model.init_from."
            )
        for ok, key, accepted in checks:
            if not ok:
                raise ValueError(
                    f"{key}={get_field(self, key)!r} is not one of {accepted}."
                )
        positive = (
            "schedule.steps",
            "runtime.steps_per_loop",
            "runtime.eval_every",
            "runtime.log_every",
            "data.batch_size",
            "data.eval_batch_size",
            "data.crop_size",
        )
        for key in positive:
            if get_field(self, key) <= 0:
                raise ValueError(f"{key} must be positive.")
        loop = self.runtime.steps_per_loop
        for key in ("schedule.steps", "runtime.eval_every"):
            if get_field(self, key) % loop:
                raise ValueError(
                    f"{key}={get_field(self, key)} must be a multiple of "
                    f"runtime.steps_per_loop={loop} (training stops, "
                    "evaluates and backs up only between loops)."
                )
        if not 0 <= self.schedule.warmup_steps < self.schedule.steps:
            raise ValueError(
                "schedule.warmup_steps must be in [0, schedule.steps)."
            )
        if not 0 < self.data.scale_min <= self.data.scale_max:
            raise ValueError("Need 0 < data.scale_min <= data.scale_max.")
        return self

    def to_dict(self) -> dict:
        """Returns the config as nested plain dicts (JSON-serializable)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Returns the config as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, values: dict) -> "ExperimentConfig":
        """Builds a config from `to_dict` output, rejecting unknown keys.

        Raises:
            KeyError: naming the unknown key.
        """
        return _from_dict(cls, values, prefix="")

    def replace(self, **changes) -> "ExperimentConfig":
        """Returns a deep copy with dotted-key changes applied.

        Example:

        >>> config = ExperimentConfig().replace(**{"data.crop_size": 64})
        >>> config.data.crop_size
        64
        """
        config = ExperimentConfig.from_dict(self.to_dict())
        for key, value in changes.items():
            set_field(config, key, value)
        return config


def _from_dict(cls, values, prefix):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise KeyError(
                f"Unknown config key {prefix + key!r}; known keys: "
                f"{', '.join(prefix + name for name in fields)}."
            )
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            value = _from_dict(hint, value, prefix + key + ".")
        elif isinstance(value, list) and _tuple_type(hint) is not None:
            # JSON stores tuples as lists.
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _resolve(config, key):
    parts = key.split(".")
    node = config
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            parent = ".".join(parts[:depth])
            raise KeyError(
                f"Unknown config key {key!r}: {parent or 'the config'} has "
                f"no field {part!r}; fields: {', '.join(names)}."
            )
        if depth == len(parts) - 1:
            return node, part
        node = getattr(node, part)
        if not dataclasses.is_dataclass(node):
            raise KeyError(f"Unknown config key {key!r}: {part!r} is a value.")


def get_field(config, key: str):
    """Reads a dotted key such as `"data.crop_size"`."""
    node, name = _resolve(config, key)
    return getattr(node, name)


def set_field(config, key: str, value) -> None:
    """Sets a dotted key; strings are parsed to the field's type.

    Raises:
        KeyError: for an unknown key.
        ValueError: when the value does not parse as the field's type.
    """
    node, name = _resolve(config, key)
    hint = typing.get_type_hints(type(node))[name]
    if dataclasses.is_dataclass(hint):
        raise KeyError(
            f"{key!r} is a config section; set one of its fields, e.g. "
            f"{key}.{dataclasses.fields(hint)[0].name}=..."
        )
    if isinstance(value, str):
        value = _parse(value, hint, key)
    setattr(node, name, value)


def _tuple_type(hint):
    """The element type of a `tuple[T, ...]` (or optional one) hint."""
    for option in typing.get_args(hint) or (hint,):
        if typing.get_origin(option) is tuple:
            return typing.get_args(option)[0]
    return None


def _parse(text, hint, key):
    options = typing.get_args(hint) or (hint,)
    if type(None) in options and text.lower() in ("none", "null", ""):
        return None
    element = _tuple_type(hint)
    if element is not None:
        # "3,6,9" -> (3, 6, 9)
        items = [item.strip() for item in text.split(",") if item.strip()]
        return tuple(_parse(item, element, key) for item in items)
    for option in options:
        if option is bool:
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            continue
        if option in (int, float):
            try:
                return option(text)
            except ValueError:
                continue
        if option is str:
            return text
    raise ValueError(
        f"Cannot parse {text!r} for config key {key!r} of type {hint}."
    )


def apply_overrides(
    config: ExperimentConfig, overrides: list[str]
) -> ExperimentConfig:
    """Applies `["key=value", ...]` overrides to a copy of `config`.

    Args:
        config: the base config.
        overrides: dotted `key=value` strings, e.g.
            `"optimizer.learning_rate=0.01"`.

    Returns:
        The changed, validated copy.

    Raises:
        KeyError: for an unknown key.
        ValueError: for a malformed override or a value of the wrong type.

    Example:

    >>> config = apply_overrides(ExperimentConfig(), ["model.dfp=false"])
    >>> config.model.dfp
    False
    """
    changes = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"Override {override!r} is not of the form key=value."
            )
        changes[key.strip()] = value.strip()
    return config.replace(**changes).validate()
