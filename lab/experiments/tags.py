"""Tag study: each song's top-k MTG-Jamendo tags (mean of window probabilities) as a CSV."""

from __future__ import annotations

import logging
from importlib import resources

import numpy as np
from omegaconf import DictConfig

from lab.pipeline import load_embeddings

log = logging.getLogger(__name__)


def jamendo_tags() -> list[str]:
    """The 50 tag names in model-output order (alphabetical: sklearn's LabelBinarizer sorts)."""
    text = resources.files("lab").joinpath("data/jamendo_tags.txt").read_text()
    return [t.strip() for t in text.splitlines() if t.strip()]


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    """Log ``top_tags.csv`` (one row per song) and ``tag_means.csv`` (per label)."""
    top_k = int(cfg.experiment.top_k)
    _, emb = load_embeddings(cfg, tracker)
    names = jamendo_tags()
    rows = []
    for clip, probs in zip(emb.clips, emb.tags):
        top = np.argsort(-probs)[:top_k]
        row = {"file": clip.path, "id": clip.id, "label": clip.label}
        for r, j in enumerate(top, start=1):
            row[f"tag{r}"] = names[j]
            row[f"p{r}"] = round(float(probs[j]), 4)
        rows.append(row)
    tracker.log_csv(rows, "top_tags.csv")
    labels = emb.labels
    per_label = [{"label": lab, **{n: round(float(v), 4) for n, v in zip(names, emb.tags[labels == lab].mean(0))}}
                 for lab in sorted(set(labels))]
    tracker.log_csv(per_label, "tag_means.csv")
    tracker.log_text("\n".join(names) + "\n", "jamendo_tags.txt")
    return {"n_songs": float(len(emb.clips))}
