"""Simple maps between embedding spaces (the study's Table 2): fitters, metrics, cross-validation.

Each fitter solves, in closed form, ``min ||X_+ - (X A^T + 1 b^T)||_F^2`` under its constraint and
returns ``(A, b)`` with ``A`` [shape=(dim, dim)] acting on column vectors (``x_+ ~ A x + b``) and
``b`` [shape=(dim,)]; :func:`apply` maps rows. Rows of ``X`` (originals) and ``Y`` (shifted) are
songs, paired by row.

=====================  =======================  =============================================
name                   constraint               solution
=====================  =======================  =============================================
identity               A = I, b = 0             nothing to fit (the do-nothing baseline)
translation            A = I                    b = mean(Y - X)
uniform_scaling        A = r I                  r = <Xc, Yc> / ||Xc||^2, b = ybar - r xbar
nonuniform_scaling     A = diag(r)              r_j = cov(x_j, y_j) / var(x_j), b = ybar - r*xbar
scaled_orthogonal      A = s Q, Q^T Q = I, b=0  orthogonal Procrustes (scipy), s = tr(Sigma) / ||X||^2
affine                 none                     least squares on centred data, optional ridge
=====================  =======================  =============================================

Metrics (:func:`evaluate`), on predictions ``P = apply(X)`` against ``Y``:

* ``mse`` -- mean over songs of the squared Euclidean error ``||p_i - y_i||^2``;
  ``mse_element`` -- the same divided by ``dim`` (mean over all elements);
* ``r2`` -- multi-output R^2, variance-weighted: ``1 - sum ||p_i - y_i||^2 / sum ||y_i - ybar||^2``
  (``sklearn.metrics.r2_score(..., multioutput="variance_weighted")``), ybar = mean of the evaluated Y;
* ``nn_accuracy`` -- fraction of songs whose nearest shifted embedding (Euclidean, among all ``n``
  shifted songs) to ``p_i`` is ``y_i``; chance is ``1 / n``.

Held out (:func:`cross_validate`): k-fold over *songs* (rows sharing a group, e.g. excerpts of one
song, stay in one fold); each song's prediction comes from a map fitted without its own pair, then
the metrics are computed once over all out-of-fold predictions.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.linalg import orthogonal_procrustes
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupKFold

from lab.core.errors import LabError

Fitted = tuple[np.ndarray, np.ndarray]  # (A (dim, dim), b (dim,))


def validate(X: np.ndarray, Y: np.ndarray) -> None:
    """Raise :class:`LabError` unless ``X`` and ``Y`` are finite, 2-D, equally shaped, with >= 2 rows."""
    if X.ndim != 2 or X.shape != Y.shape:
        raise LabError(f"X and Y must both have shape (n_songs, dim), got {X.shape} and {Y.shape}")
    if X.shape[0] < 2:
        raise LabError(f"need at least 2 paired songs to fit a transform, got {X.shape[0]}")
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise LabError("embeddings contain NaN or infinite values")


def identity(X: np.ndarray, Y: np.ndarray) -> Fitted:
    """A = I, b = 0: the do-nothing baseline (the shifted song is predicted by the original)."""
    d = X.shape[1]
    return np.eye(d), np.zeros(d)


def translation(X: np.ndarray, Y: np.ndarray) -> Fitted:
    """A = I; b = mean shift vector ``mean(Y - X)`` (the Word2Vec-style direction)."""
    d = X.shape[1]
    return np.eye(d), (Y - X).mean(axis=0)


def uniform_scaling(X: np.ndarray, Y: np.ndarray) -> Fitted:
    """A = r I with a free b: ``r = <Xc, Yc> / ||Xc||_F^2`` on centred data, ``b = ybar - r xbar``."""
    xm, ym = X.mean(0), Y.mean(0)
    Xc, Yc = X - xm, Y - ym
    den = float((Xc * Xc).sum())
    r = float((Xc * Yc).sum()) / den if den > 0 else 1.0
    return r * np.eye(X.shape[1]), ym - r * xm


def nonuniform_scaling(X: np.ndarray, Y: np.ndarray) -> Fitted:
    """A = diag(r) with a free b: per dimension ``r_j = cov(x_j, y_j) / var(x_j)``, ``b = ybar - r * xbar``.

    A dimension that is constant in ``X`` (a dead ReLU unit) fits equally well with any ``r_j``;
    it gets ``r_j = 1`` so the map falls back to a translation there.
    """
    xm, ym = X.mean(0), Y.mean(0)
    Xc, Yc = X - xm, Y - ym
    var = (Xc * Xc).sum(0)
    cov = (Xc * Yc).sum(0)
    r = np.divide(cov, var, out=np.ones_like(var), where=var > 1e-12 * max(float(var.max()), 1e-300))
    return np.diag(r), ym - r * xm


def scaled_orthogonal(X: np.ndarray, Y: np.ndarray) -> Fitted:
    """A = s Q with Q orthogonal and b = 0 (as in the study): orthogonal Procrustes with scale.

    ``scipy.linalg.orthogonal_procrustes(X, Y)`` gives ``R`` minimising ``||X R - Y||_F`` and the sum of
    singular values ``tr(Sigma)`` of ``X^T Y``; the best scale is then ``s = tr(Sigma) / ||X||_F^2``, and
    ``A = s R^T`` acts on columns.
    """
    R, sv_sum = orthogonal_procrustes(X, Y)
    den = float((X * X).sum())
    s = float(sv_sum) / den if den > 0 else 1.0
    return s * R.T, np.zeros(X.shape[1])


def affine(X: np.ndarray, Y: np.ndarray, *, ridge: float = 0.0) -> Fitted:
    """A and b free: least squares on centred data, ``b = ybar - A xbar``.

    ``ridge = 0`` is plain least squares (``np.linalg.lstsq``: the minimum-norm solution when there
    are fewer songs than dimensions, which then fits the training pairs exactly); ``ridge > 0``
    solves ``(Xc^T Xc + ridge I) W = Xc^T Yc`` (the intercept is not penalised).
    """
    if ridge < 0:
        raise LabError(f"transform.ridge={ridge} must be >= 0")
    xm, ym = X.mean(0), Y.mean(0)
    Xc, Yc = X - xm, Y - ym
    if ridge == 0:
        W = np.linalg.lstsq(Xc, Yc, rcond=None)[0]
    else:
        W = np.linalg.solve(Xc.T @ Xc + ridge * np.eye(X.shape[1]), Xc.T @ Yc)
    A = W.T
    return A, ym - A @ xm


FITTERS: dict[str, Callable[..., Fitted]] = {
    "identity": identity, "translation": translation, "uniform_scaling": uniform_scaling,
    "nonuniform_scaling": nonuniform_scaling, "scaled_orthogonal": scaled_orthogonal, "affine": affine,
}


def fitter(name: str, **options: float) -> Callable[[np.ndarray, np.ndarray], Fitted]:
    """The fitter called ``name`` with its options bound (only ``affine`` takes ``ridge``)."""
    if name not in FITTERS:
        raise LabError(f"transform={name!r} must be one of {', '.join(FITTERS)}")
    fn = FITTERS[name]
    if name == "affine":
        return lambda X, Y: fn(X, Y, ridge=float(options.get("ridge", 0.0) or 0.0))
    return fn


def apply(fitted: Fitted, X: np.ndarray) -> np.ndarray:
    """Map rows: ``X A^T + b`` [shape=(n, dim)]."""
    A, b = fitted
    return X @ A.T + b


def n_parameters(name: str, dim: int) -> int:
    """Free parameters of each map (for the table: affine has dim^2 + dim)."""
    return {"identity": 0, "translation": dim, "uniform_scaling": 1 + dim, "nonuniform_scaling": 2 * dim,
            "scaled_orthogonal": 1 + dim * (dim - 1) // 2, "affine": dim * dim + dim}[name]


# ---------------------------------------------------------------- metrics


def nn_accuracy(P: np.ndarray, Y: np.ndarray) -> float:
    """Fraction of rows whose nearest row of ``Y`` (Euclidean) to ``P[i]`` is ``Y[i]``; chance 1/n."""
    d2 = (P * P).sum(1)[:, None] - 2 * P @ Y.T + (Y * Y).sum(1)[None, :]
    return float((np.argmin(d2, axis=1) == np.arange(len(P))).mean())


def evaluate(P: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    """``mse`` (per song), ``mse_element``, ``r2`` (variance-weighted) and ``nn_accuracy`` of predictions ``P``."""
    err = ((P - Y) ** 2).sum(1)
    return {"mse": float(err.mean()), "mse_element": float(err.mean() / Y.shape[1]),
            "r2": float(r2_score(Y, P, multioutput="variance_weighted")), "nn_accuracy": nn_accuracy(P, Y)}


def folds(groups: np.ndarray, *, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of ``k`` folds over groups (songs), shuffled by ``seed``.

    Rows sharing a group never straddle train and test, so no song -- nor another excerpt of it --
    is in the training set of its own prediction. ``k`` is capped at the number of groups.
    """
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise LabError(f"cross-validation needs at least 2 songs, got {n_groups}")
    k = min(int(k), n_groups)
    if k < 2:
        raise LabError(f"transform.folds={k} must be >= 2")
    return list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(groups)), groups=groups))


