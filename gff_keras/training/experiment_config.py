"""Typed experiment configs: model, data, optimizer, schedule, loss, runtime.

An `ExperimentConfig` is everything `run_experiment` needs; the named paper
experiments in `experiments/` are instances of it. Overrides use dotted keys
(`"optimizer.learning_rate=0.02"`) and reject keys that do not exist.
"""

import dataclasses
import json
import typing

from gff_keras.models.gffnet import check_options
from gff_keras.models.presets import preset_arguments

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
EVAL_MODES = ("whole", "slide", "ms_flip")
CHECKPOINTS = ("latest", "best")


def _part_name():
    """A field naming a part, where "none" is a name ("no fusion"), not
    `None` ("as the preset says"); `null` sets `None`."""
    return dataclasses.field(default=None, metadata={"none_is_a_name": True})


@dataclasses.dataclass
class BackboneConfig:
    """The backbone: a name from `GFFNet`'s `BACKBONES` and its options.

    `None` keeps the preset's choice (or the part's default). `weights` is
    `"imagenet"`, a weight file, or `None` for random initialization.
    """

    name: str | None = None
    output_stride: int | None = None
    stem: str | None = None
    weights: str | None = "imagenet"


@dataclasses.dataclass
class ContextConfig:
    """The context module: `ppm`, `aspp` or `dense_aspp`, and its options."""

    type: str | None = None
    channels: int | None = None
    rates: tuple[int, ...] | None = None


@dataclasses.dataclass
class FusionConfig:
    """The fusion of the fusion head (`gff`, `none`, `concat`, `add`, `fpn`,
    `gated_fpn`) and the options of the gated ones."""

    type: str | None = _part_name()
    gate_channels: int | None = None
    order: str | None = None
    implementation: str | None = None


@dataclasses.dataclass
class DFPConfig:
    """The dense feature pyramid of the fusion head: `dense` (eq. 6),
    `dense_aspp` (the authors' code's) or `none`."""

    type: str | None = _part_name()
    kernel_size: int | None = None
    dilation_rates: tuple[int, ...] | None = None


@dataclasses.dataclass
class HeadConfig:
    """The head (`fusion`, `context`, `deeplabv3plus`) and its options."""

    type: str | None = None
    channels: int | None = None
    levels: tuple[str, ...] | None = None
    level_resolution: str | None = None
    fuse_context: bool | None = None
    dropout: float | None = None
    decoder_level: str | None = None


@dataclasses.dataclass
class AuxHeadConfig:
    """The auxiliary head of training and its loss weight."""

    enabled: bool | None = None
    level: str | None = None
    loss_weight: float | None = None


# The `GFFNet` keyword that each model config key sets.
MODEL_ARGUMENTS = {
    "backbone.name": "backbone",
    "backbone.output_stride": "output_stride",
    "backbone.stem": "stem",
    "backbone.weights": "backbone_weights",
    "context.type": "context",
    "context.channels": "context_channels",
    "context.rates": "context_rates",
    "fusion.type": "fusion",
    "fusion.gate_channels": "gate_channels",
    "fusion.order": "fusion_order",
    "fusion.implementation": "fusion_implementation",
    "dfp.type": "dfp",
    "dfp.kernel_size": "dfp_kernel_size",
    "dfp.dilation_rates": "dfp_dilation_rates",
    "head.type": "head",
    "head.channels": "fused_channels",
    "head.levels": "levels",
    "head.level_resolution": "level_resolution",
    "head.fuse_context": "fuse_context",
    "head.dropout": "dropout",
    "head.decoder_level": "decoder_level",
    "aux_head.enabled": "aux_head",
    "aux_head.level": "aux_level",
    "aux_head.loss_weight": "aux_loss_weight",
}
# Version 0.1's flat keys (`model.fusion_order`), for a message naming the
# new key; `model.backbone` and the other part names are now sections.
LEGACY_MODEL_KEYS = {
    **{
        f"model.{argument}": f"model.{key}"
        for key, argument in MODEL_ARGUMENTS.items()
    },
    "model.ppm_channels": "model.context.channels",
}


