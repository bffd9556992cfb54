"""How sure is a clustering score? Song-level bootstrap intervals and paired model comparisons.

A score measured on one set of songs would change with another draw of songs from the same
population. The bootstrap (Efron & Tibshirani 1993) estimates that by redrawing the songs with
replacement ``n_boot`` times and recomputing the score on each redraw. The interval is the
bias-corrected and accelerated (BCa) percentile interval (Efron 1987; ``scipy.stats.bootstrap``'s
default). Agreement indices (NMI, AMI, ARI, V-measure) are biased upwards on redrawn songs: a
song drawn twice sits twice in the same (genre, cluster) cell, which looks like agreement; with
50 songs the plain percentile interval can lie almost entirely above the observed score. BCa moves
the percentiles by that bias (the share of redraws below the observed score, ties counted half
because the scores are ratios of small integers) and by the skew (acceleration from a
leave-one-song-out jackknife) — but when the bias exceeds the spread no percentile of the
redraws is trustworthy, and BCa returns intervals that exclude the observed score (measured on
36 gtzan_mini runs: a median 95 % of redraws had a higher AMI than the 50 songs themselves, more
than 97.5 % in 9 runs; median shift +0.05 for NMI, +0.10 for AMI, +0.09 for ARI). So the
default, ``method="auto"``, uses the bootstrap (BCa) for accuracy, whose redraws are unbiased
with the matching held fixed, and the leave-one-song-out jackknife (score -+ 1.96 standard
errors; no song is ever duplicated) for NMI, AMI, ARI and V-measure. ``bca``, ``percentile`` or
``jackknife`` apply one method to every score.

Conventions:

* **Groups, not clips, are resampled.** Clips with the same group id are drawn together. The
  studies pass :func:`lab.datasets.clip_groups` (``experiment.group``): ``artist`` (default) draws
  all songs of one artist together (songs of an artist share voice, band and production, so they
  are not independent observations of a genre; GTZAN is ordered by artist, Sturm 2013), falling
  back to the recording where the artist is unknown; ``recording`` draws the excerpts and
  transformed copies of one recording together (the lab's protocol before artists were known).
  Fewer, larger units give a wider and more honest interval when one artist fills a genre.
* **The assignments are fixed.** Each song keeps the cluster it was assigned in the run, and
  each cluster the genre the Hungarian matching of all songs gave it (``assigned_genre`` in
  ``assignments.csv``); the scores are recomputed on the redrawn songs from those fixed
  assignments. Accuracy on a redraw is then the share of its songs whose assigned genre is right.
  (Re-running the matching on every redraw instead is biased: the best matching of a redraw
  fits that redraw, so on 50 GTZAN songs the redrawn accuracies centre 0.04-0.06 above the
  observed one.) The interval covers song sampling **conditional on the fitted clustering and
  matching**, not the clusterer's randomness (the seed std in the report covers that) and not the
  optimism of fitting the matching on the scored songs (the cross-fitted, held-out accuracy of
  :mod:`lab.stats.heldout` measures that).
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
from scipy.optimize import linear_sum_assignment
from scipy.special import ndtr, ndtri

from lab.core.errors import LabError
from lab.stats.metrics import SCORES, contingency, contingency_scores

METHODS = ("auto", "bca", "percentile", "jackknife")
SCORE_RANGE = {"accuracy": (0.0, 1.0), "nmi": (0.0, 1.0), "v_measure": (0.0, 1.0), "ami": (-1.0, 1.0), "ari": (-1.0, 1.0)}


def resolve_method(method: str, score: str) -> str:
    """``auto``: BCa bootstrap for accuracy, jackknife for the agreement indices (see the module notes)."""
    if method != "auto":
        return method
    return "bca" if score == "accuracy" else "jackknife"


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


def validate(n_boot: int, level: float, method: str = "auto") -> None:
    """One sentence for each bad bootstrap option."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or int(n_boot) < 1:
        raise LabError(f"bootstrap n_boot={n_boot!r} must be a positive number of resamples (e.g. 1000; 0 switches intervals off)")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < float(level) < 1:
        raise LabError(f"bootstrap level={level!r} must be in (0, 1), e.g. 0.95")
    if method not in METHODS:
        raise LabError(f"bootstrap method={method!r} must be one of {', '.join(METHODS)}")


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


def jackknife_weights(groups: Sequence) -> np.ndarray:
    """Leave-one-song-out weights [shape=(n_songs, n_clips)]: row j drops every clip of song j."""
    _, song = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    return (song[None, :] != np.arange(int(song.max()) + 1)[:, None]).astype(np.int32)


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
    if "accuracy" in scores:
        # the cluster -> genre matching of all songs stays fixed: a redraw counts its songs in the matched cells
        r, c = linear_sum_assignment(table, maximize=True)
        out["accuracy"] = tables[:, r, c].sum(axis=1) / np.maximum(tables.sum(axis=(1, 2)), 1)
    rest = tuple(s for s in scores if s != "accuracy")
    if rest:
        for b, tb in enumerate(tables):
            for s, v in contingency_scores(tb, scores=rest).items():
                out[s][b] = v
    return out


