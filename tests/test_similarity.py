"""CKA and Procrustes against known answers (identical, rotated + scaled, independent), and the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from lab.core.errors import LabError
from lab.studies.similarity.cka import linear_cka, measure, procrustes_residual, rbf_cka, similarity_matrix


@pytest.fixture
def X():
    return np.random.default_rng(0).standard_normal((200, 16)) @ np.diag(np.linspace(0.2, 3, 16))


def test_identical_spaces_score_one(X):
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert procrustes_residual(X, X) == pytest.approx(0.0, abs=1e-10)


def test_rotation_plus_isotropic_scale_and_shift_score_one(X):
    R = ortho_group.rvs(16, random_state=1)
    Y = 3.7 * X @ R + 5.0
    assert linear_cka(X, Y) == pytest.approx(1.0, abs=1e-10)
    assert rbf_cka(X, Y) == pytest.approx(1.0, abs=1e-10)  # the bandwidth follows the median distance
    assert procrustes_residual(X, Y) == pytest.approx(0.0, abs=1e-10)


def test_different_widths_rotated_into_a_wider_space(X):
    """A 16-d space isometrically embedded in 40 dimensions (what differing model widths look like)."""
    Q = ortho_group.rvs(40, random_state=2)[:16]  # (16, 40), orthonormal rows
    Y = 0.5 * X @ Q
    assert linear_cka(X, Y) == pytest.approx(1.0, abs=1e-10)
    assert procrustes_residual(X, Y) == pytest.approx(0.0, abs=1e-10)


def test_independent_noise_is_near_zero():
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((2000, 10)), rng.standard_normal((2000, 30))
    assert linear_cka(A, B) < 0.02
    assert rbf_cka(A, B) < 0.03  # the biased estimator's floor shrinks with n (0.07 at n = 500)
    assert procrustes_residual(A, B) > 1.5  # far from 0 (aligned) on the [0, 2] scale


def test_anisotropic_scaling_is_not_invisible(X):
    """CKA is not invariant to arbitrary linear maps: stretching one axis a lot lowers it."""
    Y = X.copy()
    Y[:, 0] *= 50
    assert linear_cka(X, Y) < 0.9


def test_bootstrap_interval_covers_the_value_and_null_sits_low():
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((60, 5))
    spaces = [Z @ rng.standard_normal((5, 20)) + 0.3 * rng.standard_normal((60, 20)), Z, rng.standard_normal((60, 8))]
    res = similarity_matrix(spaces, measure("linear_cka"), n_boot=300, n_perm=100, seed=0)
    lo, hi = res.interval(0.95)
    assert np.allclose(np.diag(res.value), 1.0)
    assert lo[0, 1] <= res.value[0, 1] <= hi[0, 1] and hi[0, 1] - lo[0, 1] > 0
    assert res.value[0, 1] > 0.8 and res.value[0, 2] < res.null[:, 0, 2].mean() + 3 * res.null[:, 0, 2].std()
    assert res.null[:, 0, 1].mean() < 0.35 and res.boot.shape == (300, 3, 3)
    again = similarity_matrix(spaces, measure("linear_cka"), n_boot=300, n_perm=100, seed=0)
    assert np.array_equal(again.boot, res.boot)  # seeded


def test_bad_input_is_one_sentence():
    with pytest.raises(LabError, match="same songs in the same order"):
        linear_cka(np.ones((5, 2)), np.ones((6, 2)))
    with pytest.raises(LabError, match="NaN"):
        linear_cka(np.full((5, 2), np.nan), np.ones((5, 2)))
    with pytest.raises(LabError, match="measure='cca' is unknown"):
        measure("cca")
    assert np.isnan(linear_cka(np.ones((5, 2)), np.random.default_rng(0).standard_normal((5, 2))))


def test_grouped_bootstrap_draws_artists_whole_and_distinct_groups_keep_the_song_bootstrap():
    # 20 artists of 3 near-identical songs: redrawing songs treats 60 songs as independent, redrawing
    # artists sees 20 units, so the interval of the same CKA is wider; distinct groups = the song bootstrap
    rng = np.random.default_rng(5)
    base = rng.standard_normal((20, 6))
    A = np.repeat(base, 3, axis=0) + 0.05 * rng.standard_normal((60, 6))
    B = A @ rng.standard_normal((6, 6)) + 1.0 * rng.standard_normal((60, 6))
    m = measure("linear_cka")
    songs = similarity_matrix([A, B], m, n_boot=400, n_perm=0, seed=1)
    same = similarity_matrix([A, B], m, n_boot=400, n_perm=0, seed=1, groups=[f"s{i}" for i in range(60)])
    assert np.array_equal(songs.boot, same.boot)
    artists = similarity_matrix([A, B], m, n_boot=400, n_perm=0, seed=1, groups=np.repeat(np.arange(20), 3))
    w = lambda r: np.subtract(*r.interval(0.95)[::-1])[0, 1]  # noqa: E731
    assert artists.value[0, 1] == songs.value[0, 1] and w(artists) > 1.3 * w(songs)
    with pytest.raises(LabError, match="groups has 3 entries for 60 songs"):
        similarity_matrix([A, B], m, n_boot=2, n_perm=0, groups=[1, 2, 3])
