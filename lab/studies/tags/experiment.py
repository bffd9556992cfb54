"""Tag study: each song's top-k tags (mean of window probabilities) as a CSV, and the mean per label."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from lab.extract.pipeline import build_model, dataset_for, embed


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    """Log ``top_tags.csv`` (one row per song) and ``tag_means.csv`` (per label)."""
    top_k = int(cfg.experiment.top_k)
    loaded = build_model(cfg)
    dataset = dataset_for(cfg, loaded)  # an embeddings file with tags brings its own items
    emb = embed(cfg, dataset, loaded, tracker)
    names = loaded.tag_names
    rows = []
    for clip, probs in zip(emb.clips, emb.tags):
        row = {"file": clip.path, "id": clip.id, "label": clip.label}
        for r, j in enumerate(np.argsort(-probs)[:top_k], start=1):
            row[f"tag{r}"] = names[j]
            row[f"p{r}"] = round(float(probs[j]), 4)
        rows.append(row)
    tracker.log_csv(rows, "top_tags.csv")
    labels = emb.labels
    tracker.log_csv([{"label": lab, **{n: round(float(v), 4) for n, v in zip(names, emb.tags[labels == lab].mean(0))}}
                     for lab in sorted(set(labels))], "tag_means.csv")
    tracker.log_text("\n".join(names) + "\n", "tag_names.txt")
    return {"n_songs": float(len(emb.clips))}
