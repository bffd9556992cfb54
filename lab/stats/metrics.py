"""Clustering evaluation: Hungarian cluster-to-genre matching and external agreement scores.

Scores (all in :func:`evaluate`): ``accuracy`` (below), ``nmi`` (normalised mutual information,
arithmetic mean of the entropies — with that normaliser it equals ``v_measure``, Becker 2011;
both are kept because the study reports both), ``ami`` (NMI adjusted for chance, Vinh, Epps &
Bailey 2010: 0 for a random labelling of the same cluster sizes, 1 for a perfect one), ``ari``
(adjusted Rand index, Hubert & Arabie 1985) and ``v_measure`` (Rosenberg & Hirschberg 2007).
:func:`contingency_scores` computes the same numbers from a genre x cluster count table, which
is what the bootstrap (:mod:`lab.stats.uncertainty`) needs: a resample of songs is a reweighted table.

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


SCORES = ("accuracy", "nmi", "ami", "ari", "v_measure")  # the headline scores, in table order


def evaluate(labels_true: np.ndarray, labels_pred: np.ndarray) -> dict[str, float]:
    """accuracy (Hungarian), NMI, AMI, ARI and V-measure of a clustering against the true labels."""
    return {
        "accuracy": hungarian_accuracy(labels_true, labels_pred),
        "nmi": float(skm.normalized_mutual_info_score(labels_true, labels_pred)),
        "ami": float(skm.adjusted_mutual_info_score(labels_true, labels_pred)),
        "ari": float(skm.adjusted_rand_score(labels_true, labels_pred)),
        "v_measure": float(skm.v_measure_score(labels_true, labels_pred)),
    }


def contingency(labels_true: np.ndarray, labels_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer codes of both labellings and their count table.

    Returns ``(true_codes [shape=(n,)], pred_codes [shape=(n,)], table [shape=(n_genres, n_clusters)])``.
    """
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    validate(labels_true, labels_pred)
    _, t = np.unique(labels_true, return_inverse=True)
    _, p = np.unique(labels_pred, return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1), dtype=np.int64)
    np.add.at(table, (t, p), 1)
    return t, p, table


def _entropy(counts: np.ndarray) -> float:
    n = counts.sum()
    q = counts[counts > 0] / n
    return float(-(q * np.log(q)).sum())


def _expected_mi(table: np.ndarray, n: int) -> float:
    """E[MI] under the permutation model (Vinh et al. 2010), via scikit-learn's compiled routine."""
    try:
        from sklearn.metrics.cluster._expected_mutual_info_fast import expected_mutual_information
    except ImportError:  # private module moved: rebuild labels and let the public function do it
        rows, cols = np.nonzero(table)
        reps = table[rows, cols]
        t, p = np.repeat(rows, reps), np.repeat(cols, reps)
        mi = skm.mutual_info_score(t, p)
        ami = skm.adjusted_mutual_info_score(t, p)
        norm = 0.5 * (_entropy(table.sum(1)) + _entropy(table.sum(0)))
        return float((mi - ami * norm) / (1 - ami)) if ami != 1 else mi
    # It reads only the row and column sums: a dense table gives the same value 3x faster than the
    # sparse one scikit-learn builds (a report computes it for 1000 redraws of every run).
    return float(expected_mutual_information(np.asarray(table, dtype=np.int64), int(n)))


def contingency_scores(table: np.ndarray, *, scores: tuple[str, ...] = SCORES) -> dict[str, float]:
    """The :func:`evaluate` scores from a genre x cluster count table [shape=(n_genres, n_clusters)].

    Equal to :func:`evaluate` on the labellings the table counts (tested), including scikit-learn's
    conventions for degenerate cases (one class and one cluster -> NMI = AMI = ARI = 1; one of
    them alone -> 0). Empty rows/columns (a genre or cluster absent from a resample) are dropped.
    """
    table = np.asarray(table)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0].astype(np.int64)
    n = int(table.sum())
    if n == 0:
        raise ValueError("cannot score an empty contingency table")
    out: dict[str, float] = {}
    r, c = linear_sum_assignment(table, maximize=True) if "accuracy" in scores else ((), ())
    if "accuracy" in scores:
        out["accuracy"] = float(table[r, c].sum() / n)
    a, b = table.sum(1), table.sum(0)
    trivial = table.shape[0] == table.shape[1] == 1
    one_side = table.shape[0] == 1 or table.shape[1] == 1
    h_true, h_pred = _entropy(a), _entropy(b)
    nz = table > 0
    mi = float((table[nz] / n * (np.log(table[nz] * n) - np.log(np.outer(a, b)[nz]))).sum())
    mi = max(mi, 0.0)
    if "nmi" in scores or "v_measure" in scores:
        # arithmetic-mean NMI == V-measure (beta = 1); sklearn returns 1.0 when both entropies are 0
        v = 1.0 if h_true == h_pred == 0 else (2 * mi / (h_true + h_pred) if h_true + h_pred > 0 else 0.0)
        out.update({k: float(v) for k in ("nmi", "v_measure") if k in scores})
    if "ami" in scores:
        if trivial:
            out["ami"] = 1.0
        elif one_side:
            out["ami"] = 0.0
        else:
            emi = _expected_mi(table, n)
            eps = np.finfo("float64").eps
            den, num = 0.5 * (h_true + h_pred) - emi, mi - emi
            # sklearn keeps the sign and bounds both away from 0 (a perfect match has den == num == 0)
            den = min(den, -eps) if den < 0 else max(den, eps)
            num = min(num, -eps) if num < 0 else max(num, eps)
            out["ami"] = float(num / den)
    if "ari" in scores:
        comb = lambda x: (x * (x - 1) / 2).sum()  # noqa: E731 - pairs within each cell/row/column
        s_ij, s_a, s_b, pairs = comb(table.astype(float)), comb(a.astype(float)), comb(b.astype(float)), n * (n - 1) / 2
        expected = s_a * s_b / pairs if pairs else 0.0
        den = 0.5 * (s_a + s_b) - expected
        out["ari"] = 1.0 if den == 0 else float((s_ij - expected) / den)
    return {k: out[k] for k in scores}
