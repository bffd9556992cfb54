"""Fitters recover known maps and keep their constraints; CV never trains on a song's own pair."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from lab.core.errors import LabError
from lab.studies.transforms import maps as T

N, D = 120, 8


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(N, D)) * 2 + 1


def test_identity_and_translation(X):
    b = np.linspace(-1, 1, D)
    A, b0 = T.identity(X, X + b)
    assert np.array_equal(A, np.eye(D)) and not b0.any()
    A, b1 = T.translation(X, X + b)
    assert np.array_equal(A, np.eye(D)) and np.allclose(b1, b, atol=1e-12)


def test_uniform_scaling_recovers_r_and_is_rI(X):
    A, b = T.uniform_scaling(X, 1.7 * X + 0.3)
    assert np.allclose(A, 1.7 * np.eye(D), atol=1e-10) and np.allclose(b, 0.3, atol=1e-10)
    assert np.allclose(A, A[0, 0] * np.eye(D), atol=0)  # exactly r I


def test_nonuniform_scaling_recovers_diagonal(X):
    r, b = np.linspace(0.5, 2.0, D), np.arange(D, dtype=float)
    A, b_hat = T.nonuniform_scaling(X, X * r + b)
    assert np.allclose(np.diag(A), r, atol=1e-10) and np.allclose(b_hat, b, atol=1e-10)
    assert np.count_nonzero(A - np.diag(np.diag(A))) == 0  # diagonal
    # A dead (constant) input unit falls back to r = 1 instead of dividing by zero.
    Xd = X.copy()
    Xd[:, 0] = 0.0
    A, _ = T.nonuniform_scaling(Xd, Xd * r + b)
    assert A[0, 0] == 1.0 and np.isfinite(A).all()


def test_scaled_orthogonal_recovers_sQ_and_Q_is_orthogonal(X):
    Q = ortho_group.rvs(D, random_state=1)
    A, b = T.scaled_orthogonal(X, 0.8 * X @ Q.T)
    assert not b.any()
    s = np.linalg.norm(A, 2)
    assert s == pytest.approx(0.8, abs=1e-10)
    assert np.allclose((A / s).T @ (A / s), np.eye(D), atol=1e-6)
    assert np.allclose(A, 0.8 * Q, atol=1e-8)
    # On noisy data the orthogonality must still hold to 1e-6.
    A, _ = T.scaled_orthogonal(X, X @ Q.T + np.random.default_rng(2).normal(size=X.shape))
    s = np.linalg.norm(A, 2)
    assert np.allclose((A / s).T @ (A / s), np.eye(D), atol=1e-6)


def test_affine_recovers_map_with_and_without_ridge(X):
    A0 = np.random.default_rng(3).normal(size=(D, D))
    b0 = np.random.default_rng(4).normal(size=D)
    Y = X @ A0.T + b0
    A, b = T.affine(X, Y)
    assert np.allclose(A, A0, atol=1e-8) and np.allclose(b, b0, atol=1e-8)
    A, _ = T.affine(X, Y, ridge=1e-6)
    assert np.allclose(A, A0, atol=1e-4)
    with pytest.raises(LabError, match="ridge"):
        T.affine(X, Y, ridge=-1)


def test_affine_contains_translation_in_sample_but_not_held_out():
    # More dimensions than songs: least squares interpolates the training set (in-sample MSE 0)
    # while held out it does worse than a translation -- the reading the study's Table 2 allows.
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 64))
    Y = X + 0.5 + 0.3 * rng.normal(size=X.shape)
    tr = T.cross_validate("translation", X, Y, k=5, seed=0)
    af = T.cross_validate("affine", X, Y, k=5, seed=0)
    assert af["in_sample.mse"] < 1e-12 <= tr["in_sample.mse"]
    assert af["cv.mse"] > tr["cv.mse"]
    assert tr["chance_nn_accuracy"] == pytest.approx(1 / 30)


def test_metrics_definitions():
    Y = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    P = Y + np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    m = T.evaluate(P, Y)
    assert m["mse"] == pytest.approx(1 / 3) and m["mse_element"] == pytest.approx(1 / 6)
    sst = ((Y - Y.mean(0)) ** 2).sum()
    assert m["r2"] == pytest.approx(1 - 1 / sst)
    assert m["nn_accuracy"] == 1.0
    assert T.nn_accuracy(Y[::-1].copy(), Y) == pytest.approx(1 / 3)


def test_cv_never_trains_on_a_songs_own_pair(monkeypatch):
    rng = np.random.default_rng(6)
    groups = np.repeat(np.arange(12), 3)  # 12 songs, 3 excerpts each
    X = rng.normal(size=(36, 4))
    Y = X + 1
    seen = []
    real = T.translation

    def spy(Xt, Yt):
        seen.append({tuple(r) for r in np.round(Xt, 12)})
        return real(Xt, Yt)

    monkeypatch.setitem(T.FITTERS, "translation", spy)
    T.cross_validate("translation", X, Y, groups=groups, k=4, seed=3)
    assert len(seen) == 5  # 4 folds + the in-sample fit
    test_sets = []
    for train, test in T.folds(groups, k=4, seed=3):
        assert not set(groups[train]) & set(groups[test])  # no song (or excerpt of it) on both sides
        test_sets.append(test)
    for fold_seen, test in zip(seen[:4], test_sets):
        assert not fold_seen & {tuple(r) for r in np.round(X[test], 12)}
    assert sorted(np.concatenate(test_sets)) == list(range(36))  # every song predicted exactly once


def test_shift_direction_finds_a_common_direction():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 16))
    common = T.shift_direction(X, X + 3.0 + 0.1 * rng.normal(size=X.shape))
    random = T.shift_direction(X, X + rng.normal(size=X.shape))
    assert common["direction_cos_mean"] > 0.95 and abs(random["direction_cos_mean"]) < 0.3


def test_bad_input_is_one_sentence():
    with pytest.raises(LabError, match="shape"):
        T.cross_validate("affine", np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(LabError, match="transform="):
        T.fitter("rotation")


def test_experiment_options_are_checked_before_any_work(compose_cfg):
    from lab.studies.transforms.experiment import check

    check(compose_cfg("experiment=transforms", "shift=tempo", "transform=affine"))
    for bad, msg in (("experiment.folds=1", "experiment.folds"), ("shift.amount=7", "shift.amount"),
                     ("shift.backend=sox", "shift.backend"), ("transform.ridge=-1", "transform.ridge")):
        with pytest.raises(LabError, match=msg):
            check(compose_cfg("experiment=transforms", "transform=affine", bad))
