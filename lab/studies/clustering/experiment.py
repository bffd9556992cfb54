"""Clustering study (section 3.1 of the study): do tagger embeddings cluster by genre?

Cluster song embeddings with K-Means or a GMM into k clusters (``cluster_count.k``; ``null`` =
the number of labels in the dataset), match clusters to genres with the Hungarian algorithm, and
report accuracy (see :mod:`lab.stats.metrics` for the exact definition), NMI, AMI, ARI and V-measure
with 95 % bootstrap intervals over artists (``<score>_ci_lo``/``_ci_hi``, :mod:`lab.stats.uncertainty`;
``experiment.group=recording`` resamples recordings instead, the earlier protocol; both conditional
on the fitted clustering), plus per-genre accuracy (``genre/<genre>``). Beside the in-sample
accuracy, the cross-fitted held-out accuracy (``accuracy_heldout``, its std over splits, the
ceiling the splits allow and an interval over the same groups; :mod:`lab.stats.heldout`), and the
GMM's conditioning as a warning when it is ill-posed for the songs at hand. Artifacts: confusion matrix (PNG: counts shaded by row
share; CSV: counts; genres ordered so related ones sit together, see :func:`lab.stats.genres.genre_order`),
"rogue" songs (CSV, see :mod:`lab.stats.genres`), t-SNE map with the rogues marked (PNG; the map is
cached per (embeddings, seed), see :mod:`lab.stats.projection`) and as a page you can listen to
(``listen_map/``: hover and click-to-play previews, :mod:`lab.studies.clustering.listen_map`), per-song assignments (CSV) and the
embeddings (NPZ with matrix, paths and labels, rows aligned).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from lab.core.errors import LabError
from lab.core.storage import array_sha256, text_sha256
from lab.datasets import GROUP_UNITS, clip_groups
from lab.extract.pipeline import load_embeddings
from lab.models.protocol import model_label
from lab.stats import genres as analysis
from lab.stats import metrics, plots, uncertainty
from lab.stats.clusterers import build_clusterer, check_k
from lab.stats.heldout import crossfit_accuracy
from lab.stats.projection import cached_tsne
from lab.studies.clustering import listen_map

log = logging.getLogger(__name__)

GENRE_PREFIX = "genre/"  # per-genre accuracy metrics: genre/<genre>


def check(cfg: DictConfig) -> None:
    """This experiment's own options, checked before any work (``experiment.check``); one sentence each."""
    boot = cfg.experiment.get("bootstrap") or {}
    if boot.get("n_boot", 1000) != 0:
        uncertainty.validate(boot.get("n_boot", 1000), boot.get("level", 0.95), boot.get("method", "auto"))
    lm = cfg.experiment.get("listen_map", True)
    if not isinstance(lm, bool) and not (isinstance(lm, int) and lm >= 0):
        raise LabError(f"experiment.listen_map={lm!r} must be true, false or a seed (only that seed's run gets the page, e.g. 0)")
    unit = cfg.experiment.get("group", "artist")
    if unit not in GROUP_UNITS:
        raise LabError(f"experiment.group={unit!r} must be one of {', '.join(GROUP_UNITS)} (the unit the bootstrap resamples "
                       f"and the held-out halves keep apart)")
    reps = (cfg.experiment.get("heldout") or {}).get("repeats", 5)
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 0:
        raise LabError(f"experiment.heldout.repeats={reps!r} must be an integer >= 0 (0 switches the held-out accuracy off)")


