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
                     ("shift.backend=sox", "shift.backend"), ("transform.ridge=-1", "transform.ridge"),
                     ("transform.ridge=auto", "transform.ridge"), ("transform.pca_rank=0", "transform.pca_rank"),
                     ("experiment.ridge.shrink_to=one", "shrink_to"), ("experiment.ridge.alphas=[0]", "alphas"),
                     ("experiment.n_boot=-1", "experiment.n_boot"), ("experiment.pool_sizes=[1]", "pool_sizes"),
                     ("experiment.group=song", "group=")):
        with pytest.raises(LabError, match=msg):
            check(compose_cfg("experiment=transforms", "transform=affine", bad))


# ---------------------------------------------------------------- issue 21: a Table 2 that can fail both ways


def test_ridge_solutions_match_scikit_learn_and_their_limits():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(8)
    X, Y = rng.normal(size=(20, 30)), rng.normal(size=(20, 30))
    Xc = X - X.mean(0)
    for shrink, A0 in (("identity", np.eye(30)), ("zero", np.zeros((30, 30)))):
        A, b = T.affine(X, Y, ridge=0.3, shrink_to=shrink)
        ref = Ridge(alpha=0.3 * (Xc**2).sum() / 30).fit(X, Y - X @ A0.T)
        assert np.allclose(A, A0 + ref.coef_, atol=1e-10) and np.allclose(b, ref.intercept_, atol=1e-10)
    # a huge penalty towards I gives the translation map; towards 0 it predicts the mean shifted song
    for name in T.PENALISED:
        A, b = T.FITTERS[name](X, Y, ridge=1e12)
        assert np.allclose(A, np.eye(30), atol=1e-6) and np.allclose(b, (Y - X).mean(0), atol=1e-6)
    A, b = T.affine(X, Y, ridge=1e12, shrink_to="zero")
    assert np.abs(A).max() < 1e-6 and np.allclose(b, Y.mean(0), atol=1e-6)
    # ridge=0 stays the study's minimum-norm least squares, exactly as before
    A, _ = T.affine(X, Y, ridge=0)
    assert np.allclose(A, np.linalg.lstsq(Xc, Y - Y.mean(0), rcond=None)[0].T)


def test_ridge_affine_beats_the_unregularised_one_held_out_when_p_exceeds_n():
    from lab.studies.transforms import inference as I

    rng = np.random.default_rng(9)
    X = rng.normal(size=(40, 100))  # 32 training songs per fold, 100 dimensions
    Y = X + 0.5 + 0.5 * rng.normal(size=X.shape)
    groups = np.arange(40)
    free = T.cross_fit("affine", X, Y, groups=groups, k=5, ridge=0.0)
    ridge = T.cross_fit("affine", X, Y, groups=groups, k=5, ridge="cv")
    free_r2, ridge_r2 = T.evaluate(free.P_cv, Y)["r2"], T.evaluate(ridge.P_cv, Y)["r2"]
    assert ridge_r2 > free_r2 + 0.2
    d = I.paired(ridge.P_cv, free.P_cv, Y, I.redraws(groups, n_boot=500))["r2"]
    assert d["lo"] > 0  # resolved, not just larger
    # the truth is a translation: nested CV picks the largest penalties, i.e. (nearly) that map
    assert np.median(ridge.alphas_cv) >= 100
    assert T.evaluate(free.P_in, Y)["mse"] < 1e-12  # and in sample the free map still interpolates


def test_the_penalty_is_chosen_without_the_held_out_songs(monkeypatch):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(25, 6))
    Y = X @ rng.normal(size=(6, 6)) + rng.normal(size=X.shape)
    seen = []
    real = T.select_alpha

    def spy(spec, Xs, Ys, groups=None, *, seed=0):
        seen.append({tuple(r) for r in np.round(Xs, 12)})
        return real(spec, Xs, Ys, groups, seed=seed)

    monkeypatch.setattr(T, "select_alpha", spy)
    T.cross_fit("nonuniform_scaling", X, Y, k=5, seed=1, ridge="cv")
    assert len(seen) == 6  # one choice per outer fold + one on all songs (in sample)
    for rows, (_, test) in zip(seen, T.folds(np.arange(25), k=5, seed=1)):
        assert not rows & {tuple(r) for r in np.round(X[test], 12)}


def test_pca_rank_fits_inside_the_subspace_and_translates_outside():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 12)) * np.linspace(3, 0.3, 12)
    Y = X @ rng.normal(size=(12, 12)) * 0.3 + 1.0
    A, b = T.in_subspace(T.affine, X, Y, 3)
    assert np.linalg.matrix_rank(A - np.eye(12), tol=1e-8) <= 3
    V = T.pca_basis(X, 3)
    Ak, bk = T.affine(X @ V, Y @ V)
    assert np.allclose(V.T @ A @ V, Ak, atol=1e-8) and np.allclose(V.T @ b, bk, atol=1e-8)
    out = np.eye(12) - V @ V.T
    assert np.allclose(out @ b, out @ (Y - X).mean(0), atol=1e-8)
    assert np.allclose(T.apply((A, b), X), T.predict_lifted((Ak, bk), V, (Y - X).mean(0), X), atol=1e-8)
    with pytest.raises(LabError, match="pca_rank"):
        T.MapSpec("affine", pca_rank=0)


