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

Fitting protocol (:class:`MapSpec`): ``uniform_scaling``, ``nonuniform_scaling`` and ``affine``
take a ridge penalty ``lambda ||A - A0||_F^2`` with ``lambda = alpha ||Xc||_F^2 / dim`` (scale-free
``alpha``) and ``A0 = I`` (default: a huge penalty gives the translation map, which they contain)
or ``A0 = 0``; ``alpha`` is fixed or chosen by *nested* CV (inner folds over the training songs of
each outer fold, :func:`select_alpha`). ``alpha = 0`` is the unpenalised, minimum-norm least
squares of the study. Any map can also be fitted in the top-k principal subspace of the originals
and act as a translation outside it (:func:`in_subspace`, the PCA-rank sweep).

Metrics (:func:`evaluate`), on predictions ``P = apply(X)`` against ``Y``:

* ``mse`` -- mean over songs of the squared Euclidean error ``||p_i - y_i||^2``;
  ``mse_element`` -- the same divided by ``dim`` (mean over all elements);
* ``r2`` -- multi-output R^2, variance-weighted: ``1 - sum ||p_i - y_i||^2 / sum ||y_i - ybar||^2``
  (:func:`r2`; ``sklearn.metrics.r2_score(..., multioutput="variance_weighted")`` except that the error
  on dimensions constant in Y is counted), ybar = mean of the evaluated Y;
* ``nn_accuracy`` -- fraction of songs whose nearest shifted embedding (Euclidean, among all ``n``
  shifted songs) to ``p_i`` is ``y_i``; chance is ``1 / n``.

Held out (:func:`cross_validate`): k-fold over *songs* (rows sharing a group, e.g. excerpts of one
song, stay in one fold); each song's prediction comes from a map fitted without its own pair, then
the metrics are computed once over all out-of-fold predictions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.linalg import orthogonal_procrustes
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


def _penalty(ridge: float, shrink_to: str) -> float:
    """Check a relative ridge penalty and its shrinkage target; returns the target's scale r0 (1 or 0)."""
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float, np.floating)) or not np.isfinite(ridge) or ridge < 0:
        raise LabError(f"transform.ridge={ridge!r} must be a number >= 0 (0 = no penalty) or 'cv'")
    if shrink_to not in SHRINK_TARGETS:
        raise LabError(f"experiment.ridge.shrink_to={shrink_to!r} must be one of {', '.join(SHRINK_TARGETS)}")
    return 1.0 if shrink_to == "identity" else 0.0


def uniform_scaling(X: np.ndarray, Y: np.ndarray, *, ridge: float = 0.0, shrink_to: str = "identity") -> Fitted:
    """A = r I with a free b: ``r = (<Xc, Yc> + ridge ||Xc||^2 r0) / ((1 + ridge) ||Xc||^2)``, ``b = ybar - r xbar``.

    ``ridge = 0`` is least squares; ``ridge`` > 0 penalises ``lambda ||A - r0 I||_F^2`` with
    ``lambda = ridge ||Xc||_F^2 / dim`` (``r0`` = 1 for ``shrink_to="identity"``, 0 for ``"zero"``),
    so ``ridge = 1`` pulls r half way to r0 whatever the embedding's scale.
    """
    r0 = _penalty(ridge, shrink_to)
    xm, ym = X.mean(0), Y.mean(0)
    Xc, Yc = X - xm, Y - ym
    den = float((Xc * Xc).sum())
    r = (float((Xc * Yc).sum()) + ridge * den * r0) / ((1.0 + ridge) * den) if den > 0 else 1.0
    return r * np.eye(X.shape[1]), ym - r * xm


