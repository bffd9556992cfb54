"""Cross-fitted (held-out) clustering accuracy against constructed answers: blobs, noise, single-group genres."""

from __future__ import annotations

import numpy as np
import pytest

from lab.core.errors import LabError
from lab.stats.clusterers import GMMClusterer, KMeansClusterer
from lab.stats.heldout import crossfit_accuracy, halves
from lab.stats.metrics import hungarian_accuracy


def _blobs(n_genres: int = 4, n_per: int = 20, spread: float = 20.0, dim: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = spread * rng.standard_normal((n_genres, dim))
    y = np.repeat([f"g{i}" for i in range(n_genres)], n_per)
    return centres[np.repeat(np.arange(n_genres), n_per)] + rng.standard_normal((len(y), dim)), y


@pytest.mark.parametrize("clusterer", [KMeansClusterer(name="kmeans"), GMMClusterer(name="gmm")], ids=["kmeans", "gmm"])
def test_on_well_separated_blobs_held_out_equals_in_sample(clusterer):
    X, y = _blobs()
    artists = np.array([f"{g}-{i // 4}" for g, i in zip(y, np.tile(np.arange(20), 4))])  # 5 artists of 4 songs per genre
    inside = hungarian_accuracy(y, clusterer.fit_predict(X, k=4, seed=0)[0])
    cf = crossfit_accuracy(X, y, artists, clusterer, k=4, seed=0, repeats=3)
    assert inside == cf.accuracy == cf.ceiling == 1.0 and cf.std == 0.0
    assert (cf.song_correct == 1.0).all()


def test_on_pure_noise_held_out_falls_to_chance_while_in_sample_does_not():
    # 10 genres x 40 songs of noise, k = 10: the in-sample matching fits the noise (about 0.17 here),
    # the held-out matching cannot (chance = 1 / 10).
    rng = np.random.default_rng(1)
    y = np.repeat([f"g{i}" for i in range(10)], 40)
    X = rng.standard_normal((400, 20))
    km = KMeansClusterer(name="kmeans", n_init=3)
    inside = np.mean([hungarian_accuracy(y, km.fit_predict(X, k=10, seed=s)[0]) for s in range(3)])
    cf = crossfit_accuracy(X, y, np.arange(400), km, k=10, seed=0, repeats=6)
    assert inside > 0.15
    assert cf.accuracy == pytest.approx(0.10, abs=0.03)
    assert inside - cf.accuracy > 0.04  # the optimism cross-fitting removes


def test_a_genre_of_one_group_is_never_right_held_out_and_the_ceiling_says_so():
    X, y = _blobs(n_genres=4, n_per=10)
    groups = np.array([f"{g}-{i}" for g, i in zip(y, np.tile(np.arange(10), 4))], dtype=object)
    groups[y == "g0"] = "solo"  # one artist holds the whole genre
    cf = crossfit_accuracy(X, y, groups, KMeansClusterer(name="kmeans"), k=4, seed=0, repeats=4)
    assert (cf.song_correct[y == "g0"] == 0).all()  # whichever half holds it, the other half never saw it
    assert cf.ceiling == pytest.approx(0.75) and 0.6 < cf.accuracy <= cf.ceiling
    a, b = halves(y, groups, seed=0)
    assert set(groups[a]).isdisjoint(groups[b]) and len(a) + len(b) == len(y)


def test_k_caps_the_ceiling_and_bad_options_are_one_sentence():
    X, y = _blobs(n_genres=5, n_per=8)
    cf = crossfit_accuracy(X, y, np.arange(len(y)), KMeansClusterer(name="kmeans"), k=3, seed=0, repeats=2)
    assert cf.ceiling == pytest.approx(0.6, abs=0.05) and cf.accuracy <= cf.ceiling + 1e-12
    with pytest.raises(LabError, match="needs at least 2 groups"):
        crossfit_accuracy(X, y, np.zeros(len(y)), KMeansClusterer(name="kmeans"), k=3, seed=0)
    with pytest.raises(LabError, match="k=30 is larger than a half of the songs"):
        crossfit_accuracy(X, y, np.arange(len(y)), KMeansClusterer(name="kmeans"), k=30, seed=0)
    with pytest.raises(LabError, match="repeats=0 must be a positive integer"):
        crossfit_accuracy(X, y, np.arange(len(y)), KMeansClusterer(name="kmeans"), k=3, seed=0, repeats=0)
