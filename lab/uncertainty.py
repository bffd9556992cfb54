"""How sure is a clustering score? Song-level bootstrap intervals and paired model comparisons.

A score measured on one set of songs would change with another draw of songs from the same
population. The bootstrap (Efron & Tibshirani 1993) estimates that by redrawing the songs with
replacement ``n_boot`` times and recomputing the score on each redraw; the central ``level``
share of the redrawn scores is the percentile interval.

Conventions:

* **Songs, not clips, are resampled.** Clips that share ``source_id`` (excerpts of one recording,
  or transformed copies) are drawn together, so a song cut into three excerpts does not count as
  three independent observations.
* **The clustering is fixed.** Each song keeps the cluster it was assigned in the run; only the
  scores are recomputed on the redrawn songs (Hungarian matching included — it is part of the
  accuracy's definition). The interval therefore covers song sampling, not the clusterer's
  randomness; the seed std in the report covers the latter.
* **Paired comparisons** draw the *same* songs for both models, so the song difficulty both
  models share cancels out: the interval of ``score(A) - score(B)`` and the share of redraws in
  which A scores higher (ties counted apart).
* Several runs (seeds) of one configuration are combined by averaging their scores within each
  redraw, which gives the interval of the seed mean printed in the tables.

Resamples are expressed as weights: ``W[b, i]`` is how many times clip ``i`` is in redraw ``b``;
a redrawn contingency table is then ``W @ onehot(genre, cluster)`` — no label arrays are copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lab.errors import LabError
from lab.metrics import SCORES, contingency, contingency_scores


@dataclass(frozen=True)
class Interval:
    """A score on all songs with its bootstrap percentile interval."""

    estimate: float  # on the songs as observed
    lo: float
    hi: float
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


@dataclass(frozen=True)
class PairedComparison:
    """Score of A minus score of B on the same redrawn songs."""

    diff: Interval  # estimate = score(A) - score(B) on all songs
    p_a_better: float  # share of redraws with A > B
    p_tie: float  # share of redraws with A == B
    n_boot: int

    @property
    def verdict(self) -> str:
        """``A > B`` / ``A < B`` when the interval excludes 0, else ``undecided``."""
        if self.diff.lo > 0:
            return "A > B"
        if self.diff.hi < 0:
            return "A < B"
        return "undecided"


def validate(n_boot: int, level: float) -> None:
    if int(n_boot) < 1:
        raise LabError(f"bootstrap n_boot={n_boot} must be a positive number of resamples (e.g. 1000)")
    if not 0 < float(level) < 1:
        raise LabError(f"bootstrap level={level} must be in (0, 1), e.g. 0.95")


def resample_weights(groups: Sequence, *, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Multiplicity of each clip in ``n_boot`` song-level redraws.

    groups : [shape=(n_clips,)] song id of each clip (``Clip.source_id``); clips of one song are drawn together.
    Returns W : np.ndarray [shape=(n_boot, n_clips)], int32; each row draws ``n_songs`` songs with replacement.
    """
    validate(n_boot, 0.5)
    _, song = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    n_songs = int(song.max()) + 1 if song.size else 0
    if n_songs == 0:
        raise LabError("cannot bootstrap an empty set of songs")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_songs, size=(int(n_boot), n_songs))
    # counts per song per redraw, then broadcast to the song's clips
    per_song = np.zeros((int(n_boot), n_songs), dtype=np.int32)
    np.add.at(per_song, (np.arange(int(n_boot))[:, None], draws), 1)
    return per_song[:, song]


def resampled_scores(labels_true: np.ndarray, labels_pred: np.ndarray, weights: np.ndarray,
                     *, scores: tuple[str, ...] = SCORES) -> dict[str, np.ndarray]:
    """Each score on each redraw: ``{score: np.ndarray [shape=(n_boot,)]}`` for a fixed clustering."""
    t, p, table = contingency(labels_true, labels_pred)
    if weights.shape[1] != t.size:
        raise ValueError(f"weights have {weights.shape[1]} columns for {t.size} clips")
    cell = t * table.shape[1] + p
    onehot = np.zeros((t.size, table.size), dtype=np.float64)
    onehot[np.arange(t.size), cell] = 1.0
    tables = np.rint(weights @ onehot).astype(np.int64).reshape(len(weights), *table.shape)  # (B, n_genres, n_clusters)
    out = {s: np.empty(len(weights)) for s in scores}
    for b, tb in enumerate(tables):
        for s, v in contingency_scores(tb, scores=scores).items():
            out[s][b] = v
    return out


def percentile_interval(estimate: float, samples: np.ndarray, *, level: float = 0.95) -> Interval:
    """Central ``level`` percentile interval of bootstrap ``samples`` [shape=(n_boot,)]."""
    validate(len(samples), level)
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(estimate), float(lo), float(hi), float(level))


def bootstrap_clustering(labels_true: np.ndarray, labels_pred: np.ndarray | Sequence[np.ndarray], *, groups: Sequence | None = None,
                         n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                         scores: tuple[str, ...] = SCORES) -> dict[str, Interval]:
    """Song-level bootstrap interval of each clustering score.

    labels_true : [shape=(n_clips,)] genres; labels_pred : [shape=(n_clips,)] cluster ids, or a list
    of such arrays (one per seed) whose scores are averaged within each redraw (interval of the seed
    mean); groups : song id per clip (default: every clip its own song).
    Returns ``{score: Interval}``; the estimate is the (seed-mean) score on all songs.
    """
    validate(n_boot, level)
    runs = [labels_pred] if isinstance(labels_pred, np.ndarray) and labels_pred.ndim == 1 else list(labels_pred)
    W = resample_weights(np.arange(len(labels_true)) if groups is None else groups, n_boot=n_boot, seed=seed)
    per_run = [resampled_scores(labels_true, p, W, scores=scores) for p in runs]
    full = [contingency_scores(contingency(labels_true, p)[2], scores=scores) for p in runs]
    return {s: percentile_interval(float(np.mean([f[s] for f in full])), np.mean([r[s] for r in per_run], axis=0), level=level)
            for s in scores}


def paired_bootstrap(labels_true: np.ndarray, pred_a: np.ndarray | Sequence[np.ndarray], pred_b: np.ndarray | Sequence[np.ndarray],
                     *, groups: Sequence | None = None, score: str = "accuracy", n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> PairedComparison:
    """Paired song-level bootstrap of ``score(A) - score(B)`` on the same songs.

    pred_a, pred_b : cluster ids [shape=(n_clips,)] of models A and B on the same clips in the same
    order, or lists of them (seeds), averaged within each redraw.
    """
    validate(n_boot, level)
    W = resample_weights(np.arange(len(labels_true)) if groups is None else groups, n_boot=n_boot, seed=seed)

    def mean_over_runs(pred) -> tuple[float, np.ndarray]:
        runs = [pred] if isinstance(pred, np.ndarray) and pred.ndim == 1 else list(pred)
        full = np.mean([contingency_scores(contingency(labels_true, p)[2], scores=(score,))[score] for p in runs])
        return float(full), np.mean([resampled_scores(labels_true, p, W, scores=(score,))[score] for p in runs], axis=0)

    (fa, sa), (fb, sb) = mean_over_runs(pred_a), mean_over_runs(pred_b)
    d = sa - sb
    # scores are ratios of integers; a difference below 1e-12 is a tie, not a float artefact
    return PairedComparison(percentile_interval(fa - fb, d, level=level), float(np.mean(d > 1e-12)),
                            float(np.mean(np.abs(d) <= 1e-12)), int(n_boot))