def out_of_fold(name: str, X: np.ndarray, Y: np.ndarray, *, groups: np.ndarray | None = None, k: int = 5,
                seed: int = 0, **options: float) -> np.ndarray:
    """Held-out predictions [shape=(n, dim)]: row ``i`` comes from a map fitted on the folds without song ``i``."""
    validate(X, Y)
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    fit = fitter(name, **options)
    groups = np.arange(len(X)) if groups is None else np.asarray(groups)
    P = np.empty_like(Y)
    for train, test in folds(groups, k=k, seed=seed):
        P[test] = apply(fit(X[train], Y[train]), X[test])
    return P


def cross_validate(name: str, X: np.ndarray, Y: np.ndarray, *, groups: np.ndarray | None = None, k: int = 5,
                   seed: int = 0, **options: float) -> dict[str, float]:
    """Held-out and in-sample metrics of transform ``name`` (keys ``cv.<metric>`` and ``in_sample.<metric>``).

    Out-of-fold predictions of all songs (:func:`out_of_fold`) are pooled, then scored once with
    :func:`evaluate`, so ``cv.nn_accuracy`` searches the same ``n`` candidates as in-sample
    (chance ``1/n`` for both).
    """
    P = out_of_fold(name, X, Y, groups=groups, k=k, seed=seed, **options)
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    out = {f"cv.{m}": v for m, v in evaluate(P, Y).items()}
    out |= {f"in_sample.{m}": v for m, v in evaluate(apply(fitter(name, **options)(X, Y), X), Y).items()}
    out["chance_nn_accuracy"] = 1.0 / len(X)
    return out