def bootstrap_mean(values: np.ndarray, groups: Sequence | None = None, *, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95, method: str = "bca") -> Interval:
    """Group-level bootstrap interval of the mean of per-clip ``values`` [shape=(n_clips,)] (e.g. 1 = correct).

    Whole groups are redrawn (a cluster bootstrap); each redraw's mean is over the clips it holds,
    so groups of unequal size weigh by their clips. ``method``: ``bca`` (with a leave-one-group-out
    jackknife), ``percentile`` or ``jackknife``. A probe's out-of-fold predictions are scored this way.
    """
    v = np.asarray(values, dtype=float)
    groups = np.arange(v.size) if groups is None else groups
    if method == "auto":
        method = "bca"
    validate(n_boot, level, method)
    W = resample_weights(groups, n_boot=n_boot, seed=seed)
    J = jackknife_weights(groups)
    boot = (W @ v) / np.maximum(W.sum(1), 1)
    jack = (J @ v) / np.maximum(J.sum(1), 1)
    est = float(v.mean())
    if method == "bca" and np.ptp(boot) == 0:
        return Interval(est, est, est, float(level))  # every redraw equal (all right or all wrong)
    return interval(est, boot, jack, level=level, method=method, score="accuracy")


def percentile_interval(estimate: float, samples: np.ndarray, *, level: float = 0.95) -> Interval:
    """Central ``level`` percentile interval of bootstrap ``samples`` [shape=(n_boot,)]."""
    validate(len(samples), level)
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(estimate), float(lo), float(hi), float(level))


def bca_interval(estimate: float, samples: np.ndarray, jackknife: np.ndarray, *, level: float = 0.95) -> Interval:
    """BCa interval from bootstrap ``samples`` [shape=(n_boot,)] and leave-one-song-out ``jackknife`` values [shape=(n_songs,)].

    z0 = Phi^-1(share of samples below the estimate, ties half); a = sum(d^3) / (6 sum(d^2)^1.5)
    with d = mean(jackknife) - jackknife; the interval is the samples' quantiles at
    Phi(z0 + (z0 + z) / (1 - a (z0 + z))) for z = Phi^-1((1 -+ level) / 2).
    """
    validate(len(samples), level)
    samples = np.asarray(samples, dtype=float)
    b = samples.size
    below = (np.sum(samples < estimate - 1e-12) + 0.5 * np.sum(np.abs(samples - estimate) <= 1e-12)) / b
    z0 = ndtri(np.clip(below, 0.5 / b, 1 - 0.5 / b))  # all redraws on one side: the most extreme correction B allows
    d = np.mean(jackknife) - np.asarray(jackknife, dtype=float)
    den = 6.0 * np.sum(d**2) ** 1.5
    a = float(np.sum(d**3) / den) if den > 0 else 0.0
    z = ndtri(np.array([(1 - level) / 2, (1 + level) / 2]))
    alpha = ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
    lo, hi = np.quantile(samples, np.clip(alpha, 0.0, 1.0))
    return Interval(float(estimate), float(lo), float(hi), float(level))


def jackknife_interval(estimate: float, jackknife: np.ndarray, *, level: float = 0.95) -> Interval:
    """Normal interval ``estimate -+ z * se`` with the leave-one-song-out standard error (Efron & Stein 1981).

    se = sqrt((n - 1) / n * sum((theta_i - mean(theta))^2)) over the ``n`` jackknife values [shape=(n_songs,)].
    """
    validate(1, level)
    j = np.asarray(jackknife, dtype=float)
    se = float(np.sqrt((j.size - 1) / j.size * np.sum((j - j.mean()) ** 2))) if j.size > 1 else 0.0
    z = float(ndtri((1 + level) / 2))
    return Interval(float(estimate), float(estimate - z * se), float(estimate + z * se), float(level))


def interval(estimate: float, samples: np.ndarray, jackknife: np.ndarray | None = None, *, level: float = 0.95,
             method: str = "bca", score: str = "accuracy") -> Interval:
    """The configured interval of ``score``: BCa or percentile from the redraws, or jackknife-normal."""
    validate(1, level, method)
    method = resolve_method(method, score)
    if method == "jackknife" and jackknife is not None:
        iv = jackknife_interval(estimate, jackknife, level=level)
        lo, hi = SCORE_RANGE.get(score, (-np.inf, np.inf))  # a normal interval can cross what the score can reach
        return Interval(iv.estimate, max(iv.lo, lo), min(iv.hi, hi), iv.level)
    if method == "bca" and jackknife is not None:
        return bca_interval(estimate, samples, jackknife, level=level)
    return percentile_interval(estimate, samples, level=level)


