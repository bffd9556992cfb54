"""How many natural clusters? (the study's Figure 2)

Fit the configured clusterer (GMM by default, as in the study; ``clusterer=kmeans`` works too)
for every k in ``[k_min, k_max]`` and compute three internal indices on the embeddings:
silhouette (higher is better), Calinski-Harabasz (higher) and Davies-Bouldin (lower). Each is
logged as an MLflow metric ``cluster_scores/<index>`` with ``step=k`` so the UI draws the curves (the
prefix gives them their own chart section); the best k per index is logged as ``best_k/<index>`` and summarised in the ``best_k`` tag; one figure shows all three.

Each k is fitted with ``experiment.seeds`` clusterer seeds (``seed``, ``seed+1``, ...): the curves
are the mean over seeds (``cluster_scores/<index>_std`` beside them), the best k is taken on the mean, and
``best_k_seed_agreement/<index>`` says what share of single seeds would have picked the same k —
with one GMM seed per k the answer can flip. The indices are computed in the space the clusterer
works in (standardised when ``clusterer.standardize=true``, after PCA when ``clusterer.pca=N``).
A GMM also logs its BIC per k (``cluster_scores/bic``, lower is better, ``best_k/bic``), the
criterion a mixture model offers for its own number of components; and when the mixture is
ill-posed for the songs at hand (full covariance with fewer songs per component than dimensions)
the run says so in one warning per k range.
"""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from lab.core.errors import LabError  # noqa: E402
from lab.extract.pipeline import load_embeddings  # noqa: E402
from lab.models.protocol import model_label  # noqa: E402
from lab.stats.clusterers import Clusterer, build_clusterer  # noqa: E402

log = logging.getLogger(__name__)

PREFIX = "cluster_scores/"  # per-k index curves: cluster_scores/<index>[_std], step = k

INDICES = {  # name -> (function, "max" | "min")
    "silhouette": (skm.silhouette_score, "max"),
    "calinski_harabasz": (skm.calinski_harabasz_score, "max"),
    "davies_bouldin": (skm.davies_bouldin_score, "min"),
}
SENSE = {name: sense for name, (_, sense) in INDICES.items()} | {"bic": "min"}  # bic: GMM only, from the fitted model


def score_range(X: np.ndarray, clusterer: Clusterer, ks: list[int], *, seeds: list[int]) -> dict[str, dict[int, dict[int, float]]]:
    """{index: {k: {seed: value}}}, computed in the space the clusterer works in (standardised when
    it standardises, after PCA when it reduces). Degenerate fits (every song in one cluster) give no
    value. Clusterers with a likelihood (GMM) add ``bic``."""
    Z = clusterer.prepare(X)
    out: dict[str, dict[int, dict[int, float]]] = {name: {} for name in INDICES}
    for k in ks:
        for seed in seeds:
            pred, _, est = clusterer.fit_prepared(Z, k, seed)
            bic = clusterer.bic(est, Z)
            if bic is not None:
                out.setdefault("bic", {}).setdefault(k, {})[seed] = bic
            if len(set(pred.tolist())) < 2:
                log.warning("k=%d seed=%d: the clusterer put every song in one cluster; no scores", k, seed)
                continue
            for name, (fn, _) in INDICES.items():
                out[name].setdefault(k, {})[seed] = float(fn(Z, pred))
    return out


def over_seeds(scores: dict[str, dict[int, dict[int, float]]], reduce=np.mean) -> dict[str, dict[int, float]]:
    """{index: {k: reduce(values over seeds)}} of :func:`score_range`'s output."""
    return {name: {k: float(reduce(list(v.values()))) for k, v in by_k.items()} for name, by_k in scores.items()}