def protocol_tags(cfg: DictConfig, clusterer) -> dict[str, str]:
    """What a Table 1 cell was computed with: the resampling unit, and the GMM's covariance type / PCA."""
    tags = {"group": str(cfg.experiment.get("group", "artist"))}
    if getattr(clusterer, "covariance_type", None):
        tags["covariance_type"] = clusterer.covariance_type
    if clusterer.pca is not None:
        tags["pca"] = str(clusterer.pca)
    return tags


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    """Cluster, match, score and log; returns the metrics."""
    seed = int(cfg.seed)
    clusterer = build_clusterer(cfg.clusterer)
    check(cfg)  # also run by the app before the run opens; cheap, and run() may be called directly
    boot = cfg.experiment.get("bootstrap") or {}
    dataset, emb = load_embeddings(cfg, tracker)
    y = emb.labels
    k = int(cfg.cluster_count.k) if cfg.cluster_count.get("k") is not None else len(set(y.tolist()))
    if cfg.cluster_count.get("k") is None:
        log.info("k = %d, the number of labels in %s (cluster_count.k=N to choose)", k, dataset.name)
        tracker.set_tags({"k": str(k)})
    check_k(k, len(emb.clips))
    tracker.set_tags(protocol_tags(cfg, clusterer))
    unit = str(cfg.experiment.get("group", "artist"))
    groups = clip_groups(emb.clips, unit)
    ill = clusterer.conditioning(len(emb.clips), k, emb.X.shape[1])
    if ill:
        tracker.warn(ill)
    pred, notes = clusterer.fit_predict(emb.X, k=k, seed=seed)
    for n in notes:
        tracker.warn(f"clusterer: {n}")
    scores = metrics.evaluate(y, pred)
    assignment = metrics.hungarian_assignment(y, pred)
    assigned = assignment.assigned(pred)
    scores["n_clusters_found"] = float(len(set(pred.tolist())))
    correct = assigned == y
    # "genre/" prefix: MLflow draws each prefix as its own chart section, so the headline scores stay on top
    per_genre = {f"{GENRE_PREFIX}{g}": float(correct[y == g].mean()) for g in assignment.genres}
    tracker.log_metrics(scores | per_genre)
    if int(boot.get("n_boot", 1000)) > 0:  # 95 % intervals over artists (or recordings), clustering held fixed (lab/stats/uncertainty.py)
        ci = uncertainty.bootstrap_clustering(y, pred, groups=groups, n_boot=int(boot.get("n_boot", 1000)),
                                              seed=int(boot.get("seed", 0)), level=float(boot.get("level", 0.95)),
                                              method=str(boot.get("method", "auto")))
        tracker.log_metrics(uncertainty.interval_metrics(ci))
    held = cfg.experiment.get("heldout") or {}
    heldout = np.full(len(y), np.nan)  # per song: share of splits in which it was right when held out
    cf = None
    if int(held.get("repeats", 5)) > 0:  # cross-fitted: clusters and matching fitted on one half of the groups, scored on the other
        try:
            cf = crossfit_accuracy(emb.X, y, groups, clusterer, k=k, seed=seed, repeats=int(held.get("repeats", 5)),
                                   split_seed=int(held.get("seed", 0)))
        except LabError as err:  # too few songs or groups to halve: the in-sample scores stand, without a held-out one
            tracker.warn(f"held-out accuracy skipped: {err}")
    if cf is not None:
        tracker.log_metrics({"accuracy_heldout": cf.accuracy, "accuracy_heldout_std": cf.std, "accuracy_heldout_ceiling": cf.ceiling})
        if int(boot.get("n_boot", 1000)) > 0:
            iv = uncertainty.bootstrap_mean(cf.song_correct, groups, n_boot=int(boot.get("n_boot", 1000)), seed=int(boot.get("seed", 0)),
                                            level=float(boot.get("level", 0.95)))
            tracker.log_metrics({"accuracy_heldout_ci_lo": iv.lo, "accuracy_heldout_ci_hi": iv.hi})
        scores["accuracy_heldout"] = cf.accuracy
        heldout = cf.song_correct

    what = f"{model_label(cfg.model)} on {dataset.name} ({len(y)} songs), {clusterer.name} k={k} seed={seed}"
    order = analysis.genre_order(emb.X, y)
    cm, cols = metrics.confusion(y, assigned, order)
    tracker.log_csv([{"genre": g, **{c: int(v) for c, v in zip(cols, row)}} for g, row in zip(order, cm)],
                    "confusion_matrix.csv")
    tracker.log_figure(plots.confusion_matrix(cm, order, cols, title=f"{what}\naccuracy {scores['accuracy']:.3f}"),
                       "confusion_matrix.png", tight=False)  # laid out by tight_layout: one drawing pass, not two
    tracker.log_csv([{"file": c.path, "id": c.id, "genre": c.label, "cluster": int(p), "assigned_genre": a, "correct": bool(a == c.label),
                      "source": c.source_id, "group": g, "heldout": "" if np.isnan(h) else round(float(h), 6)}
                     for c, p, a, g, h in zip(emb.clips, pred, assigned, groups, heldout)], "assignments.csv")
    tracker.log_csv([{"cluster": c, "assigned_genre": assignment.cluster_to_genre.get(c, metrics.UNASSIGNED),
                      **{g: int(n) for g, n in zip(assignment.genres, assignment.contingency[:, j])}}
                     for j, c in enumerate(assignment.clusters)], "contingency.csv")
    ids = emb.ids
    rogues = analysis.top_rogues(emb.X, y, ids, [c.path for c in emb.clips],
                                 n_neighbors=cfg.experiment.rogue_neighbors, top=cfg.experiment.rogue_top)
    tracker.log_csv(rogues, "rogue_songs.csv", columns=analysis.ROGUE_COLUMNS)
    tracker.log_metrics({"n_rogue": float(len(rogues))})
    if rogues:
        shown = rogues[:5]
        log.info("rogue songs (%d of %d shown): %s", len(shown), len(rogues), ", ".join(f"{r['id']} (in {r['sits_in']})" for r in shown))
    # The map does not depend on the clustering, so one seed for it (experiment.tsne_seed, default
    # 0): a sweep over seeds reads one cached map per model instead of computing one per seed.
    tsne_seed = cfg.experiment.get("tsne_seed")
    xy, hit = cached_tsne(emb.X, seed=seed if tsne_seed is None else int(tsne_seed), perplexity=cfg.experiment.tsne_perplexity, cache_dir=to_absolute_path(str(cfg.paths.cache)))
    tracker.log_metrics({"tsne_cached": float(hit)})
    marked = {r["row"]: f"{ids[r['row']].rsplit('/', 1)[-1]} -> {r['sits_in']}" for r in rogues}
    # The same map for every clustering seed: a sweep process draws it once (plots.cached_png).
    title = f"t-SNE of {model_label(cfg.model)} embeddings ({dataset.name}, {len(y)} songs); rogue songs ringed"
    key = text_sha256(array_sha256(xy), "\t".join(y.tolist()), sorted(marked.items()), title)
    tracker.log_bytes(plots.cached_png(key, lambda: plots.embedding_map(xy, y, title=title, marked=marked), dpi=tracker.dpi), "tsne.png")
    lm = cfg.experiment.get("listen_map", True)
    if not dataset.has_audio and lm is not False:
        log.info("no listen map: the items of %s have no audio to preview", dataset.name)
    elif lm is True or (lm is not False and int(lm) == seed):  # a seed: one page per sweep cell, not one per seed
        scored = analysis.rogue_scores(emb.X, y, n_neighbors=cfg.experiment.rogue_neighbors)
        points = [listen_map.MapPoint(id=c.id, file=Path(c.path).name, genre=c.label, cluster=f"{int(p)} -> {a}",
                                      rogue_score=s["score"], rogue=s["rogue"]) for c, p, a, s in zip(emb.clips, pred, assigned, scored)]
        listen_map.log_listen_map(tracker, xy, points, lambda i: dataset.load(emb.clips[i], listen_map.PREVIEW_SR),
                                  keys=[dataset.fingerprint(c) for c in emb.clips], cache_dir=to_absolute_path(str(cfg.paths.cache)),
                                  title=f"t-SNE map: {what}")
    if cfg.experiment.save_embeddings:
        tracker.log_npz("embeddings.npz", X=emb.X, paths=emb.paths, ids=np.array(ids),
                        labels=y, n_windows=emb.n_windows, tsne=xy, cluster=pred)
    log.info("%s: accuracy %.3f (held out %s), NMI %.3f, ARI %.3f", what, scores["accuracy"],
             f"{scores['accuracy_heldout']:.3f}" if "accuracy_heldout" in scores else "off", scores["nmi"], scores["ari"])
    return scores
