"""The lab's earlier protocol stays reachable by config: the numbers published before artists and
the spherical GMM default (README Table 1, fcn on gtzan_mini, seeds 0-2) come back to the digit."""

from __future__ import annotations

import numpy as np
import pytest

from lab.datasets import clip_groups
from lab.extract.pipeline import load_embeddings
from lab.stats.clusterers import build_clusterer
from lab.stats.metrics import hungarian_accuracy
from lab.stats.uncertainty import bootstrap_clustering

from conftest import GTZAN_MINI, WEIGHTS, need

# (clusterer, k) -> (mean, std over seeds 0-2, 95 % CI of the seed mean), as published with the recording bootstrap
PUBLISHED_FCN = {("kmeans", 7): (0.560, 0.0400, (0.453, 0.660)), ("gmm", 7): (0.587, 0.0306, (0.467, 0.687)),
                 ("kmeans", 10): (0.660, 0.0200, (0.547, 0.767)), ("gmm", 10): (0.580, 0.0400, (0.487, 0.687))}


@pytest.mark.slow
def test_covariance_full_and_group_recording_reproduce_the_published_table(compose_cfg):
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    root = need(GTZAN_MINI)
    base = ("model=fcn", "dataset=gtzan", f"dataset.root={root}", "experiment.group=recording")
    _, emb = load_embeddings(compose_cfg(*base))
    groups = clip_groups(emb.clips, compose_cfg(*base).experiment.group)
    assert list(groups) == [c.source_id for c in emb.clips]  # recording = the source ids the bootstrap used before
    for (name, k), (mean, std, (lo, hi)) in PUBLISHED_FCN.items():
        extra = ("clusterer.covariance_type=full",) if name == "gmm" else ()
        clusterer = build_clusterer(compose_cfg(*base, f"clusterer={name}", *extra).clusterer)
        preds = [clusterer.fit_predict(emb.X, k=k, seed=s)[0] for s in range(3)]
        acc = [hungarian_accuracy(emb.labels, p) for p in preds]
        ci = bootstrap_clustering(emb.labels, preds, groups=groups, n_boot=1000, seed=0, scores=("accuracy",))["accuracy"]
        assert (round(np.mean(acc), 3), round(np.std(acc, ddof=1), 4)) == (mean, std), (name, k)
        assert (round(ci.lo, 3), round(ci.hi, 3)) == (lo, hi), (name, k)
        # the default unit, artists, draws John Lee Hooker's five blues songs (and Bach's, Marley's, Morphine's) together:
        # a wider interval around the same estimate
        by_artist = bootstrap_clustering(emb.labels, preds, groups=clip_groups(emb.clips, "artist"), n_boot=1000, seed=0,
                                         scores=("accuracy",))["accuracy"]
        assert by_artist.estimate == ci.estimate and by_artist.hi - by_artist.lo > ci.hi - ci.lo
