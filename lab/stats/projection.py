"""2-D maps of embeddings (t-SNE), cached beside the embeddings.

A t-SNE of 1000 songs takes seconds and depends only on (embeddings, seed, perplexity), so every
clustering job of a sweep that shares them reads one cached map instead of recomputing it.
Entries live in ``<cache>/projections/<key>.npy`` (key: SHA-256 of the matrix bytes, its shape,
the method, its parameters and scikit-learn's version), written atomically.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import sklearn
from sklearn.manifold import TSNE

from lab.core.storage import array_sha256, atomic_write, text_sha256

log = logging.getLogger(__name__)


def tsne_2d(X: np.ndarray, *, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of ``X`` [shape=(n, dim)] -> [shape=(n, 2)]; perplexity capped at (n - 1) / 3 for small sets."""
    p = float(min(perplexity, max((len(X) - 1) / 3, 1.0)))
    return TSNE(n_components=2, perplexity=p, init="pca", random_state=seed).fit_transform(X)


def cached_tsne(X: np.ndarray, *, seed: int, perplexity: float = 30.0, cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, bool]:
    """:func:`tsne_2d` through the on-disk cache; returns (map, whether it came from the cache)."""
    if cache_dir is None:
        return tsne_2d(X, seed=seed, perplexity=perplexity), False
    X = np.ascontiguousarray(X)
    key = text_sha256("tsne", X.dtype, X.shape, array_sha256(X), seed, float(perplexity), sklearn.__version__)
    path = Path(cache_dir) / "projections" / key[:2] / f"{key}.npy"
    if path.is_file():
        try:
            xy = np.load(path)
            if xy.shape == (len(X), 2):
                return xy, True
        except (OSError, ValueError):
            log.warning("projection cache entry %s is unreadable; recomputing it", path)
    xy = tsne_2d(X, seed=seed, perplexity=perplexity)
    atomic_write(path, lambda f: np.save(f, xy))
    return xy, False
