"""Which GMM covariance type is well-posed on these songs? BIC, seed stability and accuracy, measured.

    python scripts/gmm_covariance.py [--models fcn,musicnn,crnn] [--root ../shared/music/gtzan_mini] [--seeds 5]

For each model's embeddings (through the lab's cache), every ``covariance_type`` (full, tied,
diag, spherical) with and without PCA, k = 7 and 10, and two sizes — all songs, and a
holdout-sized half (the songs one cross-fitting half holds) — prints:

* ``bic``: mean BIC over seeds (lower is better; comparable only within one space, i.e. one PCA row);
* ``ari_seeds``: mean adjusted Rand index between the labellings of every pair of seeds
  (1 = the seed does not matter; near 0 = the fit is decided by the start);
* ``acc``: in-sample Hungarian accuracy (mean over seeds);
* ``heldout``: cross-fitted accuracy over recordings (lab.stats.heldout, 5 splits, seed 0), all songs only.

The default in ``conf/clusterer/gmm.yaml`` is the covariance type these numbers favour
(docs/studies/clustering.md quotes the run).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from sklearn.metrics import adjusted_rand_score

from lab.datasets import clip_groups
from lab.extract.pipeline import load_embeddings
from lab.stats.clusterers import COVARIANCE_TYPES, GMMClusterer
from lab.stats.heldout import crossfit_accuracy, halves
from lab.stats.metrics import hungarian_accuracy

ROOT = Path(__file__).resolve().parents[1]


def embeddings(model: str, root: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("config", [f"model={model}", "dataset=gtzan", f"dataset.root={os.path.abspath(root)}", "embed.progress=false"])
    _, emb = load_embeddings(cfg)
    return np.asarray(emb.X, np.float64), emb.labels, emb.clips


def measure(X, y, cov: str, pca: int | None, k: int, seeds: list[int]) -> dict[str, float]:
    gmm = GMMClusterer(name="gmm", covariance_type=cov, pca=pca)
    Z = gmm.prepare(X)
    labels, bics = [], []
    for s in seeds:
        lab, _, est = gmm.fit_prepared(Z, k, s)
        labels.append(lab)
        bics.append(gmm.bic(est, Z))
    ari = np.mean([adjusted_rand_score(a, b) for a, b in itertools.combinations(labels, 2)])
    return {"bic": float(np.mean(bics)), "ari_seeds": float(ari), "acc": float(np.mean([hungarian_accuracy(y, p) for p in labels]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="fcn,musicnn,crnn")
    ap.add_argument("--root", default=str(ROOT.parent / "shared" / "music" / "gtzan_mini"))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--pca", default="none,8,16")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = list(range(a.seeds))
    pcas = [None if p == "none" else int(p) for p in a.pca.split(",")]
    print("model | dim | size | pca | k | covariance | bic | ari_seeds | acc | heldout")
    for model in a.models.split(","):
        X, y, clips = embeddings(model, a.root)
        half, _ = halves(y, clip_groups(clips, "recording"), seed=0)
        for (size, idx), pca, k in itertools.product((("all", np.arange(len(y))), ("half", half)), pcas, (7, 10)):
            for cov in COVARIANCE_TYPES:
                r = measure(X[idx], y[idx], cov, pca, k, seeds)
                ho = ""
                if size == "all":
                    cf = crossfit_accuracy(X, y, clip_groups(clips, "recording"), GMMClusterer(name="gmm", covariance_type=cov, pca=pca),
                                           k=k, seed=0, repeats=5)
                    ho = f"{cf.accuracy:.3f}"
                print(f"{model} | {X.shape[1]} | {len(idx)} | {pca or '-'} | {k} | {cov} | {r['bic']:.0f} | {r['ari_seeds']:.3f} | "
                      f"{r['acc']:.3f} | {ho}", flush=True)


if __name__ == "__main__":
    main()
