"""K-Means and Gaussian mixtures (scikit-learn), configured by the ``clusterer`` config group."""

from __future__ import annotations

import warnings

import numpy as np
from omegaconf import DictConfig
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from lab.errors import LabError


def check_k(k: int, n_samples: int) -> None:
    """k must be in [2, n_samples]."""
    if k < 2:
        raise LabError(f"cluster_count.k={k} must be at least 2")
    if k > n_samples:
        raise LabError(f"cluster_count.k={k} is larger than the number of usable songs ({n_samples})")


def fit_predict(X: np.ndarray, cfg: DictConfig, *, k: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Cluster ``X`` [shape=(n_clips, dim)] into ``k`` groups -> (labels [shape=(n_clips,)], warnings)."""
    check_k(k, len(X))
    # float64: a full-covariance GMM on few songs in many dimensions is numerically fragile in float32
    X = np.asarray(X, dtype=np.float64)
    if cfg.get("standardize", False):
        X = StandardScaler().fit_transform(X)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if cfg.name == "kmeans":
            labels = KMeans(n_clusters=k, n_init=cfg.n_init, max_iter=cfg.max_iter, random_state=seed).fit_predict(X)
        elif cfg.name == "gmm":
            gmm = GaussianMixture(n_components=k, covariance_type=cfg.covariance_type, reg_covar=cfg.reg_covar,
                                  n_init=cfg.n_init, max_iter=cfg.max_iter, random_state=seed)
            try:
                labels = gmm.fit(X).predict(X)
            except ValueError as err:
                raise LabError(
                    f"GMM with k={k} failed on {X.shape[0]} songs of dimension {X.shape[1]} ({str(err).splitlines()[0]}); "
                    f"raise clusterer.reg_covar or use clusterer.covariance_type=diag"
                ) from None
        else:
            raise LabError(f"clusterer={cfg.name!r} is unknown; choose kmeans or gmm")
    notes += [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    found = len(np.unique(labels))
    if found < k:
        notes.append(f"{cfg.name} used only {found} of k={k} clusters (degenerate embeddings or too few songs per cluster)")
    return labels.astype(int), notes
