"""Clustering study (section 3.1 of the study): do tagger embeddings cluster by genre?

Cluster song embeddings with K-Means or a GMM into k clusters, match clusters to genres with the
Hungarian algorithm, and report accuracy (see :mod:`lab.metrics` for the exact definition), NMI,
ARI and V-measure, plus per-genre accuracy (``acc_genre.<genre>``). Artifacts: confusion matrix
raw and row-normalised (PNG + CSV, genres ordered so related ones sit together, see
:func:`lab.analysis.genre_order`), "rogue" songs (CSV, see :mod:`lab.analysis`), t-SNE map with
the rogues marked (PNG), per-song assignments (CSV) and the embeddings (NPZ with matrix, paths
and labels, rows aligned).
"""

from __future__ import annotations

import logging

import numpy as np
from omegaconf import DictConfig
from sklearn.manifold import TSNE

from lab import analysis, metrics, plots
from lab.clusterers import check_k, fit_predict
from lab.pipeline import load_embeddings

log = logging.getLogger(__name__)


def tsne_2d(X: np.ndarray, *, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of ``X`` [shape=(n, dim)]; perplexity capped at (n - 1) / 3 for small sets."""
    p = float(min(perplexity, max((len(X) - 1) / 3, 1.0)))
    return TSNE(n_components=2, perplexity=p, init="pca", random_state=seed).fit_transform(X)


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    """Cluster, match, score and log; returns the metrics."""
    k, seed = int(cfg.cluster_count.k), int(cfg.seed)
    dataset, emb = load_embeddings(cfg, tracker)
    check_k(k, len(emb.clips))
    y = emb.labels
    pred, notes = fit_predict(emb.X, cfg.clusterer, k=k, seed=seed)
    for n in notes:
        log.warning("clusterer: %s", n)
    scores = metrics.evaluate(y, pred)
    assignment = metrics.hungarian_assignment(y, pred)
    assigned = assignment.assigned(pred)
    scores["n_clusters_found"] = float(len(set(pred.tolist())))
    correct = assigned == y
    per_genre = {f"acc_genre.{g}": float(correct[y == g].mean()) for g in assignment.genres}
    tracker.log_metrics(scores | per_genre)

    what = f"{cfg.model.name} on {dataset.name} ({len(y)} songs), {cfg.clusterer.name} k={k} seed={seed}"
    order = analysis.genre_order(emb.X, y)
    cm, cols = metrics.confusion(y, assigned, order)
    tracker.log_csv([{"genre": g, **{c: int(v) for c, v in zip(cols, row)}} for g, row in zip(order, cm)],
                    "confusion_matrix.csv")
    tracker.log_figure(plots.confusion_matrix(cm, order, cols, title=f"{what}\naccuracy {scores['accuracy']:.3f}"),
                       "confusion_matrix.png")
    tracker.log_figure(plots.confusion_matrix(cm, order, cols, title=f"{what} (row-normalised)", normalize=True),
                       "confusion_matrix_normalized.png")
    tracker.log_csv([{"file": c.path, "id": c.id, "genre": c.label, "cluster": int(p), "assigned_genre": a, "correct": bool(a == c.label)}
                     for c, p, a in zip(emb.clips, pred, assigned)], "assignments.csv")
    tracker.log_csv([{"cluster": c, "assigned_genre": assignment.cluster_to_genre.get(c, metrics.UNASSIGNED),
                      **{g: int(n) for g, n in zip(assignment.genres, assignment.contingency[:, j])}}
                     for j, c in enumerate(assignment.clusters)], "contingency.csv")
    ids = [c.id for c in emb.clips]
    rogues = analysis.top_rogues(emb.X, y, ids, [c.path for c in emb.clips],
                                 n_neighbors=cfg.experiment.rogue_neighbors, top=cfg.experiment.rogue_top)
    tracker.log_csv(rogues, "rogue_songs.csv", columns=analysis.ROGUE_COLUMNS)
    tracker.log_metrics({"n_rogue": float(len(rogues))})
    if rogues:
        log.info("rogue songs: %s", ", ".join(f"{r['id']} (in {r['sits_in']})" for r in rogues[:5]))
    xy = tsne_2d(emb.X, seed=seed, perplexity=cfg.experiment.tsne_perplexity)
    marked = {r["row"]: f"{ids[r['row']].rsplit('/', 1)[-1]} -> {r['sits_in']}" for r in rogues}
    tracker.log_figure(plots.embedding_map(xy, y, title=f"t-SNE of {cfg.model.name} embeddings ({dataset.name}, {len(y)} songs); "
                                           f"rogue songs ringed", marked=marked), "tsne.png")
    if cfg.experiment.save_embeddings:
        tracker.log_npz("embeddings.npz", X=emb.X, paths=emb.paths, ids=np.array(ids),
                        labels=y, n_windows=emb.n_windows, tsne=xy, cluster=pred)
    log.info("%s: accuracy %.3f, NMI %.3f, ARI %.3f", what, scores["accuracy"], scores["nmi"], scores["ari"])
    return scores
