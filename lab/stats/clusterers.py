"""K-Means and Gaussian mixtures (scikit-learn), one class each, named by ``conf/clusterer/*.yaml``.

Every option is checked when the clusterer is built (before any audio is read), with one sentence
per bad value; ``fit_predict(X, k=..., seed=...)`` does the work. ``standardize=true`` scales each
embedding dimension to zero mean and unit variance first, ``pca=N`` then keeps the first N
principal components (:meth:`Clusterer.transformer`, fitted on the songs being clustered; the
cluster-count scores are computed in the same space). :meth:`Clusterer.fit` returns the fitted
preprocessing and estimator, which assign new songs too (the held-out accuracy of
:mod:`lab.stats.heldout`).

A Gaussian mixture has ``k`` covariance matrices to estimate from ``n`` songs in ``d`` dimensions.
``full`` needs d(d+1)/2 numbers per component: with 50 songs x 200 dimensions and k = 7 (7 songs
per component) the estimate is singular and only ``reg_covar`` keeps it invertible, so the fit
mostly reflects the regulariser and the start. :meth:`GMMClusterer.conditioning` says so in one
sentence (logged as a warning). The default ``covariance_type=spherical`` (one variance per
component) was chosen by measurement on the gtzan_mini embeddings of fcn, musicnn and crnn
(``scripts/gmm_covariance.py``, docs/studies/clustering.md): it is well-posed at 50 and at 25
songs (one number per component to estimate), as stable across seeds as ``full``, and its held-out
accuracy is within 0.06 of ``full``'s (the split-to-split std is 0.02-0.07), while ``diag``, which BIC prefers, loses 0.06-0.26
of held-out accuracy (per-dimension variances from 5-7 songs, near zero for units that barely
fire, make new songs improbable), and ``tied``/``full`` BIC values reflect singular covariances.
``covariance_type=full`` keeps the lab's earlier behaviour.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from lab.core.errors import LabError

# Below this many songs a fit runs on one BLAS/OpenMP thread: waking threads costs more than the
# small matrices save. Measured on the project's 2-core Zen 2 VM: 57 full-covariance GMM fits
# (k = 2..20 x 3 seeds) on 50 songs x 200 dims 13.1 s -> 4.2 s; 1000 songs x 200: GMM 2.06 -> 1.24 s,
# K-Means 0.92 -> 0.46 s; at 5000 songs threads win slightly for GMM (5.4 vs 6.4 s). Sweeps run one
# job per core anyway.
ONE_THREAD_BELOW = 4000


def check_k(k: int, n_samples: int) -> None:
    """k must be in [2, n_samples]."""
    if k < 2:
        raise LabError(f"cluster_count.k={k} must be at least 2")
    if k > n_samples:
        raise LabError(f"cluster_count.k={k} is larger than the number of usable songs ({n_samples})")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LabError(f"clusterer.{name}={value!r} must be a positive integer")


def _as_float64(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float64)


@dataclass
class Clusterer:
    """Shared by both clusterers: the name shown in MLflow, the optional standardisation and PCA."""

    name: str
    standardize: bool = False
    pca: int | None = None  # keep this many principal components before clustering (None: all dimensions)

    def __post_init__(self) -> None:
        if not isinstance(self.standardize, bool):
            raise LabError(f"clusterer.standardize={self.standardize!r} must be true or false")
        if self.pca is not None and (isinstance(self.pca, bool) or not isinstance(self.pca, int) or self.pca < 1):
            raise LabError(f"clusterer.pca={self.pca!r} must be null (no PCA) or a positive number of components, e.g. 16")

    def transformer(self, X: np.ndarray) -> Pipeline:
        """The preprocessing fitted on ``X`` [shape=(n, dim)]: float64 (a GMM on few songs in many
        dimensions is fragile in float32), standardised per dimension when asked, then PCA when asked
        (components capped at min(n, dim); :meth:`pca_note` says when)."""
        X = _as_float64(X)
        steps = [("float64", FunctionTransformer(_as_float64))]
        if self.standardize:
            steps.append(("standardize", StandardScaler()))
        if self.pca is not None:
            steps.append(("pca", PCA(n_components=min(self.pca, *X.shape), svd_solver="full")))
        return Pipeline(steps).fit(X)

    def pca_note(self, n: int, dim: int) -> str | None:
        """One sentence when ``pca`` asks for more components than ``n`` songs in ``dim`` dimensions allow."""
        if self.pca is not None and self.pca > min(n, dim):
            return f"clusterer.pca={self.pca} capped at {min(n, dim)} components ({n} songs, {dim} dimensions)"
        return None

    def prepare(self, X: np.ndarray) -> np.ndarray:
        """``X`` in the space the clusterer works in (:meth:`transformer` fitted on ``X`` itself)."""
        return self.transformer(X).transform(_as_float64(X))

    def conditioning(self, n: int, k: int, dim: int) -> str | None:
        """One sentence when the model is ill-posed for ``n`` songs, ``k`` clusters, ``dim`` dimensions; None when fine."""
        return None

    def _estimator(self, k: int, seed: int):
        raise NotImplementedError

    def _fit(self, Z: np.ndarray, k: int, seed: int):
        return self._estimator(k, seed).fit(Z)

    def fit(self, X: np.ndarray, *, k: int, seed: int) -> tuple[Pipeline, list[str]]:
        """Fit preprocessing and clusterer on ``X`` [shape=(n, dim)] -> (pipeline with ``predict``, warnings).

        The pipeline assigns any songs: ``pipeline.predict(X_new)`` [shape=(n_new,)].
        """
        check_k(k, len(X))
        T = self.transformer(X)
        Z = T.transform(_as_float64(X))
        labels, notes, est = self.fit_prepared(Z, k, seed)
        note = self.pca_note(*np.shape(X))
        return Pipeline(list(T.steps) + [("cluster", est)]), ([note] if note else []) + notes

    def fit_prepared(self, Z: np.ndarray, k: int, seed: int):
        """Fit the clusterer alone on prepared ``Z`` -> (labels [shape=(n,)], warnings, fitted estimator)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            with threadpool_limits(1 if len(Z) < ONE_THREAD_BELOW else None):
                est = self._fit(Z, k, seed)
                # K-Means' own labels_ (what fit_predict returned before fit() existed); a GMM's predict
                labels = est.labels_ if hasattr(est, "labels_") else est.predict(Z)
        notes = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
        found = len(np.unique(labels))
        if found < k:
            notes.append(f"{self.name} used only {found} of k={k} clusters (degenerate embeddings or too few songs per cluster)")
        return labels.astype(int), notes, est

    def fit_predict(self, X: np.ndarray, *, k: int, seed: int, prepared: bool = False) -> tuple[np.ndarray, list[str]]:
        """Cluster ``X`` [shape=(n_clips, dim)] into ``k`` groups -> (labels [shape=(n_clips,)], warnings).

        ``prepared=True`` when ``X`` already went through :meth:`prepare`.
        """
        check_k(k, len(X))
        note = None if prepared else self.pca_note(*np.shape(X))
        Z = X if prepared else self.prepare(X)
        labels, notes, _ = self.fit_prepared(Z, k, seed)
        return labels, ([note] if note else []) + notes

    @staticmethod
    def bic(estimator, Z: np.ndarray) -> float | None:
        """BIC (-2 log L + p log n, lower is better) of a fitted ``estimator`` on prepared ``Z``; None without a likelihood (K-Means)."""
        return float(estimator.bic(Z)) if hasattr(estimator, "bic") else None


