"""From config to embeddings: the steps every study shares (dataset, model, cached extraction)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from lab.datasets import Dataset, build_dataset
from lab.embed import Embeddings, extract
from lab.errors import LabError
from lab.filelock import exclusive
from lab.models import build

log = logging.getLogger(__name__)


def dataset_digest(dataset: Dataset) -> str:
    """SHA-256 over every clip's id and content fingerprint: equal digests, equal data (the MLflow dataset digest)."""
    import hashlib

    h = hashlib.sha256()
    for c in dataset.clips:
        h.update(f"{c.id}\t{dataset.fingerprint(c)}\n".encode())
    return h.hexdigest()


def dataset_source(cfg_dataset: DictConfig) -> str:
    """Where the dataset comes from: its root folder, or the generator and its settings for ``synth``."""
    if cfg_dataset.get("root") not in (None, "", "???"):
        return to_absolute_path(str(cfg_dataset.root))
    opts = "&".join(f"{k}={v}" for k, v in cfg_dataset.items() if k != "name")
    return f"{cfg_dataset.name}://generated?{opts}"


def load_embeddings(cfg: DictConfig, tracker=None) -> tuple[Dataset, Embeddings]:
    """Build the configured dataset and model, embed every usable clip (cache first) and report it."""
    dataset = build_dataset(cfg.dataset)
    for note in dataset.notes:
        log.warning(note)
    if cfg.embed.get("num_threads"):
        torch.set_num_threads(int(cfg.embed.num_threads))
    model, weights_id = build(cfg.model.name, pretrained=cfg.model.pretrained,
                              weights_dir=to_absolute_path(str(cfg.paths.weights)),
                              subpath=cfg.model.checkpoint, seed=cfg.seed)
    cache_dir = to_absolute_path(str(cfg.paths.cache))
    # One lock per (cache folder, model): parallel sweep jobs wait for the one extracting, then
    # read its cache, so a model's embeddings are computed once even with 2+ workers.
    with exclusive(Path(cache_dir) / cfg.model.name / ".extract.lock"):
        emb = extract(dataset, model, weights_id=weights_id, cache_dir=cache_dir,
                      batch_size=cfg.embed.get("batch_size"), workers=cfg.embed.get("workers"),
                      progress=cfg.embed.progress)
    if emb.skipped:
        where = f"{tracker.artifact_uri}/skipped_files.csv" if tracker is not None else "the run's skipped_files.csv"
        msg = (f"{len(emb.skipped)} of {len(dataset.clips)} files skipped as unusable audio "
               f"({', '.join(sorted({r for _, r, _ in emb.skipped}))}); each with its reason in {where}")
        tracker.warn(msg) if tracker is not None else log.warning(msg)
    if emb.padded and tracker is not None:
        tracker.warn(f"{len(emb.padded)} clips shorter than one {cfg.model.name} window were zero-padded to one window")
    if tracker is not None:
        tracker.log_dataset(dataset.name, digest=dataset_digest(dataset), source=dataset_source(cfg.dataset),
                            n_rows=len(dataset.clips))
        tracker.set_tags({"weights": weights_id[:16], "n_songs": len(emb.clips)})
        tracker.log_metrics({"n_songs": len(emb.clips), "n_skipped": len(emb.skipped), "n_padded": len(emb.padded),
                             "cache_hits": emb.hits, "cache_misses": emb.misses})
        if emb.skipped:
            tracker.log_csv([{"path": p, "reason": r, "detail": d} for p, r, d in emb.skipped], "skipped_files.csv")
    if len(emb.clips) == 0:
        raise LabError(f"no usable audio in dataset={dataset.name} ({len(emb.skipped)} files skipped)")
    return dataset, emb
