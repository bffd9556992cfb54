"""The clustering study's parts of the paper document (``python -m lab.report --paper``).

Figure 1 (t-SNE per model, with its listening page), Figure 2 (cluster-count indices), Table 1
(beside the study's numbers), Figure 3 (confusion matrix of the best run and its rogue songs), and
beyond the paper: paired model comparisons and the training-corpus comparison. Each builder takes
a :class:`~lab.tracking.SweepReader` and returns a :class:`~lab.stats.document.Section`.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from lab.stats.document import Figure, NamedTable, Section, Text
from lab.stats.tables import Table, model_order, run_label
from lab.studies.clustering import report as table1_report

RUN = ("python -m lab experiment=clustering model=fcn,musicnn,crnn clusterer=kmeans,gmm cluster_count=seven,ten "
       "seed=0,1 dataset=gtzan dataset.root=../shared/music/gtzan_mini paths.weights=../shared/weights sweep_id={sweep} -m")
SCORES_RUN = ("python -m lab experiment=cluster_scores model=fcn,musicnn,crnn dataset=gtzan "
              "dataset.root=../shared/music/gtzan_mini paths.weights=../shared/weights sweep_id={sweep} -m")
CORPUS_RUN = ("python -m lab experiment=clustering model=fcn model.corpus=mtat,msd clusterer=kmeans cluster_count=ten "
              "seed=0,1 dataset=gtzan dataset.root=../shared/music/gtzan_mini paths.weights=../shared/weights sweep_id={sweep} -m")


def _by_label(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs grouped by model label (``FCN``, ``FCN (MSD)``, ``FCN (random)``), in the study's model order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(run_label(r["tags"]), []).append(r)
    order = {m: i for i, m in enumerate(model_order({r["tags"].get("model", "?") for r in runs}))}
    return dict(sorted(groups.items(), key=lambda kv: (order.get(kv[1][0]["tags"].get("model"), 99), kv[0])))


def _first(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run a per-model figure shows: lowest seed, then K-Means, then the largest k (the maps are per model)."""
    return min(runs, key=lambda r: (int(r["tags"].get("seed", 0)), r["tags"].get("clusterer") != "kmeans",
                                    -int(r["tags"].get("k", 0) or 0)))


def _table1(reader, cfg: DictConfig):
    """The clustering report of the sweep (Table 1 and its companions), built once for the sections that show it."""
    return reader.memo("clustering.report", lambda: table1_report.report(reader.all_runs("clustering"), cfg=cfg,
                                                                           uri=reader.uri, sweep=reader.sweep))


def figure1(reader, cfg: DictConfig) -> Section:
    """Figure 1: the t-SNE map of each model's song embeddings, rogue songs marked; a link to its listening page."""
    runs = reader.runs("clustering")
    s = Section("figure-1", "Figure 1: t-SNE maps of the song embeddings", experiment="clustering",
                paper="The study's Figure 1: a t-SNE map per tagger, coloured by genre. Distances on a t-SNE map are "
                      "not kept; the numbers of Table 1 are computed in the embedding space itself.")
    if not runs:
        return s.not_run(RUN, reader.sweep)
    for label, group in _by_label(runs).items():
        with_page = [r for r in group if reader.local(r, "listen_map/tsne.html")]
        run = _first(with_page or group)
        png = reader.bytes(run, "tsne.png")
        if png is None:
            continue
        s.runs.append(run)
        link = None
        page = reader.local(run, "listen_map")
        if page is not None:
            name = f"listen_map_{label.lower().replace(' ', '_').replace('(', '').replace(')', '').replace(',', '')}"
            s.folders[name] = page
            link = f"{name}/tsne.html"
        s.add(Figure(png, f"{label}: {run['tags'].get('n_songs', '')} songs of {run['tags'].get('dataset', '?')} "
                          f"(t-SNE, perplexity {cfg.experiment.get('tsne_perplexity', 30)}); ringed: rogue songs",
                     link=link, link_text="the map you can listen to (hover, click to play)"))
    return s


def figure2(reader, cfg: DictConfig) -> Section:
    """Figure 2: silhouette, Calinski-Harabasz and Davies-Bouldin over k, seed spread, best k per index."""
    runs = reader.runs("cluster_scores")
    s = Section("figure-2", "Figure 2: how many natural clusters?", experiment="cluster_scores",
                paper="The study reads seven natural clusters off these curves (its Figure 2). Each curve is the mean "
                      "over clusterer seeds with the seed spread shaded; the best k is taken on the mean, and the "
                      "agreement column says what share of single seeds would have picked the same k.")
    if not runs:
        return s.not_run(SCORES_RUN, reader.sweep)
    rows = []
    for label, group in _by_label(runs).items():
        run = group[0]
        s.runs.append(run)
        png = reader.bytes(run, "cluster_scores.png")
        if png is not None:
            s.add(Figure(png, f"{label}: internal indices over k ({run['tags'].get('clusterer', 'gmm')})"))
        m = run["metrics"]
        for index in ("silhouette", "calinski_harabasz", "davies_bouldin", "bic"):  # bic: GMM runs only
            if f"best_k/{index}" in m:
                rows.append({"model": label, "index": index, "best k": int(m[f"best_k/{index}"]),
                             "seed agreement": round(m.get(f"best_k_seed_agreement/{index}", np.nan), 2)})
    if rows:
        s.add(NamedTable("figure2_best_k", Table(pd.DataFrame(rows), heading="Best k per index")))
    return s