def shift_direction(X: np.ndarray, Y: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """Is there *a* shift direction? Cosine of each song's shift vector ``y_i - x_i`` to the mean one.

    ``direction_cos_mean`` / ``_std`` use the mean of the *other* songs' vectors (leave-one-out, so a
    song does not vote for itself); ``direction_cos_null`` is the same mean cosine for shuffled pairs
    ``y_pi(i) - x_i``, the part of the agreement that any difference between the two clouds gives.
    """
    validate(X, Y)
    X, Y = X.astype(np.float64), Y.astype(np.float64)

    def loo_cos(D: np.ndarray) -> np.ndarray:
        others = (D.sum(0)[None, :] - D) / (len(D) - 1)
        num = (D * others).sum(1)
        den = np.linalg.norm(D, axis=1) * np.linalg.norm(others, axis=1)
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    cos = loo_cos(Y - X)
    perm = np.random.default_rng(seed).permutation(len(X))
    null = loo_cos(Y[perm] - X)
    D = Y - X
    return {"direction_cos_mean": float(cos.mean()), "direction_cos_std": float(cos.std(ddof=1)),
            "direction_cos_null": float(null.mean()),
            "shift_norm_mean": float(np.linalg.norm(D, axis=1).mean()),
            "mean_shift_norm": float(np.linalg.norm(D.mean(0)))}