@dataclass
class KMeansClusterer(Clusterer):
    """``sklearn.cluster.KMeans`` with ``n_init`` restarts of at most ``max_iter`` iterations."""

    name: str = "kmeans"
    n_init: int = 10
    max_iter: int = 300

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int("n_init", self.n_init)
        _positive_int("max_iter", self.max_iter)

    def _estimator(self, k: int, seed: int) -> KMeans:
        return KMeans(n_clusters=k, n_init=self.n_init, max_iter=self.max_iter, random_state=seed)


COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclass
class GMMClusterer(Clusterer):
    """``sklearn.mixture.GaussianMixture``; ``covariance_type`` full | tied | diag | spherical (default in ``conf/clusterer/gmm.yaml``)."""

    name: str = "gmm"
    covariance_type: str = "spherical"  # as conf/clusterer/gmm.yaml (measured there)
    reg_covar: float = 1e-6
    n_init: int = 1
    max_iter: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.covariance_type not in COVARIANCE_TYPES:
            raise LabError(f"clusterer.covariance_type={self.covariance_type!r} must be one of {', '.join(COVARIANCE_TYPES)}")
        if isinstance(self.reg_covar, bool) or not isinstance(self.reg_covar, (int, float)) or not self.reg_covar >= 0:
            raise LabError(f"clusterer.reg_covar={self.reg_covar!r} must be a number >= 0")
        _positive_int("n_init", self.n_init)
        _positive_int("max_iter", self.max_iter)

    def conditioning(self, n: int, k: int, dim: int) -> str | None:
        """Full covariance: warn when songs per component (n / k) < dimensions; tied: when n < dimensions;
        diag / spherical: when a component has fewer than 2 songs per variance it estimates."""
        dim = min(dim, self.pca) if self.pca is not None else dim
        per = n / k
        if self.covariance_type == "full" and per < dim:
            return (f"GMM covariance_type=full is ill-posed here: {per:.1f} songs per component for {dim} dimensions, so each "
                    f"covariance is singular and the fit reflects reg_covar={self.reg_covar:g} and the start "
                    f"(use covariance_type=spherical, the default, or clusterer.pca=N with N < {per:.0f})")
        if self.covariance_type == "tied" and n < dim:
            return (f"GMM covariance_type=tied is ill-posed here: {n} songs for one {dim}x{dim} covariance "
                    f"(use covariance_type=spherical, the default, or clusterer.pca=N with N < {n})")
        if self.covariance_type in ("diag", "spherical") and per < 2:
            return f"GMM covariance_type={self.covariance_type}: {per:.1f} songs per component are too few to estimate its variances"
        return None

    def _estimator(self, k: int, seed: int) -> GaussianMixture:
        return GaussianMixture(n_components=k, covariance_type=self.covariance_type, reg_covar=self.reg_covar,
                               n_init=self.n_init, max_iter=self.max_iter, random_state=seed)

    def _fit(self, Z: np.ndarray, k: int, seed: int) -> GaussianMixture:
        try:
            return self._estimator(k, seed).fit(Z)
        except ValueError as err:
            # sklearn's advice ("increase reg_covar") is right only for ill-defined covariances
            raise LabError(
                f"GMM with k={k} failed on {Z.shape[0]} songs of dimension {Z.shape[1]} ({str(err).splitlines()[0]}); "
                f"try clusterer.reg_covar=1e-3 or clusterer.covariance_type=spherical"
            ) from None


def build_clusterer(cfg) -> Clusterer:
    """The clusterer a ``clusterer`` config group names (``_target_``); options checked here."""
    from lab.core.registry import instantiate_group

    return instantiate_group(cfg, "clusterer")