def table1(reader, cfg: DictConfig) -> Section:
    """Table 1: accuracy mean (std) over seeds with its interval over artists and the held-out accuracy, beside the study's values."""
    runs = reader.all_runs("clustering")
    s = Section("table-1", "Table 1: genre clustering accuracy", experiment="clustering",
                paper="The study's Table 1: Hungarian-matched accuracy of K-Means and GMM with 7 and 10 clusters, "
                      "mean (std) over seeds, on the full GTZAN (1000 songs). Here: the sweep's dataset.")
    done = [r for r in runs if r["status"] == "FINISHED"]
    if not done:
        return s.not_run(RUN, reader.sweep)
    rep = _table1(reader, cfg)
    s.runs = done
    n_songs = sorted({int(r["metrics"]["n_songs"]) for r in done if "n_songs" in r["metrics"]})
    seeds = sorted({int(r["tags"].get("seed", 0)) for r in done})
    s.add(Text(f"{', '.join(map(str, n_songs)) or '?'} songs; seeds {', '.join(map(str, seeds))} "
               f"(the seeds column counts the seeds of each cell). {rep.summary}."))
    for name in ("table1", "table1_vs_study", "scores", "per_genre"):
        if name in rep.tables and not rep.tables[name].frame.empty:
            s.add(NamedTable(name, rep.tables[name]))
    for note in rep.notes:
        s.add(Text(f"Note: {note}"))
    return s


def figure3(reader, cfg: DictConfig) -> Section:
    """Figure 3: the confusion matrix of the most accurate run, and its rogue songs."""
    runs = reader.runs("clustering")
    s = Section("figure-3", "Figure 3: confusions and rogue songs", experiment="clustering",
                paper="The study's Figure 3: the confusion matrix of its best clustering, whose confusions follow "
                      "the genres' genealogy (rock with metal and country, disco with pop), and songs that sit deep "
                      "in another genre's region (jazz.00001, an orchestral piece filed under jazz).")
    if not runs:
        return s.not_run(RUN, reader.sweep)
    best = max(runs, key=lambda r: (r["metrics"].get("accuracy", -1), -int(r["tags"].get("seed", 0))))
    s.runs = [best]
    t = best["tags"]
    png = reader.bytes(best, "confusion_matrix.png")
    if png is not None:
        s.add(Figure(png, f"{run_label(t)}, {t.get('clusterer')} k={t.get('k')} seed {t.get('seed')}: "
                          f"accuracy {best['metrics'].get('accuracy', float('nan')):.3f} (the sweep's most accurate run)"))
    text = reader.text(best, "rogue_songs.csv")
    if text:
        rogues = pd.read_csv(io.StringIO(text))
        cols = [c for c in ("id", "genre", "sits_in", "score", "centroid_ratio", "knn_fraction") if c in rogues]
        s.add(NamedTable("rogue_songs", Table(rogues[cols].round(3), heading="Rogue songs: deep inside another genre's region")))
    return s


def comparisons(reader, cfg: DictConfig) -> Section:
    """Beyond the paper: paired bootstrap comparisons of the models on the same artists."""
    runs = reader.all_runs("clustering")
    s = Section("comparisons", "Paired model comparisons", experiment="clustering",
                paper="Is the study's ordering of two taggers supported by these songs? A paired bootstrap of the "
                      "accuracy difference on the same redrawn artists: supported, reversed, or not resolved at this n.")
    done = [r for r in runs if r["status"] == "FINISHED"]
    if not done:
        return s.not_run(RUN, reader.sweep)
    t = _table1(reader, cfg).tables.get("comparisons")
    if t is None or t.frame.empty:
        s.missing = f"Comparisons need two models or more clustered alike in sweep {reader.sweep}: run `{RUN.format(sweep=reader.sweep)}`."
        return s
    s.runs = done
    return s.add(NamedTable("comparisons", t))


def corpus(reader, cfg: DictConfig) -> Section:
    """Beyond the paper: one architecture trained on MTG-Jamendo, MagnaTagATune and the Million Song Dataset."""
    runs = reader.runs("clustering")
    s = Section("corpus", "Training corpus", experiment="clustering",
                paper="Does the corpus a tagger was trained on move the genre structure of its space? The same "
                      "architecture's checkpoints from three corpora, clustered alike (seed mean; intervals in Table 1).")
    corpora = {r["tags"].get("corpus", "jamendo") for r in runs}
    if len(corpora) < 2:
        return s.not_run(CORPUS_RUN, reader.sweep)
    rows = []
    for (model, clusterer, k), g in pd.DataFrame(
            [{"model": r["tags"].get("model"), "corpus": r["tags"].get("corpus", "jamendo"), "clusterer": r["tags"].get("clusterer"),
              "k": r["tags"].get("k"), "pretrained": r["tags"].get("pretrained", "true"), "accuracy": r["metrics"].get("accuracy")}
             for r in runs]).query("pretrained == 'true'").groupby(["model", "clusterer", "k"]):
        if g.corpus.nunique() < 2:
            continue
        row = {"model": model, "clusterer": clusterer, "k": k}
        row |= {c: f"{v.mean():.3f} (n={len(v)})" for c, v in g.groupby("corpus").accuracy}
        rows.append(row)
    if not rows:
        return s.not_run(CORPUS_RUN, reader.sweep)
    s.runs = [r for r in runs if r["tags"].get("model") in {row["model"] for row in rows}]
    return s.add(NamedTable("corpus", Table(pd.DataFrame(rows).fillna("–"), heading="Accuracy by training corpus")))
