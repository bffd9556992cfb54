"""Validation of the composed config: every bad value stops with one sentence naming it.

Hydra already rejects unknown group options (``model=fcnn``) and unknown keys (``seeed=1``);
this checks the values — types, ranges, that model facts in ``conf/model/*.yaml`` agree with the
code — before any work starts. Checks that need the data (k <= number of songs, dataset root
exists) happen where the data is read.
"""

from __future__ import annotations

from omegaconf import DictConfig

from lab.errors import LabError

EXPERIMENTS = ("clustering", "tags", "cluster_scores")
CLUSTERERS = ("kmeans", "gmm")
DATASETS = ("synth", "gtzan", "folder")


def _int(cfg: DictConfig, key: str, lo: int | None = None) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabError(f"{key}={value!r} must be an integer")
    if lo is not None and value < lo:
        raise LabError(f"{key}={value} must be at least {lo}")
    return value


def _number(section: DictConfig, key: str, name: str, lo: float) -> None:
    v = section.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo:
        raise LabError(f"{name}={v!r} must be a number >= {lo}")


def validate(cfg: DictConfig) -> None:
    """Raise :class:`LabError` with one sentence on the first bad value in ``cfg``."""
    from lab.models import REGISTRY, model_info

    _int(cfg, "seed", 0)
    exp = cfg.experiment.name
    if exp not in EXPERIMENTS:
        raise LabError(f"experiment={exp!r} is unknown; choose one of {', '.join(EXPERIMENTS)}")
    m = cfg.model
    if m.name not in REGISTRY:
        raise LabError(f"model={m.name!r} is unknown; choose one of {', '.join(REGISTRY)}")
    if not isinstance(m.pretrained, bool):
        raise LabError(f"model.pretrained={m.pretrained!r} must be true or false")
    info = model_info(m.name)
    for key in ("sample_rate", "input_length", "embedding_dim"):
        if m.get(key) is not None and m[key] != getattr(info, key):
            raise LabError(f"model.{key}={m[key]} disagrees with the {m.name} architecture ({getattr(info, key)}); remove the override")
    if cfg.dataset.name not in DATASETS:
        raise LabError(f"dataset={cfg.dataset.name!r} is unknown; choose one of {', '.join(DATASETS)}")
    _number(cfg.dataset, "min_seconds", "dataset.min_seconds", 0.0)
    if cfg.dataset.name == "synth":
        if not isinstance(cfg.dataset.n_per_class, int) or cfg.dataset.n_per_class < 1:
            raise LabError(f"dataset.n_per_class={cfg.dataset.n_per_class!r} must be a positive integer")
        _number(cfg.dataset, "seconds", "dataset.seconds", 1.0)
    if cfg.get("clusterer") is not None and cfg.clusterer.name not in CLUSTERERS:
        raise LabError(f"clusterer={cfg.clusterer.name!r} is unknown; choose one of {', '.join(CLUSTERERS)}")
    if cfg.get("cluster_count") is not None:
        k = cfg.cluster_count.k
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise LabError(f"cluster_count.k={k!r} must be an integer >= 2")
    for key in ("batch_size", "workers", "num_threads"):
        v = cfg.embed.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise LabError(f"embed.{key}={v!r} must be a positive integer or null")


def compose_from_args(overrides: list[str]) -> DictConfig:
    """The lab config composed with command-line style overrides (``hydra.*`` ones are ignored).

    Lets helper commands (``python -m lab.models``, ``python -m lab.report``) resolve paths
    exactly as ``python -m lab`` would for the same arguments.
    """
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    keep = [o for o in overrides if not o.lstrip("+~").startswith("hydra") and not o.startswith("-")]
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
        return compose(config_name="config", overrides=keep)
