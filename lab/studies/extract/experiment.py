"""Extraction only: embed the dataset (or one shard of it) into the shared cache, nothing else.

For large corpora: one job per shard (``embed.shard=0/N,1/N,...`` as a multirun, e.g. a SLURM
array through ``hydra/launcher=submitit_slurm``) fills ``paths.cache``; the studies then run on
the cache. Each job logs what it embedded (``n_songs``, skipped files, cache hits/misses), the
backend that ran and how fast: ``clips_per_s`` and ``s_per_clip`` (wall time of the job's
extraction, decoding included, cached clips counted as free).
"""

from __future__ import annotations

import time

from omegaconf import DictConfig

from lab.extract.pipeline import build_dataset, build_model, embed
from lab.extract.sharding import parse_shard


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    """Embed the configured dataset's shard ``embed.shard`` (all clips when null) with ``cfg.model``."""
    dataset, loaded = build_dataset(cfg.dataset), build_model(cfg, device=cfg.embed.get("device") or "cpu")
    shard = parse_shard(cfg.embed.get("shard"))
    tracker.set_tags({"shard": cfg.embed.shard if shard else "all", "n_shards": shard[1] if shard else 1,
                      "backend_requested": cfg.embed.get("backend") or "auto",
                      "precision": cfg.embed.get("precision") or "fp32"})
    t = time.perf_counter()
    emb = embed(cfg, dataset, loaded, tracker)
    wall = time.perf_counter() - t
    misses = int(getattr(emb, "misses", 0))
    scores = {"n_songs": float(len(emb.clips)), "extract_wall_s": wall, "n_shard_clips": float(len(emb.clips) + len(emb.skipped))}
    if misses:
        scores["s_per_clip"] = wall / misses
        scores["clips_per_s"] = misses / wall
    tracker.log_metrics(scores)
    return scores