def seed_std(values) -> float:
    """Sample std over seeds (0 for a single seed)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def best_k(scores: dict[str, dict[int, float]]) -> dict[str, int]:
    """The k each index prefers (max silhouette, max CH, min DB)."""
    best = {}
    for name, sense in SENSE.items():
        if scores.get(name):
            pick = max if sense == "max" else min
            best[name] = pick(scores[name], key=scores[name].get)
    return best


def figure(scores: dict[str, dict[int, dict[int, float]]], best: dict[str, int], title: str) -> plt.Figure:
    mean, std = over_seeds(scores), over_seeds(scores, seed_std)
    names = [n for n in SENSE if mean.get(n)]
    fig, axes = plt.subplots(1, len(names), figsize=(13 / 3 * len(names), 3.6))
    for ax, name in zip(np.atleast_1d(axes), names):
        sense = SENSE[name]
        ks = sorted(mean[name])
        m, sd = np.array([mean[name][k] for k in ks]), np.array([std[name][k] for k in ks])
        ax.plot(ks, m, "o-", ms=4)
        ax.fill_between(ks, m - sd, m + sd, alpha=0.25, lw=0)
        if name in best:
            ax.axvline(best[name], color="tab:red", ls="--", lw=1)
        ax.set_title(f"{name.replace('_', '-')} ({'higher' if sense == 'max' else 'lower'} is better; best k={best.get(name)})", fontsize=9)
        ax.set_xlabel("number of clusters k (band: ±1 std over seeds)")
        ax.set_xticks(ks[:: -(-len(ks) // 10)])  # at most ~10 labels
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    e = cfg.experiment
    clusterer = build_clusterer(cfg.clusterer)
    dataset, emb = load_embeddings(cfg, tracker)
    n = len(emb.clips)
    ks = [k for k in range(int(e.k_min), int(e.k_max) + 1) if k <= n - 1]
    if not ks:
        raise LabError(f"experiment.k_min={e.k_min} leaves no k below the number of songs ({n}); the indices need k <= n-1")
    if len(ks) < e.k_max - e.k_min + 1:
        tracker.warn(f"k capped at {ks[-1]} (number of songs - 1)")
    seeds = [int(cfg.seed) + i for i in range(int(e.seeds))]
    ill = [k for k in ks if clusterer.conditioning(n, k, emb.X.shape[1])]
    if ill:
        tracker.warn(f"{clusterer.conditioning(n, ill[0], emb.X.shape[1])} (k = {ill[0]}..{ill[-1]}; read these curves as the regulariser's)")
    per_seed = score_range(emb.X, clusterer, ks, seeds=seeds)
    mean, std = over_seeds(per_seed), over_seeds(per_seed, seed_std)
    for name in mean:
        for k in mean[name]:
            tracker.log_metrics({f"{PREFIX}{name}": mean[name][k], f"{PREFIX}{name}_std": std[name][k]}, step=k)
    best = best_k(mean)
    # the share of seeds that, alone, would pick the same k: one GMM seed can flip the answer
    agree = {name: float(np.mean([best_k({name: {k: v[s] for k, v in per_seed[name].items() if s in v}}).get(name) == best[name]
                                  for s in seeds])) for name in best}
    tracker.log_metrics({f"best_k/{name}": float(k) for name, k in best.items()} | {f"best_k_seed_agreement/{name}": a for name, a in agree.items()})
    tracker.set_tags({"best_k": ", ".join(f"{n}={k}" for n, k in best.items())})
    tracker.log_csv([{"k": k, "seed": s, **{name: per_seed[name].get(k, {}).get(s) for name in per_seed}} for k in ks for s in seeds],
                    "cluster_scores.csv")
    cov = f" {clusterer.covariance_type}" if getattr(clusterer, "covariance_type", None) else ""
    what = (f"{model_label(cfg.model)} on {dataset.name} ({n} songs), {clusterer.name}{cov}{' standardised' if clusterer.standardize else ''}"
            f"{f' PCA {clusterer.pca}' if clusterer.pca else ''}, mean of {len(seeds)} seeds")
    tracker.log_figure(figure(per_seed, best, what), "cluster_scores.png")
    log.info("best k: %s (share of seeds agreeing: %s)", best, agree)
    return {f"best_k/{name}": float(k) for name, k in best.items()}
