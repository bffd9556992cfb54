"""Held-out clustering accuracy by cross-fitting: fit on one half of the groups, score the other.

The study's accuracy fits the clusters *and* the Hungarian cluster -> genre matching on the songs
it then scores, so the matching can fit noise: on pure noise with 10 genres, 50 songs and k = 10
the in-sample accuracy is about 0.25 although nothing is there (chance 0.10). Cross-fitting
(Chernozhukov et al. 2018's name for the scheme) removes that optimism:

1. split the groups (artists, or recordings: :func:`lab.datasets.clip_groups`) into two halves,
   stratified by genre as far as the groups allow (``StratifiedGroupKFold(2)``);
2. on half A fit the preprocessing and the clusterer and match its clusters to genres (Hungarian);
3. assign every song of half B to its nearest cluster (``predict``) and score it with A's matching;
   a song whose cluster has no genre, or whose genre is absent from A, counts as wrong;
4. swap the halves, pool the 2 x n/2 scored songs; repeat over ``repeats`` splits and average.

On well-separated data the held-out accuracy equals the in-sample one; on noise it falls to chance
(1 / number of genres for balanced genres). It is also bounded by what the split lets any
clustering reach: a genre whose songs all sit in one half (a genre of a single artist, with
``unit=artist``) can never be right in the other, and k clusters match at most k genres.
:attr:`CrossFit.ceiling` is that bound, averaged over the splits.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from lab.core.errors import LabError
from lab.stats.clusterers import Clusterer
from lab.stats.metrics import UNASSIGNED, hungarian_assignment


@dataclass
class CrossFit:
    """Cross-fitted accuracy of one clustering configuration."""

    accuracy: float  # mean over repeats of the pooled held-out accuracy
    per_repeat: np.ndarray  # [shape=(repeats,)]
    song_correct: np.ndarray  # [shape=(n,)] share of repeats in which each song was right when held out
    ceiling: float  # mean over repeats of the best accuracy any clustering could reach on these splits
    notes: list[str] = field(default_factory=list)

    @property
    def std(self) -> float:
        """Sample std over repeats (0 for one repeat): how much the split alone moves the number."""
        return float(np.std(self.per_repeat, ddof=1)) if self.per_repeat.size > 1 else 0.0


def _ceiling(y_fit: np.ndarray, y_score: np.ndarray, k: int) -> int:
    """Most songs of ``y_score`` any k-cluster matching fitted on ``y_fit`` can get right."""
    present = set(y_fit.tolist())
    counts = sorted((int(np.sum(y_score == g)) for g in set(y_score.tolist()) if g in present), reverse=True)
    return sum(counts[:k])


def halves(y: np.ndarray, groups: Sequence, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two group-disjoint halves (index arrays), stratified by ``y`` as far as the groups allow."""
    g = np.asarray(groups, dtype=object).astype(str)
    if len(set(g.tolist())) < 2:
        raise LabError("cross-fitting needs at least 2 groups (artists or recordings) to split into halves")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only 1 member": expected with groups
        try:
            a, b = next(StratifiedGroupKFold(n_splits=2, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, g))
        except ValueError as err:  # every genre a single song: nothing to stratify two halves by
            raise LabError(f"cannot halve these {len(y)} songs by genre ({err})") from None
    return a, b


def crossfit_accuracy(X: np.ndarray, y: np.ndarray, groups: Sequence, clusterer: Clusterer, *, k: int, seed: int,
                      repeats: int = 5, split_seed: int = 0) -> CrossFit:
    """Held-out Hungarian accuracy of ``clusterer`` with ``k`` clusters (module notes).

    X : [shape=(n, dim)] embeddings; y : [shape=(n,)] genres; groups : [shape=(n,)] the unit kept on
    one side (artist or recording). ``seed`` seeds the clusterer; split r uses ``split_seed + r``,
    so runs that differ only in model or clusterer seed see the same halves (paired).
    """
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise LabError(f"experiment.heldout.repeats={repeats!r} must be a positive integer (0 switches it off in the config)")
    X, y = np.asarray(X), np.asarray(y)
    per_repeat, ceilings, correct, notes = [], [], np.zeros((repeats, len(y))), []
    for r in range(int(repeats)):
        a, b = halves(y, groups, seed=split_seed + r)
        right, reach = 0, 0
        for fit_on, score_on in ((a, b), (b, a)):
            if k > len(fit_on):
                raise LabError(f"k={k} is larger than a half of the songs ({len(fit_on)}), too few to fit the held-out "
                               f"clustering; set experiment.heldout.repeats=0 or use fewer clusters")
            pipe, fit_notes = clusterer.fit(X[fit_on], k=k, seed=seed)
            notes += [n for n in fit_notes if n not in notes]
            match = hungarian_assignment(y[fit_on], pipe.predict(X[fit_on]))
            assigned = np.array([match.cluster_to_genre.get(int(c), UNASSIGNED) for c in pipe.predict(X[score_on])], dtype=object)
            ok = assigned == y[score_on]
            correct[r, score_on] = ok
            right += int(ok.sum())
            reach += _ceiling(y[fit_on], y[score_on], k)
        per_repeat.append(right / len(y))
        ceilings.append(reach / len(y))
    return CrossFit(float(np.mean(per_repeat)), np.array(per_repeat), correct.mean(axis=0), float(np.mean(ceilings)), notes)
