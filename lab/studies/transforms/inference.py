"""How sure is a Table-2 number? Intervals for held-out scores, paired differences, and NN accuracy by pool size.

All intervals resample **groups** (artists where known, else recordings: :func:`lab.datasets.clip_groups`)
of the *held-out predictions*: the maps are not refitted per resample, so an interval covers which
songs were drawn, not the variability of fitting the map (that would multiply the cost by the
number of resamples times the nested CV). Redraws are weights ``W[b, i]`` (how often row ``i`` is in
redraw ``b``, :func:`lab.stats.uncertainty.resample_weights`), and intervals are BCa with a
leave-one-group-out jackknife (:func:`lab.stats.uncertainty.bca_interval`).

Scores on a redraw with weights ``w``:

* ``mse`` = ``sum_i w_i e_i / sum_i w_i`` with ``e_i = ||p_i - y_i||^2``;
* ``r2`` = ``1 - sum_i w_i e_i / sum_i w_i ||y_i - ybar_w||^2`` (``ybar_w`` the weighted mean), the
  variance-weighted R^2 of :func:`lab.studies.transforms.maps.evaluate`;
* ``nn_accuracy`` = ``sum_i w_i h_i / sum_i w_i`` with ``h_i`` the song's hit among all ``n``
  candidates (the pool stays the observed one).

**NN accuracy depends on the pool.** With ``c_i`` other candidates nearer to ``p_i`` than ``y_i``
(:func:`lab.studies.transforms.maps.closer_counts`), a pool of ``m`` candidates holding ``y_i`` and
``m - 1`` others drawn at random from the ``n - 1`` has no nearer one with probability
``C(n - 1 - c_i, m - 1) / C(n - 1, m - 1)`` (hypergeometric): the exact expected NN accuracy at every
``m <= n`` (:func:`accuracy_at_pool`). Beyond ``n`` (the study's 1 000 songs) it must be
extrapolated: each song's share ``q_i`` of nearer candidates is modelled as Beta(a, b) across
songs, ``c_i ~ BetaBinomial(n - 1, a, b)`` fitted by maximum likelihood, and the accuracy at pool
``M`` is ``E[(1 - q)^(M - 1)] = B(a, b + M - 1) / B(a, b)`` (:func:`extrapolated_accuracy`).
That is a model, checked against the exact curve where both exist; read it as an order of magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, gammaln
from scipy.stats import hypergeom

from lab.core.errors import LabError
from lab.stats.uncertainty import Interval, bca_interval, compare, jackknife_weights, resample_weights
from lab.studies.transforms.maps import closer_counts


@dataclass(frozen=True)
class Redraws:
    """Group-level bootstrap weights ``W`` [shape=(n_boot, n)] and jackknife weights ``J`` [shape=(n_groups, n)]."""

    W: np.ndarray
    J: np.ndarray
    level: float = 0.95


def redraws(groups, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Redraws:
    """The redraws every interval of one run shares (so paired differences use the same songs)."""
    groups = np.asarray(groups).astype(str)
    if len(np.unique(groups)) < 3:
        raise LabError(f"bootstrap intervals need at least 3 groups (songs), got {len(np.unique(groups))}")
    return Redraws(resample_weights(groups, n_boot=int(n_boot), seed=seed).astype(float),
                   jackknife_weights(groups).astype(float), float(level))


def _mse(err: np.ndarray, W: np.ndarray) -> np.ndarray:
    return (W @ err) / W.sum(1)


def _r2(err: np.ndarray, Y: np.ndarray, W: np.ndarray) -> np.ndarray:
    w = W.sum(1)
    mean = (W @ Y) / w[:, None]  # (B, dim)
    sst = W @ (Y * Y).sum(1) - w * (mean * mean).sum(1)
    return 1.0 - (W @ err) / np.maximum(sst, 1e-300)


def score_draws(P: np.ndarray, Y: np.ndarray, W: np.ndarray, hits: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``mse``, ``r2`` and ``nn_accuracy`` of predictions ``P`` on every row of weights ``W`` [shape=(B, n)] -> each [shape=(B,)].

    ``hits`` [shape=(n,)]: each song's NN hit on the full pool (computed from ``P`` when omitted).
    """
    P, Y = np.asarray(P, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    err = ((P - Y) ** 2).sum(1)
    if hits is None:
        hits = (closer_counts(P, Y) == 0).astype(float)
    return {"mse": _mse(err, W), "r2": _r2(err, Y, W), "nn_accuracy": (W @ hits) / W.sum(1)}


def intervals(P: np.ndarray, Y: np.ndarray, rd: Redraws) -> dict[str, Interval]:
    """BCa interval of ``mse``, ``r2`` and ``nn_accuracy`` of the (held-out) predictions ``P`` [shape=(n, dim)]."""
    ones = np.ones((1, len(Y)))
    est = {k: float(v[0]) for k, v in score_draws(P, Y, ones).items()}
    boot, jack = score_draws(P, Y, rd.W), score_draws(P, Y, rd.J)
    return {k: bca_interval(est[k], boot[k], jack[k], level=rd.level) for k in est}


def paired(P_a: np.ndarray, P_b: np.ndarray, Y: np.ndarray, rd: Redraws) -> dict[str, dict[str, float]]:
    """Paired differences ``score(A) - score(B)`` on the same redrawn songs, for mse, r2 and nn_accuracy.

    Returns ``{score: {"diff", "lo", "hi", "share_a_higher"}}`` (BCa; ``share_a_higher`` = share of
    redraws in which A's score is larger).
    """
    ones = np.ones((1, len(Y)))
    a1, b1 = score_draws(P_a, Y, ones), score_draws(P_b, Y, ones)
    ab, bb = score_draws(P_a, Y, rd.W), score_draws(P_b, Y, rd.W)
    aj, bj = score_draws(P_a, Y, rd.J), score_draws(P_b, Y, rd.J)
    out = {}
    for k in a1:
        c = compare(float(a1[k][0] - b1[k][0]), ab[k] - bb[k], aj[k] - bj[k], level=rd.level, method="bca")
        out[k] = {"diff": c.diff.estimate, "lo": c.diff.lo, "hi": c.diff.hi, "share_a_higher": c.p_a_better}
    return out


def verdict(lo: float, hi: float) -> str:
    """``>0``, ``<0`` or ``unresolved``: where an interval of a difference lies relative to 0."""
    return ">0" if lo > 0 else "<0" if hi < 0 else "unresolved"


# ---------------------------------------------------------------- NN accuracy and the pool size


def accuracy_at_pool(closer: np.ndarray, n: int, m: int) -> np.ndarray:
    """Each song's probability [shape=(n_songs,)] of being the nearest among ``m`` candidates: its own and ``m - 1``
    drawn without replacement from the ``n - 1`` others, ``closer[i]`` of which are nearer than its own."""
    if not 2 <= m <= n:
        raise LabError(f"pool size {m} must be in [2, {n}] for the exact curve; larger pools are extrapolated")
    return hypergeom.pmf(0, n - 1, np.asarray(closer), m - 1)


LOG_GRID = np.arange(-7.0, 9.0001, 0.1)  # log a and log b searched by the beta-binomial fit


def fit_beta_binomial(closer: np.ndarray, n_trials: int, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Maximum-likelihood ``(a, b)`` of ``closer ~ BetaBinomial(n_trials, a, b)``; ``weights`` = multiplicity per row
    (or a matrix [shape=(n_redraws, n)], one fit per row, returned as two arrays).

    A grid search over log a, log b in [-7, 9] (step 0.1; :data:`LOG_GRID`): the likelihood depends on
    the data only through how often each count occurs, so one matrix product scores every grid point
    for every redraw at once. An all-zero ``closer`` drives a to the grid's lower end (q ~ 0).
    """
    c = np.asarray(closer, dtype=float)
    w = np.ones((1, len(c))) if weights is None else np.atleast_2d(np.asarray(weights, dtype=float))
    vals, inv = np.unique(c, return_inverse=True)
    onehot = np.zeros((len(c), len(vals)))
    onehot[np.arange(len(c)), inv] = 1.0
    cnt = w @ onehot  # (n_redraws, n_vals)
    la, lb = np.meshgrid(LOG_GRID, LOG_GRID, indexing="ij")
    a, b = np.exp(la.ravel()), np.exp(lb.ravel())
    const = gammaln(n_trials + 1) - gammaln(vals + 1) - gammaln(n_trials - vals + 1)
    loglik = const[:, None] + betaln(vals[:, None] + a[None, :], n_trials - vals[:, None] + b[None, :]) - betaln(a, b)[None, :]
    best = np.concatenate([np.argmax(chunk @ loglik, axis=1) for chunk in np.array_split(cnt, max(1, len(cnt) // 100))])
    if weights is None or np.asarray(weights).ndim == 1:
        return float(a[best[0]]), float(b[best[0]])
    return a[best], b[best]


def extrapolated_accuracy(a, b, pool: int):
    """``E[(1 - q)^(pool - 1)]`` for ``q ~ Beta(a, b)``: expected NN accuracy among ``pool`` candidates (arrays broadcast)."""
    v = np.exp(betaln(a, b + pool - 1) - betaln(a, b))
    return float(v) if np.ndim(v) == 0 else v


def pool_curve(closer: np.ndarray, n: int, pools, rd: Redraws | None = None) -> dict[int, dict[str, float]]:
    """Expected NN accuracy at each pool size, with a group-bootstrap interval when ``rd`` is given.

    Pools ``<= n`` are exact (hypergeometric, ``kind="exact"``); larger ones use the beta-binomial
    extrapolation (``kind="model"``), refitted on every redraw. Returns
    ``{pool: {"acc", "lo", "hi", "model"}}`` where ``model`` is the beta-binomial's value at that pool
    (beside the exact one, it shows how well the model fits inside the observed range).
    """
    closer = np.asarray(closer)
    a, b = fit_beta_binomial(closer, n - 1)
    pools = sorted({int(p) for p in pools})
    if any(m < 2 for m in pools):
        raise LabError(f"experiment.pool_sizes has {min(pools)}; a pool needs at least 2 candidates")
    refits = None
    if rd is not None and any(m > n for m in pools):  # one refit per redraw, shared by every extrapolated pool
        refits = (fit_beta_binomial(closer, n - 1, rd.W), fit_beta_binomial(closer, n - 1, rd.J))
    out: dict[int, dict[str, float]] = {}
    for m in pools:
        exact = m <= n
        per = accuracy_at_pool(closer, n, m) if exact else None
        est = float(per.mean()) if exact else extrapolated_accuracy(a, b, m)
        row = {"acc": est, "model": extrapolated_accuracy(a, b, m), "exact": float(exact)}
        if rd is not None:
            if exact:
                boot, jack = (rd.W @ per) / rd.W.sum(1), (rd.J @ per) / rd.J.sum(1)
            else:
                boot, jack = (extrapolated_accuracy(*refits[0], m), extrapolated_accuracy(*refits[1], m))
            iv = bca_interval(est, boot, jack, level=rd.level)
            row |= {"lo": iv.lo, "hi": iv.hi}
        out[m] = row
    return out
