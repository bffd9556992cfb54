"""The steps every study composes: build a dataset, build a model, embed through the cache, log it.

Each step does one job, so a study can use any of them on their own: the dream needs the plain
model (with gradients) and one genre's mean; the transforms study embeds an original and a shifted
dataset with the same model; the out-of-domain study embeds a composite dataset. Data flows one
way: config -> dataset, model -> :class:`~lab.extract.embed.Embeddings` (cached) -> study -> tracker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from lab.core.errors import LabError
from lab.core.storage import exclusive, text_sha256
from lab.datasets import Dataset, build_dataset
from lab.extract.embed import Embeddings, extract
from lab.extract.sharding import parse_shard, shard_of
from lab.models import build, tag_names
from lab.models.base import Tagger

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "build_dataset", "build_model", "embed", "load_embeddings", "log_embedded"]


@dataclass
class LoadedModel:
    """A tagger ready to use: the plain, differentiable model plus what identifies its weights."""

    model: Tagger  # eval mode, plain (the optimized inference copy is an internal of extraction)
    weights_id: str  # checkpoint SHA-256, or random-<seed>
    tag_names: list[str]  # model-output order
    name: str


_LOADED: dict[tuple, LoadedModel] = {}  # a job checks its checkpoint before its run opens, then uses it


def build_model(cfg: DictConfig, *, device: str = "cpu") -> LoadedModel:
    """The model of ``cfg.model`` with its checkpoint loaded strictly (or random weights), on ``device``.

    Loaded once per process for the same arguments (the app's pre-run check and the experiment
    share it); the model is in eval mode and must not be modified in place.
    """
    m = cfg.model
    corpus = m.get("corpus", "jamendo")
    kwargs = {"corpus": corpus} if "corpus" in m else {}
    weights_dir = to_absolute_path(str(cfg.paths.weights))
    key = (m.name, corpus, bool(m.pretrained), weights_dir, m.get("checkpoint"), int(cfg.seed) if not m.pretrained else None, device)
    if key not in _LOADED:
        model, weights_id = build(m.name, pretrained=m.pretrained, weights_dir=weights_dir,
                                  subpath=m.get("checkpoint"), seed=int(cfg.seed), **kwargs)
        _LOADED.clear()  # keep one model: a sweep process moves from model to model
        _LOADED[key] = LoadedModel(model=model.to(device), weights_id=weights_id, tag_names=tag_names(corpus, weights_dir), name=m.name)
    return _LOADED[key]


def embed(cfg: DictConfig, dataset: Dataset, loaded: LoadedModel, tracker=None) -> Embeddings:
    """Embed ``dataset`` with ``loaded`` through the cache at ``paths.cache``; log what was embedded."""
    e = cfg.embed
    if e.get("num_threads"):
        torch.set_num_threads(int(e.num_threads))
    cache_dir = to_absolute_path(str(cfg.paths.cache))
    shard = e.get("shard")
    lock = ".extract.lock"
    if parse_shard(shard) is not None:
        # embed.shard=I/N: only this shard's clips (positions in id order), under a lock of its
        # own, so N shard jobs fill one cache side by side instead of queueing on the model lock.
        i, n, layout = parse_shard(shard)
        dataset = dataset.subset(shard_of([c.id for c in dataset.clips], shard))
        lock = f".extract-{i}of{n}-{layout}.lock"
        log.info("embed.shard=%s: %d clips of this shard", shard, len(dataset.clips))
    # One lock per (cache folder, model): parallel sweep jobs wait for the one extracting, then
    # read its cache, so a model's embeddings are computed once even with 2+ workers.
    with exclusive(Path(cache_dir) / loaded.name / lock):
        emb = extract(dataset, loaded.model, weights_id=loaded.weights_id, cache_dir=cache_dir,
                      batch_size=e.get("batch_size"), workers=e.get("workers"), progress=e.progress,
                      device=e.get("device") or "cpu", backend=e.get("backend") or "auto",
                      precision=e.get("precision") or "fp32")
    log_embedded(tracker, dataset, emb, loaded)
    if len(emb.clips) == 0:
        raise LabError(f"no usable audio in dataset={dataset.name} ({len(emb.skipped)} of {len(dataset.clips)} files skipped)")
    return emb


def dataset_digest(dataset: Dataset) -> str:
    """SHA-256 over every clip's id and content fingerprint: equal digests, equal data (the MLflow dataset digest)."""
    return text_sha256(*(f"{c.id}\t{dataset.fingerprint(c)}" for c in dataset.clips))


def dataset_source(dataset: Dataset) -> str:
    """Where the dataset comes from: its root folder, else a ``<name>://<root>`` URI (built-in data)."""
    return dataset.root if Path(dataset.root).is_absolute() else f"{dataset.name}://{dataset.root or 'generated'}"


def log_embedded(tracker, dataset: Dataset, emb: Embeddings, loaded: LoadedModel | None = None, *, prefix: str = "") -> None:
    """Warn about skipped/padded clips and log counts (``prefix`` tells several datasets of one run apart)."""
    skipped, padded = emb.skipped, emb.padded
    notes = []
    if skipped:
        where = (f"{tracker.artifact_uri}/{prefix}skipped_files.csv" if tracker is not None
                 else f"the run's {prefix}skipped_files.csv")
        notes.append(f"{len(skipped)} of {len(dataset.clips)} files of {dataset.name} skipped as unusable audio "
                     f"({', '.join(sorted({i.reason for i in skipped}))}); each with its reason in {where}")
    if padded:
        notes.append(f"{len(padded)} clip{'s' if len(padded) != 1 else ''} of {dataset.name} shorter than one "
                     f"{loaded.name if loaded else 'model'} window were zero-padded to one window")
    for note in dataset.notes + notes:
        tracker.warn(note) if tracker is not None else log.warning(note)
    if tracker is None:
        return
    tracker.log_dataset(dataset.name, digest=dataset_digest(dataset), source=dataset_source(dataset),
                        n_rows=len(dataset.clips), context=prefix.rstrip("_/.") or "eval")
    if loaded is not None and not prefix:
        tracker.set_tags({"weights": loaded.weights_id[:16], "n_songs": len(emb.clips)})
    tracker.log_metrics({f"{prefix}{k}": float(v) for k, v in {
        "n_songs": len(emb.clips), "n_skipped": len(skipped), "n_padded": len(padded),
        "cache_hits": emb.hits, "cache_misses": emb.misses}.items()})
    if skipped:
        tracker.log_csv([{"path": i.clip.path, "id": i.clip.id, "reason": i.reason, "detail": i.detail} for i in skipped],
                        f"{prefix}skipped_files.csv")


def load_embeddings(cfg: DictConfig, tracker=None) -> tuple[Dataset, Embeddings]:
    """``build_dataset`` + ``build_model`` + ``embed`` for the configured dataset and model."""
    dataset = build_dataset(cfg.dataset)
    loaded = build_model(cfg)
    return dataset, embed(cfg, dataset, loaded, tracker)