@dataclasses.dataclass
class ModelConfig:
    """The model: a `GFFNet` preset and per-part overrides.

    `preset` names the architecture (`gff_keras.models.PRESETS`); every
    section below configures one part, and a field left at `None` keeps
    the preset's choice. `gffnet_arguments()` gives the `GFFNet` keywords;
    an option that does not apply to the chosen parts is an error naming
    its config key. `init_from` names a `.keras` model whose weights are
    copied into every layer of the same name and shape before training (the
    paper starts its Table 1 fusion ablations from a trained PSPNet).
    """

    preset: str = "gffnet_resnet101"
    init_from: str | None = None
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    context: ContextConfig = dataclasses.field(default_factory=ContextConfig)
    fusion: FusionConfig = dataclasses.field(default_factory=FusionConfig)
    dfp: DFPConfig = dataclasses.field(default_factory=DFPConfig)
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    aux_head: AuxHeadConfig = dataclasses.field(default_factory=AuxHeadConfig)

    def gffnet_arguments(self) -> dict:
        """The `GFFNet.from_preset(self.preset, ...)` keyword overrides."""
        arguments = {}
        for key, argument in MODEL_ARGUMENTS.items():
            section, name = key.split(".")
            value = getattr(getattr(self, section), name)
            if value is not None:
                arguments[argument] = value
        return arguments

    def resolved_arguments(self, num_classes: int | None = None) -> dict:
        """The preset's `GFFNet` arguments with this config's overrides.

        Args:
            num_classes: int, for presets whose parts need it (the
                authors' head), or `None` to only check the options.

        Raises:
            ValueError: for an unknown preset, or naming the config key of
                an option that does not apply to the chosen parts.
        """
        arguments = preset_arguments(self.preset, num_classes)
        arguments.update(self.gffnet_arguments())
        try:
            check_options(**arguments)
        except ValueError as error:
            raise ValueError(_config_keys(str(error))) from None
        return arguments


def _config_keys(message):
    """Names config keys instead of `GFFNet` keywords in `message`."""
    for key, argument in MODEL_ARGUMENTS.items():
        message = message.replace(f"`{argument}=", f"`model.{key}=")
    return message


@dataclasses.dataclass
class DataConfig:
    """Dataset and input pipeline.

    `batch_size` is the global batch, split evenly over replicas (the paper
    fixes the mini-batch, 8 or 16, whatever the number of GPUs).
    `num_train_examples` / `num_eval_examples` limit the synthetic dataset's
    size (and cap evaluation on any dataset). With `check`, a new run
    reads every image and label of its train and eval splits before the
    first step and stops with the list of bad files
    (`gff_keras.data.check_dataset`); with `skip_bad_examples` it trains
    and evaluates without them instead. Neither is part of a run's
    identity: a resumed run may change them.
    """

    dataset: str = "ade20k"
    data_dir: str | None = None
    crop_size: int = 512
    batch_size: int = 16
    eval_batch_size: int = 1
    scale_min: float = 0.75
    scale_max: float = 2.0
    skip_bad_examples: bool = False
    check: bool = True
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
    resume backup (and `checkpoints/latest.keras`) is written, and every
    `eval_every` steps (a multiple of `steps_per_loop`) the model is
    evaluated (and `checkpoints/best.keras` kept). `keep_checkpoints`
    names the `.keras` checkpoints a run keeps: `"latest"`, `"best"`, both
    (the default) or none. A run ends with its best model (the highest
    validation mIoU of its evaluations, or the last model when `"best"` is
    not kept): that model is exported, drawn and reported. At each
    evaluation the first `tensorboard_images` eval images are drawn to
    TensorBoard (image / label / prediction with a class legend, and the
    gate maps of gated heads).
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
    keep_checkpoints: tuple[str, ...] = ("latest", "best")
    tensorboard_images: int = 2


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
        checks = [
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
        arguments = self.model.resolved_arguments()
        if (
            arguments.get("backbone") == "wider_resnet38"
            and arguments.get("backbone_weights") == "imagenet"
        ):
            raise ValueError(
                "model.backbone.weights='imagenet': keras.applications has "
                "no Wider-ResNet-38 weights; set model.backbone.weights=none "
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
        unknown = set(self.runtime.keep_checkpoints) - set(CHECKPOINTS)
        if unknown:
            raise ValueError(
                f"runtime.keep_checkpoints={self.runtime.keep_checkpoints!r}"
                f" may only name {CHECKPOINTS}."
            )
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
    if key in LEGACY_MODEL_KEYS:
        raise KeyError(
            f"{key!r} is now {LEGACY_MODEL_KEYS[key]!r}: since version 0.2 "
            "the model config has one section per part."
        )
    node, name = _resolve(config, key)
    hint = typing.get_type_hints(type(node))[name]
    if dataclasses.is_dataclass(hint):
        raise KeyError(
            f"{key!r} is a config section; set one of its fields, e.g. "
            f"{key}.{dataclasses.fields(hint)[0].name}=..."
        )
    if isinstance(value, str):
        field = next(f for f in dataclasses.fields(node) if f.name == name)
        if field.metadata.get("none_is_a_name") and value.lower() == "none":
            value = "none"
        else:
            value = _parse(value, hint, key)
    setattr(node, name, value)


def _tuple_type(hint):
    """The element type of a `tuple[T, ...]` (or optional one) hint."""
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0]
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

    >>> overrides = ["model.fusion.order=sequential"]
    >>> apply_overrides(ExperimentConfig(), overrides).model.fusion.order
    'sequential'
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
