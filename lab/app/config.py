"""Validation of the composed config: every bad value stops with one sentence naming it.

Hydra already rejects unknown group options (``model=fcnn``) and unknown keys (``seeed=1``);
this checks the values of the shared sections — types, ranges, that model facts in
``conf/model/*.yaml`` agree with the code — before any work starts. Each group's own options are
checked where the group is built (e.g. :mod:`lab.stats.clusterers` checks the clusterer's); what needs
the data (the dataset folder, k against the number of songs) is checked by
:func:`lab.app.task.preflight` before the MLflow run opens.
"""

from __future__ import annotations

from omegaconf import DictConfig

from lab.core.errors import LabError


def _int(value: object, name: str, lo: int | None = None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabError(f"{name}={value!r} must be an integer" + (" or null" if allow_none else ""))
    if lo is not None and value < lo:
        raise LabError(f"{name}={value} must be at least {lo}")


def _number(value: object, name: str, lo: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= lo:
        raise LabError(f"{name}={value!r} must be a number >= {lo}")


def _bool(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise LabError(f"{name}={value!r} must be true or false")


def _positive(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise LabError(f"{name}={value!r} must be a number > 0")


# Options that several experiments share, by name: (check, lower bound). An experiment with options
# of its own checks them in the function its YAML names as ``experiment.check``.
EXPERIMENT_OPTIONS = {
    "tsne_perplexity": (_positive, None),
    "save_embeddings": (_bool, None),
    "rogue_neighbors": (_int, 1),
    "rogue_top": (_int, 0),
    "k_min": (_int, 2),
    "k_max": (_int, 2),
    "seeds": (_int, 1),
    "top_k": (_int, 1),
}


def validate(cfg: DictConfig) -> None:
    """Raise :class:`LabError` with one sentence on the first bad value in ``cfg``."""
    from lab.models import KINDS, REGISTRY, model_info
    from lab.models.weights import check_corpus

    _int(cfg.seed, "seed", 0)
    if not cfg.experiment.get("run"):
        raise LabError(f"experiment={cfg.experiment.get('name')!r} names no run function (experiment.run) in conf/experiment/")
    for key, (check, lo) in EXPERIMENT_OPTIONS.items():
        if key in cfg.experiment:
            check(cfg.experiment[key], f"experiment.{key}", *([lo] if lo is not None else []))
    if "k_min" in cfg.experiment and "k_max" in cfg.experiment and cfg.experiment.k_max < cfg.experiment.k_min:
        raise LabError(f"experiment.k_max={cfg.experiment.k_max} must be at least experiment.k_min={cfg.experiment.k_min}")
    m = cfg.get("model")
    tagger = m is not None and m.name in REGISTRY
    if m is not None and tagger:
        _bool(m.pretrained, "model.pretrained")
        check_corpus(m.name, m.get("corpus", "jamendo"))
        info = model_info(m.name)
        for key in ("sample_rate", "input_length", "embedding_dim"):
            if m.get(key) is not None and m[key] != getattr(info, key):
                raise LabError(f"model.{key}={m[key]} disagrees with the {m.name} architecture ({getattr(info, key)}); remove the override")
    elif m is not None:
        # the other kinds (lab/models/protocol.py) check their own options when built (lab.app.task.preflight)
        if not m.get("_target_"):
            raise LabError(f"model={m.name!r} is unknown; choose one of {', '.join((*REGISTRY, *KINDS))}")
        if m.get("pretrained") is not None:
            _bool(m.pretrained, "model.pretrained")
    d = cfg.get("dataset")
    if d is not None:
        if "min_seconds" in d:
            _number(d.min_seconds, "dataset.min_seconds", 0.0)
        if "n_per_class" in d:
            _int(d.n_per_class, "dataset.n_per_class", 1)
        if "seconds" in d:
            _number(d.seconds, "dataset.seconds", 1.0)
        if "split" in d and d.split not in ("all", "fault_filtered"):
            raise LabError(f"dataset.split={d.split!r} must be 'all' or 'fault_filtered'")
        if "extensions" in d and (isinstance(d.extensions, str) or not all(isinstance(x, str) for x in d.extensions) or not d.extensions):
            raise LabError(f"dataset.extensions={d.extensions!r} must be a non-empty list such as [wav, flac]")
        if "seed" in d:
            _int(d.seed, "dataset.seed", 0)
    if cfg.get("cluster_count") is not None:
        _int(cfg.cluster_count.get("k"), "cluster_count.k", 2, allow_none=True)
    if cfg.get("plots") is not None:
        from lab.tracking import figure_dpi

        figure_dpi(cfg)
    e = cfg.embed
    for key in ("batch_size", "workers", "num_threads"):
        v = e.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise LabError(f"embed.{key}={v!r} must be a positive integer or null")
    _bool(e.progress, "embed.progress")
    if str(e.get("device") or "cpu").split(":")[0] not in ("cpu", "cuda", "mps"):
        raise LabError(f"embed.device={e.device!r} must be cpu, cuda (or cuda:N) or mps")
    # Inference backend, fast mode and shard: checked before any work, one sentence each.
    from lab.extract.backends import parse_backend, parse_precision
    from lab.extract.sharding import parse_shard

    parse_backend(e.get("backend") or "auto")
    parse_precision(e.get("precision") or "fp32")
    if m is not None and not tagger and (e.get("precision") or "fp32") != "fp32":
        raise LabError(f"embed.precision={e.precision} (fast mode) is checked against the lab's taggers only; "
                       f"model={m.name} runs in fp32: drop the override")
    parse_shard(e.get("shard"))
