"""How alike are two latent spaces? CKA and orthogonal Procrustes between song-embedding matrices.

All measures compare two matrices ``X`` [shape=(n, d1)] and ``Y`` [shape=(n, d2)] whose rows are
the same n songs in the same order. The widths may differ (32 for CRNN, 64 for FCN, 200 for
Musicnn, 512 for the sample-level CNNs): every measure works on the n × n song-by-song
structure (kernel matrices, or the d1 × d2 cross-covariance), never on dimension i of one model
against dimension i of the other, so no padding or truncation is needed.

Measures (``MEASURES``):

- ``linear_cka`` — centred kernel alignment with linear kernels (Kornblith et al. 2019, "Similarity
  of neural network representations revisited", ICML):
  ``CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred ``Xc, Yc``,
  equivalently the cosine between the centred Gram matrices ``Xc Xc^T`` and ``Yc Yc^T``. In [0, 1];
  1 for identical spaces, and invariant to orthogonal transforms and isotropic scaling (not to
  arbitrary invertible linear maps, which would make every pair of wide-enough spaces equal).
- ``rbf_cka`` — the same with Gaussian kernels ``exp(-||xi - xj||^2 / (2 s^2))``, ``s`` = ``sigma``
  × the median distance between distinct songs (Kornblith et al. use 0.2–0.8; default 0.8).
  Sensitive to local neighbourhoods more than to the global shape.
- ``linear_cka_debiased`` — linear CKA from the unbiased HSIC estimator (Song et al. 2012, "Feature
  selection via dependence maximization", JMLR; used for CKA by Nguyen, Raghu & Kornblith 2021):
  the Gram matrices are U-centred (Székely & Rizzo 2014: diagonal zeroed, then
  ``K~_ij = K_ij - r_i/(n-2) - r_j/(n-2) + t/((n-1)(n-2))`` off the diagonal, with ``r`` the row
  sums and ``t`` the total), and the CKA is their cosine. The biased estimator is inflated at small
  n relative to the widths (independent 8-d Gaussian features: ~0.2 at n = 32, ~0.03 at n = 256);
  this one is ~0 for unrelated spaces at any n (it can be slightly negative) and 1 for identical ones.
- ``mutual_knn`` — mutual k-nearest-neighbour alignment (Huh et al. 2024, "The Platonic
  representation hypothesis", ICML): for every song, the share of its ``k`` nearest neighbours
  (Euclidean, itself excluded) that are the same songs in both spaces, averaged over songs. Rank
  based: blind to scale and to how far apart the neighbours are, only *which* songs sit together
  counts. In [0, 1]; chance is about ``k / (n - 1)``.
- ``procrustes`` — orthogonal-Procrustes residual: centre both, scale each to unit Frobenius norm,
  then ``min_R ||X R - Y||_F^2`` over matrices R with orthonormal rows/columns (the narrower
  space is implicitly zero-padded) = ``2 - 2 ||X^T Y||_*`` (nuclear norm; Schönemann 1966). In
  [0, 2]; 0 when one space is a rotated, scaled copy of the other. A distance: lower = more alike.

Conventions: inputs are finite float arrays with the same number of rows n >= 3 (``linear_cka_debiased``
needs n >= 4, ``mutual_knn`` n > k); songs are rows. ``linear_cka`` and ``rbf_cka`` are the biased
(V-statistic) HSIC estimators: with few songs and wide embeddings even unrelated spaces score above
0. Every measure therefore comes with its permutation null (:func:`similarity_matrix`: the songs of
one space shuffled), the value expected by chance for the data at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.spatial.distance import pdist, squareform
from threadpoolctl import threadpool_limits

from lab.core.errors import LabError


def validate(X: np.ndarray, Y: np.ndarray | None = None) -> None:
    """Raise :class:`LabError` unless ``X`` (and ``Y``) are finite (n, d) matrices with n >= 3 alike."""
    for name, M in (("X", X), ("Y", Y)):
        if M is None:
            continue
        if M.ndim != 2:
            raise LabError(f"{name} must have shape (n_songs, dim), got shape={M.shape}")
        if M.shape[0] < 3:
            raise LabError(f"{name} has {M.shape[0]} songs; a latent-space similarity needs at least 3")
        if not np.isfinite(M).all():
            raise LabError(f"{name} holds NaN or infinite values")
    if Y is not None and X.shape[0] != Y.shape[0]:
        raise LabError(f"X has {X.shape[0]} songs but Y has {Y.shape[0]}; rows must be the same songs in the same order")


def _centre_kernel(K: np.ndarray) -> np.ndarray:
    # H K H with H = I - 11^T/n, written without forming H
    return K - K.mean(0, keepdims=True) - K.mean(1, keepdims=True) + K.mean()


def _unit(M: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(M)
    if norm == 0 or not np.isfinite(norm):
        return np.full_like(M, np.nan)  # a constant embedding: the measure is undefined (NaN), not 0 or 1
    return M / norm


def linear_kernel_rep(X: np.ndarray) -> np.ndarray:
    """Centred linear Gram matrix [shape=(n, n)] scaled to unit Frobenius norm."""
    Xc = X - X.mean(0, keepdims=True)
    return _unit(Xc @ Xc.T)


def rbf_kernel_rep(X: np.ndarray, *, sigma: float = 0.8) -> np.ndarray:
    """Centred Gaussian kernel [shape=(n, n)], bandwidth ``sigma`` × median distance, unit Frobenius norm."""
    d = pdist(X)  # (n (n - 1) / 2,) distances between distinct rows
    sq = squareform(d * d)  # (n, n)
    d = d[d > 0]  # bootstrap resamples repeat songs: their zero distances are not "typical"
    if d.size == 0:
        return np.full_like(sq, np.nan)
    s = sigma * np.median(d)
    return _unit(_centre_kernel(np.exp(-sq / (2.0 * s * s))))


def _u_centre(K: np.ndarray) -> np.ndarray:
    """U-centring (Székely & Rizzo 2014): ``<u(K), u(L)> / (n (n - 3))`` is the unbiased HSIC of Song et al. 2012."""
    n = K.shape[0]
    K = K.copy()
    np.fill_diagonal(K, 0.0)
    r = K.sum(axis=1)
    U = K - r[:, None] / (n - 2) - r[None, :] / (n - 2) + r.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(U, 0.0)
    return U


def debiased_kernel_rep(X: np.ndarray) -> np.ndarray:
    """U-centred linear Gram matrix [shape=(n, n)] scaled to unit Frobenius norm (the debiased CKA's representation)."""
    if X.shape[0] < 4:
        raise LabError(f"the debiased CKA needs at least 4 songs, got {X.shape[0]}")
    Xc = X - X.mean(0, keepdims=True)
    return _unit(_u_centre(Xc @ Xc.T))


def knn_rep(X: np.ndarray, *, k: int = 10) -> np.ndarray:
    """Neighbour indicator [shape=(n, n)]: row i holds 1 at the ``k`` nearest songs of song i (itself excluded).

    Exact copies of a song (a bootstrap resample repeats songs) are not counted as its neighbours,
    so a resample does not look more aligned than the songs themselves.
    """
    n = X.shape[0]
    if n <= k:
        raise LabError(f"mutual k-NN alignment with k={k} needs more than {k} songs, got {n}; lower experiment.knn_k")
    D = squareform(pdist(X))
    D[D == 0] = np.inf  # the song itself and its exact copies
    idx = np.argpartition(D, k - 1, axis=1)[:, :k]
    A = np.zeros((n, n))
    np.put_along_axis(A, idx, 1.0, axis=1)
    return A


def _knn_overlap(A: np.ndarray, B: np.ndarray) -> float:
    return float(np.sum(A * B) / max(float(A.sum()), 1.0))  # mean over songs of |N_A(i) ∩ N_B(i)| / k


def procrustes_rep(X: np.ndarray) -> np.ndarray:
    """``U S`` of the thin SVD of column-centred, unit-norm ``X`` [shape=(n, min(n, d))].

    ``X = U S V^T`` and ``V`` has orthonormal columns, so ``||X^T Y||_* = ||(U_x S_x)^T (U_y S_y)||_*``:
    the nuclear norm then needs an SVD of at most n × n instead of d1 × d2 (measured: the 1000
    bootstrap resamples of 8 models on 50 songs went from minutes to seconds).
    """
    Z = _unit(X - X.mean(0, keepdims=True))
    if not np.isfinite(Z).all():
        return Z[:, : min(Z.shape)]
    U, S, _ = np.linalg.svd(Z, full_matrices=False)
    return U * S


def _cosine(A: np.ndarray, B: np.ndarray) -> float:
    return float(np.sum(A * B))  # both have unit norm: the Frobenius inner product is the CKA


def _procrustes_residual(A: np.ndarray, B: np.ndarray) -> float:
    # clip: round-off can push the nuclear norm of two unit matrices a hair above 1
    return float(max(0.0, 2.0 - 2.0 * np.linalg.norm(A.T @ B, ord="nuc")))


@dataclass(frozen=True)
class Measure:
    """A similarity as ``compare(prepare(X), prepare(Y))``, so each space is prepared once per resample."""

    name: str
    prepare: Callable[[np.ndarray], np.ndarray]
    compare: Callable[[np.ndarray, np.ndarray], float]
    higher_is_similar: bool
    label: str  # for figure titles and colour bars

    def __call__(self, X: np.ndarray, Y: np.ndarray) -> float:
        validate(X, Y)
        return self.compare(self.prepare(np.asarray(X, np.float64)), self.prepare(np.asarray(Y, np.float64)))

    def permute(self, rep: np.ndarray, perm: np.ndarray) -> np.ndarray:
        """The prepared form of the same space with its songs reordered by ``perm``."""
        return rep[perm] if self.compare is _procrustes_residual else rep[np.ix_(perm, perm)]


def measure(name: str, *, sigma: float = 0.8, k: int = 10) -> Measure:
    """The measure called ``name`` (one of :data:`MEASURES`); ``sigma`` for ``rbf_cka``, ``k`` for ``mutual_knn``."""
    if name == "linear_cka":
        return Measure(name, linear_kernel_rep, _cosine, True, "linear CKA")
    if name == "linear_cka_debiased":
        return Measure(name, debiased_kernel_rep, _cosine, True, "debiased linear CKA (unbiased HSIC)")
    if name == "mutual_knn":
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise LabError(f"experiment.knn_k={k!r} must be a positive integer (neighbours per song, e.g. 10)")
        return Measure(name, lambda X: knn_rep(X, k=k), _knn_overlap, True, f"mutual {k}-NN alignment")
    if name == "rbf_cka":
        if not sigma > 0:
            raise LabError(f"experiment.rbf_sigma={sigma!r} must be a positive number (a fraction of the median distance)")
        return Measure(name, lambda X: rbf_kernel_rep(X, sigma=sigma), _cosine, True, f"RBF CKA (sigma {sigma:g} x median)")
    if name == "procrustes":
        return Measure(name, procrustes_rep, _procrustes_residual, False, "Procrustes residual (0 = same shape)")
    raise LabError(f"measure={name!r} is unknown; choose one of {', '.join(MEASURES)}")


MEASURES = ("linear_cka", "linear_cka_debiased", "mutual_knn", "rbf_cka", "procrustes")


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA of ``X`` [shape=(n, d1)] and ``Y`` [shape=(n, d2)], in [0, 1]."""
    return measure("linear_cka")(X, Y)


def debiased_linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Debiased linear CKA (unbiased HSIC) of ``X`` [shape=(n, d1)] and ``Y`` [shape=(n, d2)]; ~0 for unrelated spaces."""
    return measure("linear_cka_debiased")(X, Y)


def mutual_knn(X: np.ndarray, Y: np.ndarray, *, k: int = 10) -> float:
    """Mutual k-NN alignment of ``X`` and ``Y``: mean share of each song's ``k`` neighbours shared by both, in [0, 1]."""
    return measure("mutual_knn", k=k)(X, Y)


def rbf_cka(X: np.ndarray, Y: np.ndarray, *, sigma: float = 0.8) -> float:
    """RBF-kernel CKA of ``X`` and ``Y`` (bandwidth ``sigma`` × median distance), in [0, 1]."""
    return measure("rbf_cka", sigma=sigma)(X, Y)


def procrustes_residual(X: np.ndarray, Y: np.ndarray) -> float:
    """Orthogonal-Procrustes residual of unit-norm, centred ``X`` and ``Y``, in [0, 2]."""
    return measure("procrustes")(X, Y)


def pairwise(reps: Sequence[np.ndarray], m: Measure) -> np.ndarray:
    """[shape=(k, k)] matrix of ``m.compare`` over all pairs of prepared spaces (symmetric)."""
    k = len(reps)
    out = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            out[i, j] = out[j, i] = m.compare(reps[i], reps[j])
    return out


@dataclass
class SimilarityResult:
    """Point values, bootstrap replicates and the permutation null of one measure over k spaces."""

    value: np.ndarray  # (k, k) on all songs
    boot: np.ndarray  # (n_boot, k, k) on song resamples (same resample for every pair)
    null: np.ndarray  # (n_perm, k, k) with the songs of the second space shuffled

    def interval(self, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Basic (reverse-percentile) bootstrap interval [shape=(k, k)] each; see :func:`basic_interval`."""
        return basic_interval(self.value, self.boot, ci)


def basic_interval(value: np.ndarray | float, boot: np.ndarray, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """``(2 v - q_hi, 2 v - q_lo)`` with ``q`` the bootstrap percentiles over axis 0 (Davison & Hinkley 1997, 5.2).

    Why not the plain percentile interval: a resample repeats songs, and repeated rows make any two
    spaces look more alike to these biased estimators (CKA up, Procrustes residual down). On the
    50 gtzan_mini songs the percentile intervals of several model pairs did not even contain the
    value on all songs; the basic interval subtracts that shift.
    """
    a = (1 - ci) / 2 * 100
    q_lo, q_hi = np.nanpercentile(boot, a, axis=0), np.nanpercentile(boot, 100 - a, axis=0)
    return 2 * np.asarray(value) - q_hi, 2 * np.asarray(value) - q_lo


def similarity_matrix(spaces: Sequence[np.ndarray], m: Measure, *, n_boot: int = 1000, n_perm: int = 200,
                      seed: int = 0, groups: Sequence | None = None) -> SimilarityResult:
    """All-pairs similarity of ``spaces`` (each [shape=(n, d_i)], rows = the same songs).

    Bootstrap: songs are resampled with replacement (``n_boot`` times), the same resample for every
    pair, so differences between pairs can be read off the replicates jointly. ``groups``
    [shape=(n,)] (e.g. artists, :func:`lab.datasets.clip_groups`): whole groups are redrawn, all
    their songs together; None or all-distinct groups: songs, exactly as before. Null: for each of
    ``n_perm`` random permutations, every space is compared with every other space's songs
    shuffled (the similarity two unrelated spaces of these widths reach on n songs).
    """
    if not spaces:
        raise LabError("no embedding spaces to compare")
    for X in spaces:
        validate(spaces[0], X)
    n = spaces[0].shape[0]
    if n_boot < 0 or n_perm < 0:
        raise LabError(f"n_boot={n_boot} and n_perm={n_perm} must be >= 0")
    members = None
    if groups is not None:
        if len(groups) != n:
            raise LabError(f"groups has {len(groups)} entries for {n} songs")
        _, g = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        if g.max() + 1 < n:  # some songs share a group (an artist): draw the groups whole
            members = [np.flatnonzero(g == i) for i in range(g.max() + 1)]
    with threadpool_limits(1):  # tiny matrices: BLAS threads only contend (1000 linear-CKA resamples: 121 s -> 28 s, loaded 2-core box)
        return _similarity_matrix([np.asarray(X, np.float64) for X in spaces], m, n, n_boot, n_perm, seed, members)


def _similarity_matrix(data: list[np.ndarray], m: Measure, n: int, n_boot: int, n_perm: int, seed: int,
                       members: list[np.ndarray] | None = None) -> SimilarityResult:
    reps = [m.prepare(X) for X in data]
    value = pairwise(reps, m)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(data), len(data)))
    for b in range(n_boot):
        if members is None:
            idx = rng.integers(0, n, n)
        else:
            idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        boot[b] = pairwise([m.prepare(X[idx]) for X in data], m)
    null = np.empty((n_perm, len(data), len(data)))
    for p in range(n_perm):
        perm = rng.permutation(n)
        shuffled = [m.permute(r, perm) for r in reps]
        null[p] = [[m.compare(reps[i], shuffled[j]) for j in range(len(data))] for i in range(len(data))]
    return SimilarityResult(value, boot, null)