def nonuniform_scaling(X: np.ndarray, Y: np.ndarray, *, ridge: float = 0.0, shrink_to: str = "identity") -> Fitted:
    """A = diag(r) with a free b: per dimension ``r_j = (cov(x_j, y_j) + lambda r0) / (var(x_j) + lambda)``, ``b = ybar - r * xbar``.

    ``cov``/``var`` are sums over songs of centred products; ``lambda = ridge ||Xc||_F^2 / dim`` (0 =
    least squares). A dimension that is constant in ``X`` (a dead ReLU unit) fits equally well with
    any ``r_j``; without a penalty it gets ``r_j = 1`` so the map falls back to a translation there,
    with one it gets ``r0``.
    """
    r0 = _penalty(ridge, shrink_to)
    xm, ym = X.mean(0), Y.mean(0)
    Xc, Yc = X - xm, Y - ym
    var = (Xc * Xc).sum(0)
    cov = (Xc * Yc).sum(0)
    if ridge == 0:
        r = np.divide(cov, var, out=np.ones_like(var), where=var > 1e-12 * max(float(var.max()), 1e-300))
    else:
        lam = ridge * float(var.sum()) / X.shape[1]
        den = var + lam
        r = np.divide(cov + lam * r0, den, out=np.full_like(var, r0), where=den > 0)
    return np.diag(r), ym - r * xm


def scaled_orthogonal(X: np.ndarray, Y: np.ndarray) -> Fitted:
    """A = s Q with Q orthogonal and b = 0 (as in the study): orthogonal Procrustes with scale.

    ``scipy.linalg.orthogonal_procrustes(X, Y)`` gives ``R`` minimising ``||X R - Y||_F`` and the sum of
    singular values ``tr(Sigma)`` of ``X^T Y``; the best scale is then ``s = tr(Sigma) / ||X||_F^2``, and
    ``A = s R^T`` acts on columns. No ridge: ``||Q||`` is fixed, so its freedom is limited by the PCA
    rank instead (:func:`in_subspace`).
    """
    R, sv_sum = orthogonal_procrustes(X, Y)
    den = float((X * X).sum())
    s = float(sv_sum) / den if den > 0 else 1.0
    return s * R.T, np.zeros(X.shape[1])


def affine(X: np.ndarray, Y: np.ndarray, *, ridge: float = 0.0, shrink_to: str = "identity") -> Fitted:
    """A and b free: least squares on centred data, ``b = ybar - A xbar``.

    ``ridge = 0`` is plain least squares (``np.linalg.lstsq``: the minimum-norm solution when there
    are fewer songs than dimensions, which then fits the training pairs exactly -- the study's and
    the lab's old protocol). ``ridge > 0`` is ridge regression (``sklearn.linear_model.Ridge``,
    intercept not penalised) of ``Y - X A0^T`` on ``X``, i.e. the penalty ``lambda ||A - A0||_F^2``
    with ``A0 = I`` (``shrink_to="identity"``: a huge penalty gives the translation map) or
    ``A0 = 0`` (``"zero"``: the textbook ridge; a huge penalty predicts the mean shifted song), and
    ``lambda = ridge ||Xc||_F^2 / dim``.
    """
    r0 = _penalty(ridge, shrink_to)
    xm, ym = X.mean(0), Y.mean(0)
    Xc, Yc = X - xm, Y - ym
    if ridge == 0:
        A = np.linalg.lstsq(Xc, Yc, rcond=None)[0].T
        return A, ym - A @ xm
    A0 = r0 * np.eye(X.shape[1])
    B = ridge_coefficients(Xc, Yc - Xc @ A0.T, [ridge])[0]
    A = A0 + B.T
    return A, ym - A @ xm


def ridge_coefficients(Xc: np.ndarray, Rc: np.ndarray, alphas) -> np.ndarray:
    """Ridge solutions ``B(alpha) = argmin ||Rc - Xc B||^2 + lambda ||B||^2`` for every alpha [shape=(n_alphas, dim, out)].

    ``Xc`` [shape=(n, dim)] and ``Rc`` [shape=(n, out)] are centred; ``lambda = alpha ||Xc||_F^2 / dim``.
    From one thin SVD ``Xc = U S V^T``: ``B = V diag(s / (s^2 + lambda)) U^T Rc`` -- the solution
    ``sklearn.linear_model.Ridge`` gives (checked in the tests), for all penalties at the cost of one
    fit, which is what makes a 15-penalty nested CV of a 200 x 200 map cheap.
    """
    U, sv, Vt = np.linalg.svd(Xc, full_matrices=False)
    lams = np.asarray(alphas, dtype=float) * float((Xc * Xc).sum()) / Xc.shape[1]
    UR = U.T @ Rc  # (r, out)
    den = sv[None, :] ** 2 + lams[:, None]
    shrink = np.divide(sv[None, :], den, out=np.zeros_like(den), where=den > 0)  # (n_alphas, r)
    shrink[:, sv <= sv.max(initial=0.0) * 1e-12] = 0.0  # directions the data does not span carry no signal
    return np.einsum("dr,ar,ro->ado", Vt.T, shrink, UR)


