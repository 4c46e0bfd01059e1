from typing import Callable

from gff_keras.training.experiment_config import ExperimentConfig

_FACTORIES: dict[str, Callable[[], ExperimentConfig]] = {}

# What `--dataset=NAME` alone trains.
DATASET_EXPERIMENTS = {
    "ade20k": "ade20k_gffnet_resnet101",
    "cityscapes": "cityscapes_gffnet_resnet101",
    "tfds:cityscapes": "cityscapes_gffnet_resnet101",
    "pascal_context": "pascal_context_gffnet_resnet101",
    "coco_stuff10k": "coco_stuff10k_gffnet_resnet101",
    "coco_stuff": "coco_stuff164k_gffnet_resnet101",
    "synthetic": "synthetic_quickstart",
}


def register(name: str):
    """Decorator registering a zero-argument config factory under `name`."""

    def decorate(factory):
        if name in _FACTORIES:
            raise ValueError(f"Experiment {name!r} is registered twice.")
        _FACTORIES[name] = factory
        return factory

    return decorate


def _load():
    # Registration happens on import of the experiment modules.
    from experiments import ablation_synthetic  # noqa: F401
    from experiments import paper  # noqa: F401
    from experiments import synthetic  # noqa: F401


def experiment_names() -> list[str]:
    """All registered experiment names, sorted."""
    _load()
    return sorted(_FACTORIES)


def get_experiment(name: str) -> ExperimentConfig:
    """Returns a new, validated config of the named experiment.

    Raises:
        KeyError: naming the unknown experiment and listing the known ones.
    """
    _load()
    if name not in _FACTORIES:
        raise KeyError(
            f"Unknown experiment {name!r}; known experiments: "
            f"{', '.join(sorted(_FACTORIES))}."
        )
    config = _FACTORIES[name]()
    config.name = name
    return config.validate()


def experiment_for_dataset(dataset: str) -> ExperimentConfig:
    """The paper's config for a dataset name, with `data.dataset` set to it.

    Raises:
        KeyError: for a dataset without a default experiment.
    """
    base = dataset.removeprefix("tfds:")
    name = DATASET_EXPERIMENTS.get(dataset) or DATASET_EXPERIMENTS.get(base)
    if name is None:
        raise KeyError(
            f"No default experiment for dataset {dataset!r}; datasets: "
            f"{', '.join(DATASET_EXPERIMENTS)}. Use --experiment=NAME."
        )
    config = get_experiment(name)
    config.data.dataset = dataset
    return config