def test_direction_p_values_small_for_a_constant_shift_and_uniform_without_one():
    from scipy.stats import kstest

    rng = np.random.default_rng(12)
    X = rng.normal(size=(30, 16))
    real = T.shift_direction(X, X + 1.0 + 0.3 * rng.normal(size=X.shape), n_perm=199)
    assert real["direction_p_signflip"] <= 0.01 and real["direction_p_pairs"] <= 0.01
    flips, pairs = [], []
    for s in range(40):
        r = np.random.default_rng(100 + s)
        X = r.normal(size=(30, 16))
        flips.append(T.shift_direction(X, X + r.normal(size=X.shape), n_perm=199, seed=s)["direction_p_signflip"])
        pairs.append(T.shift_direction(X, r.normal(size=X.shape), n_perm=199, seed=s)["direction_p_pairs"])
    # no common direction: the sign-flip p is uniform; unpaired clouds: the shuffled-pair p is uniform
    for p in (flips, pairs):
        assert 0.3 < np.mean(p) < 0.7 and kstest(p, "uniform").pvalue > 0.01
    # the shuffled-pair null is a different question: with a song's shift paired to itself but no common
    # direction it still rejects (pairing carries information), which is why the sign flip is the headline
    X = rng.normal(size=(30, 16))
    assert T.shift_direction(X, X + rng.normal(size=X.shape), n_perm=199)["direction_p_pairs"] <= 0.01
    with pytest.raises(LabError, match="n_perm"):
        T.shift_direction(X, X, n_perm=0)


def test_bootstrap_intervals_cover_the_truth():
    from lab.studies.transforms import inference as I

    # songs y ~ N(0, 4 I_8), predictions p = y + e, e ~ N(0, I_8): population MSE 8 and R^2 1 - 1/4 = 0.75
    hits_mse = hits_r2 = 0
    reps = 150
    for s in range(reps):
        r = np.random.default_rng(1000 + s)
        Y = 2.0 * r.normal(size=(60, 8))
        P = Y + r.normal(size=Y.shape)
        iv = I.intervals(P, Y, I.redraws(np.arange(60), n_boot=400, seed=s))
        hits_mse += iv["mse"].lo <= 8.0 <= iv["mse"].hi
        hits_r2 += iv["r2"].lo <= 0.75 <= iv["r2"].hi
    assert 0.88 <= hits_mse / reps <= 0.99 and 0.88 <= hits_r2 / reps <= 0.99


def test_nn_accuracy_by_pool_size_is_exact_and_the_extrapolation_recovers_a_known_beta():
    from scipy.special import betaln

    from lab.studies.transforms import inference as I

    rng = np.random.default_rng(13)
    Y = rng.normal(size=(40, 6))
    P = Y + 0.8 * rng.normal(size=Y.shape)
    closer = T.closer_counts(P, Y)
    assert I.accuracy_at_pool(closer, 40, 40).mean() == pytest.approx(T.nn_accuracy(P, Y))
    # Monte Carlo of random pools of 8 agrees with the hypergeometric expectation
    d2 = ((P[:, None] - Y[None]) ** 2).sum(-1)
    hits = []
    for i in range(40):
        for _ in range(300):
            pool = np.append(rng.choice(np.delete(np.arange(40), i), 7, replace=False), i)
            hits.append(pool[np.argmin(d2[i, pool])] == i)
    assert np.mean(hits) == pytest.approx(I.accuracy_at_pool(closer, 40, 8).mean(), abs=0.02)
    # ranks of 4000 "songs" among 49 others with q ~ Beta(0.6, 6): the fit predicts the pool-1000 accuracy
    q = rng.beta(0.6, 6.0, size=4000)
    c = rng.binomial(49, q)
    truth = float(np.exp(betaln(0.6, 6.0 + 999) - betaln(0.6, 6.0)))
    a, b = I.fit_beta_binomial(c, 49)
    assert I.extrapolated_accuracy(a, b, 1000) == pytest.approx(truth, rel=0.25)
    curve = I.pool_curve(c[:50], 50, [2, 50, 1000], I.redraws(np.arange(50), n_boot=300))
    assert curve[50]["acc"] == pytest.approx(np.mean(c[:50] == 0)) and curve[1000]["exact"] == 0.0
    assert curve[1000]["lo"] <= curve[1000]["acc"] <= curve[1000]["hi"] and curve[1000]["acc"] < curve[50]["acc"]


def test_r2_counts_the_error_on_dead_units():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(14)
    Y = rng.normal(size=(30, 6))
    P = Y + 0.3 * rng.normal(size=Y.shape)
    assert T.r2(P, Y) == pytest.approx(r2_score(Y, P, multioutput="variance_weighted"))
    Y[:, 0] = 0.0  # a dead unit in the shifted embedding, predicted badly
    P[:, 0] = 5.0 * rng.normal(size=30)
    assert T.r2(P, Y) < r2_score(Y, P, multioutput="variance_weighted") - 1  # scikit-learn drops that error
    assert T.evaluate(P, Y)["r2"] == pytest.approx(1 - ((P - Y) ** 2).sum() / ((Y - Y.mean(0)) ** 2).sum())


def test_tiny_folds_fall_back_to_translation_instead_of_failing():
    # 4 songs, 2 outer folds: the nested CV trains on a single song, which spans no PCA direction
    rng = np.random.default_rng(15)
    X = rng.normal(size=(4, 5))
    Y = X + 1.0
    P = T.out_of_fold(T.MapSpec("affine", ridge="cv", pca_rank=1), X, Y, k=2)
    assert np.isfinite(P).all()
    A, b = T.in_subspace(T.affine, X[:1], Y[:1], 3)
    assert np.allclose(A, np.eye(5)) and np.allclose(b, 1.0)
    with pytest.raises(LabError, match="pca_rank"):
        T.pca_basis(X, 0)