FITTERS: dict[str, Callable[..., Fitted]] = {
    "identity": identity, "translation": translation, "uniform_scaling": uniform_scaling,
    "nonuniform_scaling": nonuniform_scaling, "scaled_orthogonal": scaled_orthogonal, "affine": affine,
}
PENALISED = ("uniform_scaling", "nonuniform_scaling", "affine")  # the maps that take a ridge penalty
NO_PARAMETERS_TO_REDUCE = ("identity", "translation")  # a PCA rank changes nothing for these
SHRINK_TARGETS = ("identity", "zero")
# Relative ridge penalties searched by the nested CV (lambda = alpha * ||Xc||^2 / dim): from "almost
# least squares" to "almost the shrinkage target" (translation, for shrink_to=identity).
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 4, 15))


def pca_basis(X: np.ndarray, rank: int) -> np.ndarray:
    """The first ``k = min(rank, dim, n - 1)`` principal axes of the rows of ``X`` [shape=(dim, k)], orthonormal columns.

    One training song spans no direction: ``k = 0`` (an empty basis), and the lifted map is the translation.
    """
    from sklearn.decomposition import PCA

    n, d = X.shape
    if rank < 1:
        raise LabError(f"transform.pca_rank={rank} must be >= 1")
    k = int(min(rank, d, n - 1))
    if k < 1:
        return np.zeros((d, 0))
    return PCA(n_components=k, svd_solver="full").fit(X).components_.T


def lift(fitted: Fitted, V: np.ndarray, mean_shift: np.ndarray) -> Fitted:
    """A map ``(A_k, b_k)`` on the coordinates ``X V`` as a full map: itself inside span(V), a translation by
    ``mean_shift`` outside: ``A = I + V (A_k - I) V^T``, ``b = V b_k + (I - V V^T) mean_shift``."""
    Ak, bk = fitted
    d, k = V.shape
    return np.eye(d) + V @ (Ak - np.eye(k)) @ V.T, V @ bk + mean_shift - V @ (V.T @ mean_shift)


