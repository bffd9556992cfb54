"""K-Means and Gaussian mixtures (scikit-learn), one class each, named by ``conf/clusterer/*.yaml``.

Every option is checked when the clusterer is built (before any audio is read), with one sentence
per bad value; ``fit_predict(X, k=..., seed=...)`` does the work. ``standardize=true`` scales each
embedding dimension to zero mean and unit variance first (:meth:`Clusterer.prepare`); the
cluster-count scores are computed in the same space.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler
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


@dataclass
class Clusterer:
    """Shared by both clusterers: the name shown in MLflow and the optional standardisation."""

    name: str
    standardize: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.standardize, bool):
            raise LabError(f"clusterer.standardize={self.standardize!r} must be true or false")

    def prepare(self, X: np.ndarray) -> np.ndarray:
        """The space the clusterer works in: float64 (a full-covariance GMM on few songs in many
        dimensions is fragile in float32), standardised per dimension when asked."""
        X = np.asarray(X, dtype=np.float64)
        return StandardScaler().fit_transform(X) if self.standardize else X

    def _fit(self, X: np.ndarray, k: int, seed: int) -> np.ndarray:
        raise NotImplementedError

    def fit_predict(self, X: np.ndarray, *, k: int, seed: int, prepared: bool = False) -> tuple[np.ndarray, list[str]]:
        """Cluster ``X`` [shape=(n_clips, dim)] into ``k`` groups -> (labels [shape=(n_clips,)], warnings).

        ``prepared=True`` when ``X`` already went through :meth:`prepare`.
        """
        check_k(k, len(X))
        Z = X if prepared else self.prepare(X)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            with threadpool_limits(1 if len(Z) < ONE_THREAD_BELOW else None):
                labels = self._fit(Z, k, seed)
        notes = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
        found = len(np.unique(labels))
        if found < k:
            notes.append(f"{self.name} used only {found} of k={k} clusters (degenerate embeddings or too few songs per cluster)")
        return labels.astype(int), notes


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

    def _fit(self, X: np.ndarray, k: int, seed: int) -> np.ndarray:
        return KMeans(n_clusters=k, n_init=self.n_init, max_iter=self.max_iter, random_state=seed).fit_predict(X)


COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclass
class GMMClusterer(Clusterer):
    """``sklearn.mixture.GaussianMixture`` (full covariance by default, as in the study)."""

    name: str = "gmm"
    covariance_type: str = "full"
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

    def _fit(self, X: np.ndarray, k: int, seed: int) -> np.ndarray:
        gmm = GaussianMixture(n_components=k, covariance_type=self.covariance_type, reg_covar=self.reg_covar,
                              n_init=self.n_init, max_iter=self.max_iter, random_state=seed)
        try:
            return gmm.fit(X).predict(X)
        except ValueError as err:
            # sklearn's advice ("increase reg_covar") is right only for ill-defined covariances
            raise LabError(
                f"GMM with k={k} failed on {X.shape[0]} songs of dimension {X.shape[1]} ({str(err).splitlines()[0]}); "
                f"try clusterer.reg_covar=1e-3 or clusterer.covariance_type=diag"
            ) from None


def build_clusterer(cfg) -> Clusterer:
    """The clusterer a ``clusterer`` config group names (``_target_``); options checked here."""
    from lab.core.registry import instantiate_group

    return instantiate_group(cfg, "clusterer")
