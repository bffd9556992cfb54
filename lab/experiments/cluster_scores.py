"""How many natural clusters? (the study's Figure 2)

Fit the configured clusterer (GMM by default, as in the study; ``clusterer=kmeans`` works too)
for every k in ``[k_min, k_max]`` and compute three internal indices on the embeddings:
silhouette (higher is better), Calinski-Harabasz (higher) and Davies-Bouldin (lower). Each is
logged as an MLflow metric with ``step=k`` so the UI draws the curves; the best k per index is
logged as ``best_k.<index>`` and summarised in the ``best_k`` tag; one figure shows all three.
"""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from lab.clusterers import fit_predict  # noqa: E402
from lab.errors import LabError  # noqa: E402
from lab.pipeline import load_embeddings  # noqa: E402

log = logging.getLogger(__name__)

INDICES = {  # name -> (function, "max" | "min")
    "silhouette": (skm.silhouette_score, "max"),
    "calinski_harabasz": (skm.calinski_harabasz_score, "max"),
    "davies_bouldin": (skm.davies_bouldin_score, "min"),
}


def score_range(X: np.ndarray, clusterer: DictConfig, ks: list[int], *, seed: int) -> dict[str, dict[int, float]]:
    """{index: {k: value}} for every k (ks outside [2, n-1] are dropped: the indices need them)."""
    out: dict[str, dict[int, float]] = {name: {} for name in INDICES}
    for k in ks:
        pred, _ = fit_predict(X, clusterer, k=k, seed=seed)
        if len(set(pred.tolist())) < 2:  # a degenerate fit (all in one cluster) has no index
            log.warning("k=%d: the clusterer put every song in one cluster; no scores", k)
            continue
        for name, (fn, _) in INDICES.items():
            out[name][k] = float(fn(X, pred))
    return out


def best_k(scores: dict[str, dict[int, float]]) -> dict[str, int]:
    """The k each index prefers (max silhouette, max CH, min DB)."""
    best = {}
    for name, (_, sense) in INDICES.items():
        if scores[name]:
            pick = max if sense == "max" else min
            best[name] = pick(scores[name], key=scores[name].get)
    return best


def figure(scores: dict[str, dict[int, float]], best: dict[str, int], title: str) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (name, (_, sense)) in zip(axes, INDICES.items()):
        ks = sorted(scores[name])
        ax.plot(ks, [scores[name][k] for k in ks], "o-", ms=4)
        if name in best:
            ax.axvline(best[name], color="tab:red", ls="--", lw=1)
        ax.set_title(f"{name.replace('_', '-')} ({'higher' if sense == 'max' else 'lower'} is better; best k={best.get(name)})", fontsize=9)
        ax.set_xlabel("number of clusters k")
        ax.set_xticks(ks[:: -(-len(ks) // 10)])  # at most ~10 labels
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    e = cfg.experiment
    dataset, emb = load_embeddings(cfg, tracker)
    n = len(emb.clips)
    if e.k_min < 2 or e.k_max < e.k_min:
        raise LabError(f"experiment.k_min={e.k_min} and k_max={e.k_max} must satisfy 2 <= k_min <= k_max")
    ks = [k for k in range(int(e.k_min), int(e.k_max) + 1) if k <= n - 1]
    if not ks:
        raise LabError(f"experiment.k_min={e.k_min} leaves no k below the number of songs ({n}); the indices need k <= n-1")
    if len(ks) < e.k_max - e.k_min + 1:
        log.warning("k capped at %d (number of songs - 1)", ks[-1])
    scores = score_range(emb.X, cfg.clusterer, ks, seed=int(cfg.seed))
    for name, by_k in scores.items():
        for k, v in by_k.items():
            tracker.log_metrics({name: v}, step=k)
    best = best_k(scores)
    tracker.log_metrics({f"best_k.{name}": float(k) for name, k in best.items()})
    tracker.set_tags({"best_k": ", ".join(f"{n}={k}" for n, k in best.items())})
    tracker.log_csv([{"k": k, **{name: scores[name].get(k) for name in INDICES}} for k in ks], "cluster_scores.csv")
    tracker.log_figure(figure(scores, best, f"{cfg.model.name} on {dataset.name} ({n} songs), {cfg.clusterer.name}"), "cluster_scores.png")
    log.info("best k: %s", best)
    return {f"best_k.{name}": float(k) for name, k in best.items()}
