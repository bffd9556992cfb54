"""Clusterers, cluster-count scores and the cached t-SNE against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from lab.stats.clusterers import GMMClusterer, KMeansClusterer
from lab.stats.metrics import hungarian_accuracy
from lab.stats.projection import cached_tsne
from lab.studies.clustering.cluster_scores import best_k, over_seeds, score_range


def _blobs(n_per: int = 15, centres: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    C = 20 * rng.standard_normal((centres, 5))
    y = np.repeat(np.arange(centres), n_per)
    return C[y] + rng.standard_normal((len(y), 5)), y


def test_every_index_finds_four_well_separated_blobs():
    X, _ = _blobs()
    scores = score_range(X, GMMClusterer(), list(range(2, 9)), seeds=[0, 1])
    assert best_k(over_seeds(scores)) == {"silhouette": 4, "calinski_harabasz": 4, "davies_bouldin": 4, "bic": 4}
    assert all(len(v) == 2 for v in scores["silhouette"].values())  # one value per seed


def test_seeds_change_kmeans_with_one_restart_and_not_with_many():
    """Documented: the seed picks K-Means' initial centres; with n_init=1 on overlapping groups
    different seeds end in different optima, with enough restarts they agree."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 8))  # no structure: many local optima
    one = [KMeansClusterer(n_init=1).fit_predict(X, k=5, seed=s)[0] for s in range(4)]
    assert len({tuple(p) for p in one}) > 1
    assert hungarian_accuracy(one[0], one[0]) == 1.0
    np.testing.assert_array_equal(KMeansClusterer().fit_predict(X, k=5, seed=3)[0], KMeansClusterer().fit_predict(X, k=5, seed=3)[0])


