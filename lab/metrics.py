"""Clustering evaluation: Hungarian cluster-to-genre matching and external agreement scores.

Conventions: ``labels_true`` are strings or ints [shape=(n_clips,)], ``labels_pred`` cluster ids
[shape=(n_clips,)]. The accuracy follows the study: clusters are matched one-to-one to genres by
the Hungarian algorithm on the contingency table (maximising matched songs); songs in a cluster
with no matched genre (k > n_genres), or of a genre no cluster matched (k < n_genres), count as
wrong. Accuracy = correctly matched songs / all songs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm
from sklearn.metrics.cluster import contingency_matrix

UNASSIGNED = "(unmatched)"


def validate(labels_true: np.ndarray, labels_pred: np.ndarray) -> None:
    if labels_true.shape != labels_pred.shape or labels_true.ndim != 1:
        raise ValueError(f"labels_pred.shape={labels_pred.shape} must equal labels_true.shape={labels_true.shape} (1-D)")
    if labels_true.size == 0:
        raise ValueError("cannot score an empty labelling")


@dataclass
class Assignment:
    """Result of Hungarian matching."""

    genres: list[str]  # row order of the contingency table
    clusters: list[int]  # column order
    contingency: np.ndarray  # (n_genres, n_clusters) song counts
    cluster_to_genre: dict[int, str]  # matched clusters only
    accuracy: float

    def assigned(self, labels_pred: np.ndarray) -> np.ndarray:
        """Genre assigned to each song through its cluster (``UNASSIGNED`` if its cluster has none)."""
        return np.array([self.cluster_to_genre.get(int(c), UNASSIGNED) for c in labels_pred], dtype=object)


def hungarian_assignment(labels_true: np.ndarray, labels_pred: np.ndarray) -> Assignment:
    """Match clusters to genres one-to-one, maximising the number of correctly assigned songs."""
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    validate(labels_true, labels_pred)
    genres = sorted(set(labels_true.tolist()))
    clusters = sorted(set(labels_pred.tolist()))
    table = contingency_matrix(labels_true, labels_pred)  # rows/columns in sorted label order, as above
    rows, cols = linear_sum_assignment(table, maximize=True)
    mapping = {int(clusters[c]): genres[r] for r, c in zip(rows, cols)}
    return Assignment(genres, [int(c) for c in clusters], table, mapping, float(table[rows, cols].sum() / labels_true.size))


def hungarian_accuracy(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Accuracy in [0, 1] after one-to-one Hungarian matching of clusters to genres."""
    return hungarian_assignment(labels_true, labels_pred).accuracy


def confusion(labels_true: np.ndarray, assigned: np.ndarray, genres: list[str]) -> tuple[np.ndarray, list[str]]:
    """Genres x assigned-genres count matrix; an extra ``UNASSIGNED`` column when some songs have none."""
    cols = list(genres) + ([UNASSIGNED] if (assigned == UNASSIGNED).any() else [])
    ri, ci = {g: i for i, g in enumerate(genres)}, {g: j for j, g in enumerate(cols)}
    cm = np.zeros((len(genres), len(cols)), dtype=int)
    for t, a in zip(labels_true, assigned):
        cm[ri[t], ci[a]] += 1
    return cm, cols


def evaluate(labels_true: np.ndarray, labels_pred: np.ndarray) -> dict[str, float]:
    """accuracy (Hungarian), NMI, ARI and V-measure of a clustering against the true labels."""
    return {
        "accuracy": hungarian_accuracy(labels_true, labels_pred),
        "nmi": float(skm.normalized_mutual_info_score(labels_true, labels_pred)),
        "ari": float(skm.adjusted_rand_score(labels_true, labels_pred)),
        "v_measure": float(skm.v_measure_score(labels_true, labels_pred)),
    }