def predict_lifted(fitted: Fitted, V: np.ndarray, mean_shift: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``apply(lift(fitted, V, mean_shift), X)`` without forming the (dim, dim) matrix [shape=(n, dim)]."""
    Ak, bk = fitted
    Z = X @ V
    return X + (Z @ (Ak - np.eye(V.shape[1])).T + bk - V.T @ mean_shift) @ V.T + mean_shift


def in_subspace(fit: Callable[[np.ndarray, np.ndarray], Fitted], X: np.ndarray, Y: np.ndarray, rank: int) -> Fitted:
    """Fit a map in the top-``rank`` principal subspace of ``X``; a translation outside it.

    With ``V`` [shape=(dim, k)] the first ``k = min(rank, dim, n - 1)`` principal axes of the rows of
    ``X`` (``sklearn.decomposition.PCA``), ``fit`` is run on the coordinates ``(X V, Y V)`` giving
    ``(A_k, b_k)``; the full map is ``A = I + V (A_k - I) V^T`` and
    ``b = V b_k + (I - V V^T) mean(Y - X)``: inside the subspace it is the fitted map, outside
    it moves every song by the mean shift. ``k = 0`` would be the translation map; ``k = dim`` the map
    fitted in a rotated basis (the same map for every fitter except ``nonuniform_scaling``, whose
    diagonal is basis-dependent).
    """
    V = pca_basis(X, rank)
    if V.shape[1] == 0:
        return translation(X, Y)
    return lift(fit(X @ V, Y @ V), V, (Y - X).mean(0))


@dataclass(frozen=True)
class MapSpec:
    """A transform and the protocol that fits it.

    ``ridge``: the relative penalty ``alpha`` (0 = none, the study's protocol), or ``"cv"``: chosen
    among ``alphas`` by k-fold CV over groups *inside* the training songs (nested inside the outer
    held-out folds, ``inner_folds`` folds, lowest summed squared error; ties go to the larger
    penalty). Only :data:`PENALISED` maps take a penalty; the others ignore ``ridge``.
    ``pca_rank``: fit in the top-k principal subspace of the originals (:func:`in_subspace`); None = full.
    """

    name: str
    ridge: float | str = 0.0
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    shrink_to: str = "identity"
    pca_rank: int | None = None
    inner_folds: int = 5

    def __post_init__(self) -> None:
        if self.name not in FITTERS:
            raise LabError(f"transform={self.name!r} must be one of {', '.join(FITTERS)}")
        if self.ridge != "cv":
            _penalty(self.ridge, self.shrink_to)
        elif not self.alphas or any(isinstance(a, bool) or not isinstance(a, (int, float)) or not a > 0 for a in self.alphas):
            raise LabError(f"experiment.ridge.alphas={list(self.alphas)!r} must be a non-empty list of numbers > 0")
        if self.shrink_to not in SHRINK_TARGETS:
            raise LabError(f"experiment.ridge.shrink_to={self.shrink_to!r} must be one of {', '.join(SHRINK_TARGETS)}")
        if self.pca_rank is not None and (isinstance(self.pca_rank, bool) or not isinstance(self.pca_rank, int) or self.pca_rank < 1):
            raise LabError(f"transform.pca_rank={self.pca_rank!r} must be an integer >= 1 or null (full space)")
        if isinstance(self.inner_folds, bool) or not isinstance(self.inner_folds, int) or self.inner_folds < 2:
            raise LabError(f"experiment.ridge.inner_folds={self.inner_folds!r} must be an integer >= 2")

    @property
    def penalised(self) -> bool:
        """True when this map takes a ridge penalty (and it is not switched off)."""
        return self.name in PENALISED and self.ridge != 0

    @property
    def label(self) -> str:
        """How the fitting protocol is tagged: ``cv``, the fixed alpha, or ``none``."""
        if self.name not in PENALISED:
            return "none"
        return "cv" if self.ridge == "cv" else (f"{float(self.ridge):g}" if self.ridge else "0")

    def replace(self, **changes) -> MapSpec:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def fitter_at(self, alpha: float) -> Callable[[np.ndarray, np.ndarray], Fitted]:
        """The fitter with penalty ``alpha`` (ignored by maps without one) and the PCA rank bound."""
        base = FITTERS[self.name]
        fn = (lambda X, Y: base(X, Y, ridge=float(alpha), shrink_to=self.shrink_to)) if self.name in PENALISED else base
        if self.pca_rank is None or self.name in NO_PARAMETERS_TO_REDUCE:
            return fn
        return lambda X, Y: in_subspace(fn, X, Y, int(self.pca_rank))

    def fit(self, X: np.ndarray, Y: np.ndarray, groups: np.ndarray | None = None, *, seed: int = 0) -> tuple[Fitted, float]:
        """Fit on these rows; returns ``((A, b), alpha used)``. With ``ridge="cv"`` alpha is chosen by
        :func:`select_alpha` on these rows only."""
        if self.name in PENALISED and self.ridge == "cv":
            alpha = select_alpha(self, X, Y, groups, seed=seed)[0]
        else:
            alpha = float(self.ridge) if self.name in PENALISED else 0.0
        return self.fitter_at(alpha)(X, Y), alpha


def select_alpha(spec: MapSpec, X: np.ndarray, Y: np.ndarray, groups: np.ndarray | None = None, *,
                 seed: int = 0) -> tuple[float, np.ndarray]:
    """The penalty among ``spec.alphas`` with the lowest k-fold CV squared error on (X, Y).

    Folds are over ``groups`` (``spec.inner_folds`` of them, capped at the number of groups). Returns
    ``(alpha, sse)`` with ``sse`` [shape=(len(alphas),)] the summed held-out squared error per alpha;
    ties go to the larger alpha (the simpler map).
    """
    groups = np.arange(len(X)) if groups is None else np.asarray(groups)
    alphas = np.asarray(spec.alphas, dtype=float)
    sse = np.zeros(len(alphas))
    for train, test in folds(groups, k=spec.inner_folds, seed=seed):
        Xtr, Ytr, Xte, Yte = X[train], Y[train], X[test], Y[test]
        if spec.pca_rank is not None and spec.name not in NO_PARAMETERS_TO_REDUCE:
            V = pca_basis(Xtr, int(spec.pca_rank))  # once per fold, not once per penalty
            shift = (Ytr - Xtr).mean(0)
            Xtr_k, Ytr_k = Xtr @ V, Ytr @ V
        else:
            V = None
        if V is not None and V.shape[1] == 0:  # one training song: every penalty gives the translation
            fits = [translation(Xtr, Ytr)] * len(alphas)
            V = None
        elif spec.name == "affine":  # every penalty from one SVD
            Xa, Ya = (Xtr_k, Ytr_k) if V is not None else (Xtr, Ytr)
            xm, ym = Xa.mean(0), Ya.mean(0)
            A0 = (1.0 if spec.shrink_to == "identity" else 0.0) * np.eye(Xa.shape[1])
            Bs = ridge_coefficients(Xa - xm, (Ya - ym) - (Xa - xm) @ A0.T, alphas)
            fits = [(A0 + B.T, ym - (A0 + B.T) @ xm) for B in Bs]
        else:
            base = FITTERS[spec.name]
            fits = [base(Xtr_k, Ytr_k, ridge=float(a), shrink_to=spec.shrink_to) if V is not None else
                    base(Xtr, Ytr, ridge=float(a), shrink_to=spec.shrink_to) for a in alphas]
        for j, f in enumerate(fits):
            P = predict_lifted(f, V, shift, Xte) if V is not None else apply(f, Xte)
            sse[j] += float(((P - Yte) ** 2).sum())
    order = np.argsort(-alphas, kind="stable")  # largest first, so argmin's first hit is the largest tied alpha
    best = order[int(np.argmin(sse[order]))]
    return float(alphas[best]), sse


def spec_from(name: str, **options) -> MapSpec:
    """A :class:`MapSpec` from a name and keyword options (``ridge``, ``alphas``, ``shrink_to``, ``pca_rank``, ``inner_folds``)."""
    if name not in FITTERS:
        raise LabError(f"transform={name!r} must be one of {', '.join(FITTERS)}")
    kw = {k: v for k, v in options.items() if v is not None}
    if "ridge" in kw and kw["ridge"] is False:
        kw["ridge"] = 0.0
    if "alphas" in kw:
        kw["alphas"] = tuple(float(a) for a in kw["alphas"])
    return MapSpec(name, **kw)


def fitter(name: str, **options) -> Callable[[np.ndarray, np.ndarray], Fitted]:
    """The fitter called ``name`` with a fixed penalty ``ridge`` (default 0) and optional ``pca_rank`` bound."""
    spec = spec_from(name, **options)
    if spec.ridge == "cv":
        raise LabError("fitter() takes a fixed ridge; ridge='cv' needs MapSpec.fit (it chooses by nested CV)")
    return spec.fitter_at(float(spec.ridge) if spec.name in PENALISED else 0.0)


def apply(fitted: Fitted, X: np.ndarray) -> np.ndarray:
    """Map rows: ``X A^T + b`` [shape=(n, dim)]."""
    A, b = fitted
    return X @ A.T + b


def n_parameters(name: str, dim: int) -> int:
    """Free parameters of each map (for the table: affine has dim^2 + dim)."""
    return {"identity": 0, "translation": dim, "uniform_scaling": 1 + dim, "nonuniform_scaling": 2 * dim,
            "scaled_orthogonal": 1 + dim * (dim - 1) // 2, "affine": dim * dim + dim}[name]


# ---------------------------------------------------------------- metrics


def _sq_distances(P: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [shape=(len(P), len(Y))] without an (n, n, dim) array."""
    return (P * P).sum(1)[:, None] - 2 * P @ Y.T + (Y * Y).sum(1)[None, :]


def nn_accuracy(P: np.ndarray, Y: np.ndarray) -> float:
    """Fraction of rows whose nearest row of ``Y`` (Euclidean) to ``P[i]`` is ``Y[i]``; chance 1/n."""
    return float((np.argmin(_sq_distances(P, Y), axis=1) == np.arange(len(P))).mean())


def closer_counts(P: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """For each row i, how many *other* rows of ``Y`` are strictly nearer to ``P[i]`` than ``Y[i]`` [shape=(n,)], int.

    0 = a nearest-neighbour hit; ``count / (n - 1)`` is the song's percentile rank among the others,
    the quantity behind NN accuracy at any pool size (:mod:`lab.studies.transforms.inference`).
    """
    d2 = _sq_distances(P, Y)
    own = np.diag(d2)[:, None]
    return (d2 < own - 1e-9 * np.maximum(np.abs(own), 1.0)).sum(1)


def r2(P: np.ndarray, Y: np.ndarray) -> float:
    """``1 - sum ||p_i - y_i||^2 / sum ||y_i - ybar||^2`` over all songs and dimensions (NaN when Y is constant).

    This is ``sklearn.metrics.r2_score(multioutput="variance_weighted")`` except for dimensions that
    are constant in ``Y`` (dead units): scikit-learn gives them weight 0 and so drops their
    prediction error, which flatters a map (measured: Musicnn, an octave down, 51 of 200 units dead,
    translation R^2 -1.86 by scikit-learn, -2.93 with the error counted). The error is counted here.
    """
    sst = float(((Y - Y.mean(0)) ** 2).sum())
    return 1.0 - float(((P - Y) ** 2).sum()) / sst if sst > 0 else float("nan")


def evaluate(P: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    """``mse`` (per song), ``mse_element``, ``r2`` (:func:`r2`) and ``nn_accuracy`` of predictions ``P``."""
    err = ((P - Y) ** 2).sum(1)
    return {"mse": float(err.mean()), "mse_element": float(err.mean() / Y.shape[1]),
            "r2": r2(P, Y), "nn_accuracy": nn_accuracy(P, Y)}


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


@dataclass
class CrossFit:
    """A map scored held out and in sample on the same songs.

    ``P_cv`` [shape=(n, dim)]: each row predicted by a map fitted on the outer folds without its
    group; ``P_in`` [shape=(n, dim)]: the map fitted on all rows. ``alphas_cv``: the penalty each
    outer fold chose (its own nested CV), ``alpha_in``: the one chosen on all rows (0 without ridge).
    """

    P_cv: np.ndarray
    P_in: np.ndarray
    alphas_cv: np.ndarray
    alpha_in: float


def _spec(spec: MapSpec | str, options: dict) -> MapSpec:
    return spec if isinstance(spec, MapSpec) else spec_from(spec, **options)


def cross_fit(spec: MapSpec | str, X: np.ndarray, Y: np.ndarray, *, groups: np.ndarray | None = None, k: int = 5,
              seed: int = 0, **options) -> CrossFit:
    """Out-of-fold and in-sample predictions of ``spec`` (a :class:`MapSpec` or a transform name with options)."""
    validate(X, Y)
    spec = _spec(spec, options)
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    groups = np.arange(len(X)) if groups is None else np.asarray(groups)
    P = np.empty_like(Y)
    alphas = []
    for train, test in folds(groups, k=k, seed=seed):
        fitted, alpha = spec.fit(X[train], Y[train], groups[train], seed=seed)
        P[test] = apply(fitted, X[test])
        alphas.append(alpha)
    fitted, alpha_in = spec.fit(X, Y, groups, seed=seed)
    return CrossFit(P, apply(fitted, X), np.asarray(alphas, dtype=float), float(alpha_in))


def out_of_fold(spec: MapSpec | str, X: np.ndarray, Y: np.ndarray, *, groups: np.ndarray | None = None, k: int = 5,
                seed: int = 0, **options) -> np.ndarray:
    """Held-out predictions [shape=(n, dim)]: row ``i`` comes from a map fitted on the folds without song ``i``
    (with ``ridge="cv"``, its penalty chosen by CV inside those folds too)."""
    validate(X, Y)
    spec = _spec(spec, options)
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    groups = np.arange(len(X)) if groups is None else np.asarray(groups)
    P = np.empty_like(Y)
    for train, test in folds(groups, k=k, seed=seed):
        P[test] = apply(spec.fit(X[train], Y[train], groups[train], seed=seed)[0], X[test])
    return P


def scores_of(fit: CrossFit, Y: np.ndarray) -> dict[str, float]:
    """``cv.<metric>`` and ``in_sample.<metric>`` of a :class:`CrossFit`, the chance NN accuracy and the chosen penalties."""
    Y = Y.astype(np.float64)
    out = {f"cv.{m}": v for m, v in evaluate(fit.P_cv, Y).items()}
    out |= {f"in_sample.{m}": v for m, v in evaluate(fit.P_in, Y).items()}
    out["chance_nn_accuracy"] = 1.0 / len(Y)
    if fit.alphas_cv.size and (fit.alphas_cv > 0).any():
        out |= {"ridge_alpha_median": float(np.median(fit.alphas_cv)), "ridge_alpha_min": float(fit.alphas_cv.min()),
                "ridge_alpha_max": float(fit.alphas_cv.max()), "ridge_alpha_all": fit.alpha_in}
    return out


def cross_validate(spec: MapSpec | str, X: np.ndarray, Y: np.ndarray, *, groups: np.ndarray | None = None, k: int = 5,
                   seed: int = 0, **options) -> dict[str, float]:
    """Held-out and in-sample metrics of a transform (keys ``cv.<metric>`` and ``in_sample.<metric>``).

    Out-of-fold predictions of all songs (:func:`cross_fit`) are pooled, then scored once with
    :func:`evaluate`, so ``cv.nn_accuracy`` searches the same ``n`` candidates as in-sample
    (chance ``1/n`` for both).
    """
    return scores_of(cross_fit(spec, X, Y, groups=groups, k=k, seed=seed, **options), Y)


def loo_direction_cos(D: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``D`` [shape=(n, dim)] to the mean of the *other* rows [shape=(n,)] (0 for a zero vector)."""
    others = (D.sum(0)[None, :] - D) / (len(D) - 1)
    num = (D * others).sum(1)
    den = np.linalg.norm(D, axis=1) * np.linalg.norm(others, axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def shift_direction(X: np.ndarray, Y: np.ndarray, *, groups: np.ndarray | None = None, n_perm: int = 999,
                    seed: int = 0) -> dict[str, float]:
    """Is there *a* shift direction? Cosine of each song's shift vector ``y_i - x_i`` to the mean one, with two
    permutation tests.

    ``direction_cos_mean`` / ``_std`` use the mean of the *other* songs' vectors (leave-one-out, so a
    song does not vote for itself). Two nulls, each with ``n_perm`` permutations and the p-value
    ``(1 + #{null >= observed}) / (1 + n_perm)``:

    * **sign flips** (``direction_p_signflip``): H0 "no common direction" -- the shift vectors are
      symmetric about 0, so flipping the sign of every vector of a group (artist, or recording) at
      random leaves their distribution unchanged. A real constant shift gives a small p.
    * **shuffled pairs** (``direction_p_pairs``, null mean ``direction_cos_null`` and 95th percentile
      ``direction_cos_null_q95``): H0 "pairing carries no information" -- ``y_pi(i) - x_i``, the
      agreement that any displacement between the two clouds gives. A small p says a song's own
      shift agrees with the others' more than the cloud displacement alone explains.
    """
    validate(X, Y)
    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise LabError(f"experiment.n_perm={n_perm!r} must be a positive number of permutations")
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    D = Y - X
    cos = loo_direction_cos(D)
    obs = float(cos.mean())
    rng = np.random.default_rng(seed)
    _, g = np.unique(np.arange(len(X)) if groups is None else np.asarray(groups), return_inverse=True)
    flips = np.array([loo_direction_cos(D * rng.choice([-1.0, 1.0], size=g.max() + 1)[g][:, None]).mean()
                      for _ in range(int(n_perm))])
    pairs = np.array([loo_direction_cos(Y[rng.permutation(len(X))] - X).mean() for _ in range(int(n_perm))])
    tol = 1e-12  # equal statistics count as ties, and ties count against the direction
    return {"direction_cos_mean": obs, "direction_cos_std": float(cos.std(ddof=1)),
            "direction_cos_null": float(pairs.mean()), "direction_cos_null_q95": float(np.quantile(pairs, 0.95)),
            "direction_p_pairs": float((1 + (pairs >= obs - tol).sum()) / (1 + n_perm)),
            "direction_cos_signflip_q95": float(np.quantile(flips, 0.95)),
            "direction_p_signflip": float((1 + (flips >= obs - tol).sum()) / (1 + n_perm)),
            "direction_n_perm": float(n_perm),
            "shift_norm_mean": float(np.linalg.norm(D, axis=1).mean()),
            "mean_shift_norm": float(np.linalg.norm(D.mean(0)))}