def _runs(pred: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    return [pred] if isinstance(pred, np.ndarray) and pred.ndim == 1 else [np.asarray(p) for p in pred]


def bootstrap_clustering(labels_true: np.ndarray, labels_pred: np.ndarray | Sequence[np.ndarray], *, groups: Sequence | None = None,
                         n_boot: int = 1000, seed: int = 0, level: float = 0.95, method: str = "auto",
                         scores: tuple[str, ...] = SCORES) -> dict[str, Interval]:
    """Song-level bootstrap interval of each clustering score.

    labels_true : [shape=(n_clips,)] genres; labels_pred : [shape=(n_clips,)] cluster ids, or a list
    of such arrays (one per seed) whose scores are averaged within each redraw (interval of the seed
    mean); groups : song id per clip (default: every clip its own song).
    Returns ``{score: Interval}``; the estimate is the (seed-mean) score on all songs.
    """
    validate(n_boot, level, method)
    groups = np.arange(len(labels_true)) if groups is None else groups
    W = resample_weights(groups, n_boot=n_boot, seed=seed)
    J = jackknife_weights(groups) if method != "percentile" else None
    runs = _runs(labels_pred)
    # redraws only for the scores whose interval uses them (with "auto": accuracy, which is vectorised)
    drawn = tuple(s for s in scores if resolve_method(method, s) != "jackknife")
    boot = [resampled_scores(labels_true, p, W, scores=drawn) for p in runs]
    jack = [resampled_scores(labels_true, p, J, scores=scores) for p in runs] if J is not None else None
    full = [contingency_scores(contingency(labels_true, p)[2], scores=scores) for p in runs]
    return {s: interval(float(np.mean([f[s] for f in full])), np.mean([r[s] for r in boot], axis=0) if s in drawn else np.empty(0),
                        None if jack is None else np.mean([r[s] for r in jack], axis=0), level=level, method=method, score=s)
            for s in scores}


def paired_bootstrap(labels_true: np.ndarray, pred_a: np.ndarray | Sequence[np.ndarray], pred_b: np.ndarray | Sequence[np.ndarray],
                     *, groups: Sequence | None = None, score: str = "accuracy", n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95, method: str = "auto") -> PairedComparison:
    """Paired song-level bootstrap of ``score(A) - score(B)`` on the same songs.

    pred_a, pred_b : cluster ids [shape=(n_clips,)] of models A and B on the same clips in the same
    order, or lists of them (seeds), averaged within each redraw.
    """
    validate(n_boot, level, method)
    groups = np.arange(len(labels_true)) if groups is None else groups
    W = resample_weights(groups, n_boot=n_boot, seed=seed)
    J = jackknife_weights(groups)

    def mean_over_runs(pred) -> tuple[float, np.ndarray, np.ndarray]:
        runs = _runs(pred)
        full = np.mean([contingency_scores(contingency(labels_true, p)[2], scores=(score,))[score] for p in runs])
        boot = np.mean([resampled_scores(labels_true, p, W, scores=(score,))[score] for p in runs], axis=0)
        jack = np.mean([resampled_scores(labels_true, p, J, scores=(score,))[score] for p in runs], axis=0)
        return float(full), boot, jack

    (fa, ba, ja), (fb, bb, jb) = mean_over_runs(pred_a), mean_over_runs(pred_b)
    return compare(fa - fb, ba - bb, ja - jb, level=level, method=resolve_method(method, score))


def compare(diff: float, samples: np.ndarray, jackknife: np.ndarray | None = None, *, level: float = 0.95,
            method: str = "bca") -> PairedComparison:  # method: bca | percentile | jackknife (resolved by the caller)
    """A :class:`PairedComparison` from the observed difference and its paired redraws [shape=(n_boot,)]."""
    d = np.asarray(samples, dtype=float)
    if method == "bca" and jackknife is not None and np.ptp(d) == 0:
        method = "percentile"  # identical models: every redraw ties, BCa's bias term is undefined
    # scores are ratios of integers; a difference below 1e-12 is a tie, not a float artefact
    return PairedComparison(interval(diff, d, jackknife, level=level, method=method), float(np.mean(d > 1e-12)),
                            float(np.mean(np.abs(d) <= 1e-12)), int(d.size))


def interval_metrics(intervals: dict[str, Interval]) -> dict[str, float]:
    """``{"<score>_ci_lo": lo, "<score>_ci_hi": hi}`` for logging beside the scores."""
    return {f"{s}_ci_{end}": getattr(iv, end) for s, iv in intervals.items() for end in ("lo", "hi")}