def test_standardize_makes_a_dominant_dimension_irrelevant():
    """Without standardising, one huge-variance noise dimension decides the clusters; with it, the
    informative (small-scale) dimensions do."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    X = np.column_stack([y + 0.05 * rng.standard_normal(80), 1000 * rng.standard_normal(80)])
    raw, _ = KMeansClusterer().fit_predict(X, k=2, seed=0)
    std, _ = KMeansClusterer(standardize=True).fit_predict(X, k=2, seed=0)
    assert hungarian_accuracy(y, std) == 1.0
    assert hungarian_accuracy(y, raw) < 0.8


def test_scores_are_computed_in_the_standardised_space():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    informative = np.repeat(3 * y[:, None], 6, axis=1) + 0.1 * rng.standard_normal((60, 6))
    X = np.column_stack([informative, 500 * rng.standard_normal(60)])  # one loud noise dimension
    std = over_seeds(score_range(X, KMeansClusterer(standardize=True), [2, 3, 4, 5], seeds=[0]))
    raw = over_seeds(score_range(X, KMeansClusterer(), [2, 3, 4, 5], seeds=[0]))
    assert best_k(std)["silhouette"] == 3
    assert best_k(raw)["silhouette"] == 2  # raw space: the loud noise dimension decides


def test_tsne_is_cached_per_embeddings_and_seed(tmp_path):
    X, _ = _blobs(n_per=8)
    first, hit1 = cached_tsne(X, seed=0, cache_dir=tmp_path)
    again, hit2 = cached_tsne(X, seed=0, cache_dir=tmp_path)
    other, hit3 = cached_tsne(X, seed=1, cache_dir=tmp_path)
    assert (hit1, hit2, hit3) == (False, True, False)
    np.testing.assert_array_equal(first, again)
    assert first.shape == other.shape == (32, 2)  # (init="pca": another seed may give the same map)
    _, hit4 = cached_tsne(X + 1e-3, seed=0, cache_dir=tmp_path)  # other embeddings, other map
    assert hit4 is False


def test_gmm_failure_names_the_right_fix():
    from lab.core.errors import LabError

    X = np.zeros((10, 3))
    X[:, 0] = np.arange(10)
    with pytest.raises(LabError, match="reg_covar=1e-3 or clusterer.covariance_type=spherical"):
        GMMClusterer(covariance_type="full", reg_covar=0.0).fit_predict(X, k=3, seed=0)


@pytest.mark.parametrize("n_songs, one_thread", [(60, True), (4000, False)])  # 4000 = ONE_THREAD_BELOW
def test_small_fits_run_on_one_blas_thread_and_still_find_the_blobs(monkeypatch, n_songs, one_thread):
    """Tiny fits are pinned to one BLAS/OpenMP thread (threads cost more than they save there);
    corpora from ONE_THREAD_BELOW songs up keep the machine's threads."""
    from threadpoolctl import threadpool_info

    from lab.stats.clusterers import ONE_THREAD_BELOW

    assert n_songs in (60, ONE_THREAD_BELOW)
    seen = []
    fit = GMMClusterer._fit

    def spy(self, Z, k, seed):
        seen.append({i["user_api"]: i["num_threads"] for i in threadpool_info()})
        return fit(self, Z, k, seed)

    X, y = _blobs(n_per=n_songs // 4)
    monkeypatch.setattr(GMMClusterer, "_fit", spy)
    labels, _ = GMMClusterer().fit_predict(X, k=4, seed=0)
    outside = {i["user_api"]: i["num_threads"] for i in threadpool_info()}
    assert seen[0] == ({api: 1 for api in outside} if one_thread else outside)
    assert hungarian_accuracy(y, labels) == 1.0  # four far-apart blobs either way


def test_gmm_default_on_50_songs_x_200_dims_is_not_full_and_full_warns(compose_cfg):
    from lab.stats.clusterers import build_clusterer

    gmm = build_clusterer(compose_cfg("clusterer=gmm").clusterer)
    assert gmm.covariance_type != "full" and gmm.covariance_type == GMMClusterer().covariance_type
    assert gmm.conditioning(50, 7, 200) is None
    full = build_clusterer(compose_cfg("clusterer=gmm", "clusterer.covariance_type=full").clusterer)
    assert "7.1 songs per component for 200 dimensions" in full.conditioning(50, 7, 200)
    assert full.conditioning(5000, 7, 200) is None  # 714 songs per component: well-posed
    assert GMMClusterer(covariance_type="full", pca=5).conditioning(50, 7, 200) is None  # 7.1 songs for 5 dimensions
    assert "50 songs for one 200x200" in GMMClusterer(covariance_type="tied").conditioning(50, 7, 200)
    X, _ = _blobs(n_per=13)
    labels, _ = gmm.fit_predict(np.hstack([X, np.random.default_rng(0).standard_normal((len(X), 195))]), k=4, seed=0)
    assert labels.shape == (52,)


def test_old_gmm_is_reachable_by_config_and_gives_the_old_labels(compose_cfg):
    """clusterer.covariance_type=full is the code path of the lab before this default changed, label for label."""
    from sklearn.mixture import GaussianMixture

    from lab.stats.clusterers import build_clusterer

    full = build_clusterer(compose_cfg("clusterer=gmm", "clusterer.covariance_type=full").clusterer)
    assert build_clusterer(compose_cfg("clusterer=gmm_full").clusterer) == full  # one name for sweeps beside kmeans
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 200)) + np.repeat(rng.standard_normal((5, 200)), 10, axis=0)
    for seed in (0, 1):
        old = GaussianMixture(n_components=7, covariance_type="full", reg_covar=1e-6, n_init=1, max_iter=100,
                              random_state=seed).fit(X).predict(X)  # what GMMClusterer._fit did before
        assert (full.fit_predict(X, k=7, seed=seed)[0] == old).all()


def test_pca_reduces_before_clustering_and_the_fitted_pipeline_assigns_new_songs():
    X, y = _blobs(n_per=20)
    noisy = np.hstack([X, 0.5 * np.random.default_rng(1).standard_normal((len(X), 40))])
    km = KMeansClusterer(pca=3)
    assert km.prepare(noisy).shape == (80, 3)
    pipe, notes = km.fit(noisy[::2], k=4, seed=0)
    assert notes == []
    new = pipe.predict(noisy[1::2])
    assert hungarian_accuracy(y[1::2], new) == 1.0
    _, notes = KMeansClusterer(pca=500).fit(noisy, k=4, seed=0)
    assert notes == ["clusterer.pca=500 capped at 45 components (80 songs, 45 dimensions)"]
    from lab.core.errors import LabError

    with pytest.raises(LabError, match="clusterer.pca=0 must be null"):
        KMeansClusterer(pca=0)
