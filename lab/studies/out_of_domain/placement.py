"""Where new sets of music land in an embedding space: numbers for the study's Figure 5.

Section 3.3 of the study embeds Carnatic, Gaana and a Carnatic-Rock fusion set together with
GTZAN and reads a t-SNE map by eye ("well defined clusters", "Gaana close to reggae and hip-hop",
"Carnatic-Rock between rock and Carnatic"). Each function here turns one of those sentences into
a number, computed in the embedding space itself (never on the 2-D map, whose distances t-SNE
does not preserve).

Conventions
-----------
- ``X`` : np.ndarray [shape=(n, dim)], float — one row per item (reference songs and new items).
- ``labels`` : np.ndarray [shape=(n,)], str — a reference genre or a new set's name per row.
- Distances are Euclidean, as in the t-SNE map and K-Means of the other studies.
- A *reference genre* is a label of the reference dataset (e.g. GTZAN's ten); a *set* is a new
  collection (e.g. ``carnatic``). All functions are pure: no I/O, no randomness.

Metrics
-------
- compactness: ``silhouette`` = mean silhouette (Rousseeuw 1987) of the set's items with every
  label as a cluster; ``spread_ratio`` = the set's mean pairwise distance divided by the mean over
  reference genres of their mean pairwise distance (1 = as tight as an average genre).
- placement: reference genres ranked by distance between centroids; ``knn_self_share`` = share of
  the set's items whose k nearest neighbours are mostly (> k / 2) in the set itself, and
  ``knn_self_fraction`` = mean fraction of the k neighbours that are in the set.
- fusion: ``position`` t of the set centroid projected onto the segment from the first parent's
  centroid (t = 0) to the second's (t = 1), not clipped; ``offset`` = distance from the set
  centroid to the closest point of the segment divided by the distance between the parents.
- tags: the most frequent top tags of the set's items, and the share of items whose top genre
  tag (``genre---*``) names each reference genre.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np
from sklearn.metrics import pairwise_distances, silhouette_samples

from lab.core.errors import LabError

GENRE_PREFIX = "genre---"  # MTG-Jamendo genre tags: genre---rock, genre---world, ...


def _genre_key(name: str) -> str:
    """Case and punctuation folded, so GTZAN's ``hiphop`` and a ``Hip-Hop`` folder both meet ``genre---hiphop``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def validate(X: np.ndarray, labels: Sequence[str], *names: str) -> np.ndarray:
    """Check ``X`` [shape=(n, dim)] against ``labels`` and that every name in ``names`` labels >= 1 row.

    Returns ``labels`` as an array of str.
    """
    labels = np.asarray(labels, dtype=str)
    if X.ndim != 2:
        raise LabError(f"X must have shape (n, dim), got shape={X.shape}")
    if len(labels) != len(X):
        raise LabError(f"labels has {len(labels)} entries but X has {len(X)} rows")
    if not np.isfinite(X).all():
        raise LabError("X holds NaN or infinite values; the embeddings are broken")
    present = set(labels.tolist())
    for name in names:
        if name not in present:
            raise LabError(f"no item is labelled {name!r}; labels are {', '.join(sorted(present))}")
    return labels


def mean_pairwise_distance(X: np.ndarray) -> float:
    """Mean Euclidean distance over distinct pairs of rows of ``X`` [shape=(m, dim)]; NaN when m < 2."""
    m = len(X)
    if m < 2:
        return float("nan")
    d = pairwise_distances(X)
    return float(d.sum() / (m * (m - 1)))  # the zero diagonal adds nothing


def compactness(X: np.ndarray, labels: Sequence[str], set_name: str, reference: Sequence[str]) -> dict[str, float]:
    """Is ``set_name`` as tight a cluster as a reference genre?

    Parameters
    ----------
    X : np.ndarray [shape=(n, dim)]
    labels : sequence of str [shape=(n,)]
    set_name : str — the set to score.
    reference : sequence of str — the reference genres (each labels >= 2 rows to count).

    Returns
    -------
    dict with ``silhouette`` (mean over the set's items of sklearn's ``silhouette_samples`` with
    every label a cluster, in [-1, 1]), ``spread`` (the set's mean pairwise distance),
    ``reference_spread`` (mean over reference genres of their mean pairwise distance) and
    ``spread_ratio`` = spread / reference_spread.
    """
    labels = validate(X, labels, set_name)
    sel = labels == set_name
    sil = silhouette_samples(X, labels)[sel].mean() if len(set(labels.tolist())) > 1 else float("nan")
    spread = mean_pairwise_distance(X[sel])
    per_genre = [mean_pairwise_distance(X[labels == g]) for g in reference if (labels == g).sum() >= 2]
    ref = float(np.mean(per_genre)) if per_genre else float("nan")
    return {"silhouette": float(sil), "spread": spread, "reference_spread": ref, "spread_ratio": spread / ref}


def centroids(X: np.ndarray, labels: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """Mean row of each label in ``names`` -> [shape=(len(names), dim)]."""
    labels = validate(X, labels, *names)
    return np.stack([X[labels == n].mean(0) for n in names])


def rank_reference(X: np.ndarray, labels: Sequence[str], set_name: str, reference: Sequence[str]) -> list[tuple[str, float]]:
    """Reference genres sorted by the distance of their centroid to the set's centroid, nearest first.

    Returns a list of (genre, distance); ties keep the order of ``reference``.
    """
    c = centroids(X, labels, [set_name, *reference])
    d = np.linalg.norm(c[1:] - c[0], axis=1)
    order = np.argsort(d, kind="stable")
    return [(reference[i], float(d[i])) for i in order]


def knn_labels(X: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's ``k`` nearest other rows -> [shape=(n, k)], int, nearest first.

    The row itself is excluded by position (not by distance), so a duplicate of a row is found as
    its neighbour at distance 0; ties are broken by row order (stable sort).
    """
    n = len(X)
    if not 1 <= k <= n - 1:
        raise LabError(f"k={k} nearest neighbours needs 1 <= k <= n - 1 = {n - 1}")
    d = pairwise_distances(X)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def knn_self_share(X: np.ndarray, labels: Sequence[str], set_name: str, *, k: int) -> dict[str, float | str]:
    """How many of the set's items have their own set as neighbourhood?

    Returns
    -------
    dict with ``knn_self_share`` (share of the set's items with more than k / 2 of their k nearest
    neighbours in the set), ``knn_self_fraction`` (mean over the set's items of the fraction of
    their k neighbours in the set) and ``knn_nearest_other`` (the label most frequent among the
    neighbours outside the set; "" when there are none).
    """
    labels = validate(X, labels, set_name)
    sel = np.flatnonzero(labels == set_name)
    nb = labels[knn_labels(X, k)[sel]]  # (n_set, k) neighbour labels
    inside = (nb == set_name).mean(1)
    others = Counter(nb[nb != set_name].tolist())
    return {"knn_self_share": float((inside > 0.5).mean()), "knn_self_fraction": float(inside.mean()),
            "knn_nearest_other": others.most_common(1)[0][0] if others else ""}


def fusion_position(X: np.ndarray, labels: Sequence[str], set_name: str, parents: tuple[str, str]) -> dict[str, float]:
    """Where the fusion set's centroid sits relative to the segment between its parents' centroids.

    With parent centroids a, b and set centroid f: ``position`` t = (f - a)·(b - a) / |b - a|²
    (0 = first parent, 1 = second; not clipped, so t < 0 or t > 1 says "beyond a parent"),
    ``offset`` = |f - p| / |b - a| with p the closest point of the segment (t clipped to [0, 1]),
    and ``parent_distance`` = |b - a|.
    """
    if len(parents) != 2 or parents[0] == parents[1]:
        raise LabError(f"fusion set {set_name!r} needs two different parents, got {list(parents)}")
    f, a, b = centroids(X, labels, [set_name, *parents])
    ab = b - a
    dist = float(np.linalg.norm(ab))
    if dist == 0:
        raise LabError(f"parents {parents[0]!r} and {parents[1]!r} of {set_name!r} have the same centroid")
    t = float(np.dot(f - a, ab) / dist**2)
    closest = a + min(max(t, 0.0), 1.0) * ab
    return {"position": t, "offset": float(np.linalg.norm(f - closest) / dist), "parent_distance": dist}


def item_positions(X: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row's projection t onto the line from ``a`` (t = 0) to ``b`` (t = 1) -> [shape=(n,)]."""
    ab = b - a
    return (X - a) @ ab / float(ab @ ab)


def top_tags(tags: np.ndarray, tag_names: Sequence[str], *, top: int = 5, per_item: int = 1) -> list[tuple[str, float]]:
    """The most frequent top tags of a set's items, with the share of items that have each.

    ``tags`` [shape=(m, n_tags)] are per-item tag probabilities; an item "has" a tag when it is
    among its ``per_item`` most probable. Returns up to ``top`` (tag, share) pairs, most frequent
    first (ties by tag order).
    """
    if tags.ndim != 2 or tags.shape[1] != len(tag_names):
        raise LabError(f"tags must have shape (m, {len(tag_names)}), got shape={tags.shape}")
    if len(tags) == 0:
        return []
    best = np.argsort(-tags, axis=1, kind="stable")[:, :per_item]  # (m, per_item)
    counts = np.bincount(best.ravel(), minlength=len(tag_names))
    order = np.argsort(-counts, kind="stable")
    return [(tag_names[j], counts[j] / len(tags)) for j in order[:top] if counts[j]]


def tag_ranks(tags: np.ndarray, tag_names: Sequence[str], tag: str) -> np.ndarray:
    """Rank of ``tag`` among each item's tags, 1 = most probable -> [shape=(m,)], int."""
    if tag not in tag_names:
        raise LabError(f"tag {tag!r} is not one of the tagger's {len(tag_names)} tags")
    j = list(tag_names).index(tag)
    return (tags > tags[:, [j]]).sum(1) + 1


def genre_tag_shares(tags: np.ndarray, tag_names: Sequence[str], reference: Sequence[str]) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Which genre does the tagger say? Restricted to the ``genre---*`` tags.

    Returns
    -------
    shares : dict — for each reference genre, the share of items whose most probable genre tag
        is ``genre---<genre>`` (0 for a genre the tagger has no tag for, e.g. GTZAN's blues).
    top : list of (genre, share) — every top genre tag that occurs, most frequent first.
    """
    idx = [j for j, t in enumerate(tag_names) if t.startswith(GENRE_PREFIX)]
    if not idx:
        raise LabError(f"the tagger has no {GENRE_PREFIX}* tags, so genre-tag shares are undefined")
    genres = [tag_names[j][len(GENRE_PREFIX):] for j in idx]
    if len(tags) == 0:
        return {g: 0.0 for g in reference}, []
    winners = Counter(genres[j] for j in tags[:, idx].argmax(1))
    m = len(tags)
    by_key = {_genre_key(g): c for g, c in winners.items()}
    shares = {g: by_key.get(_genre_key(g), 0) / m for g in reference}
    return shares, [(g, c / m) for g, c in sorted(winners.items(), key=lambda kv: (-kv[1], kv[0]))]


def bootstrap(X: np.ndarray, labels: Sequence[str], set_name: str, reference: Sequence[str], *,
              parents: tuple[str, str] | None = None, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """How much the centroid-based answers move when the items are resampled.

    Every label's rows are resampled with replacement, separately (a stratified bootstrap: with
    six items in a set and five songs per genre, both sides are uncertain), and the centroids
    recomputed ``n_boot`` times.

    Returns
    -------
    dict with ``nearest_stability`` (share of resamples whose nearest reference genre is the one
    found on the full data) and, with ``parents``, ``position_lo``/``position_hi`` and
    ``offset_lo``/``offset_hi`` (5th and 95th percentiles).
    """
    names = [set_name, *reference] + [p for p in (parents or ()) if p not in reference and p != set_name]
    labels = validate(X, labels, *names)
    rng = np.random.default_rng(seed)
    rows = [np.flatnonzero(labels == n) for n in names]
    nearest = rank_reference(X, labels, set_name, reference)[0][0]
    hits, pos, off = 0, [], []
    for _ in range(n_boot):
        c = np.stack([X[rng.choice(r, size=len(r))].mean(0) for r in rows])  # (len(names), dim)
        d = np.linalg.norm(c[1:1 + len(reference)] - c[0], axis=1)
        hits += reference[int(np.argmin(d))] == nearest
        if parents:
            f, a, b = (c[names.index(n)] for n in (set_name, *parents))
            ab = b - a
            t = float(np.dot(f - a, ab) / np.dot(ab, ab))
            pos.append(t)
            off.append(float(np.linalg.norm(f - (a + min(max(t, 0.0), 1.0) * ab)) / np.linalg.norm(ab)))
    out = {"nearest_stability": hits / n_boot}
    if parents:
        out |= {"position_lo": float(np.percentile(pos, 5)), "position_hi": float(np.percentile(pos, 95)),
                "offset_lo": float(np.percentile(off, 5)), "offset_hi": float(np.percentile(off, 95))}
    return out


def permutation_test(X: np.ndarray, labels: Sequence[str], set_name: str, *, k: int, n_perm: int = 1000,
                     seed: int = 0) -> dict[str, float]:
    """Is the set more of a cluster than a random group of the same size? One-sided permutation p-values.

    The labels of all rows are shuffled ``n_perm`` times (the null: labels carry no structure), and
    the set's silhouette and kNN self-share (see :func:`compactness`, :func:`knn_self_share`) are
    recomputed. p = (1 + #{null >= observed}) / (1 + n_perm), so p >= 1 / (1 + n_perm); with six
    items a modest p is the most a set can show.

    Returns dict with ``silhouette_p`` and ``knn_self_share_p``.
    """
    labels = validate(X, labels, set_name)
    d = pairwise_distances(X)
    nb = knn_labels(X, k)  # (n, k); neighbours do not depend on the labels, only membership does
    names, codes = np.unique(labels, return_inverse=True)
    target = int(np.flatnonzero(names == set_name)[0])

    def stats(c: np.ndarray) -> tuple[float, float]:
        member = c == target
        share = float((member[nb[member]].mean(1) > 0.5).mean())
        return set_silhouette(d[member], c, target), share

    obs = stats(codes)
    rng = np.random.default_rng(seed)
    null = np.array([stats(rng.permutation(codes)) for _ in range(n_perm)])  # (n_perm, 2)
    # A tolerance so that float noise in equal statistics counts as a tie (ties count against the set).
    p = (1 + (null >= np.array(obs) - 1e-12).sum(0)) / (1 + n_perm)
    return {"silhouette_p": float(p[0]), "knn_self_share_p": float(p[1])}


def set_silhouette(d_rows: np.ndarray, codes: np.ndarray, target: int) -> float:
    """Mean silhouette of the rows labelled ``target``, from their distance rows ``d_rows`` [shape=(m, n)].

    Equal to ``silhouette_samples(d, codes, metric="precomputed")[codes == target].mean()``
    (checked in the tests), written out because the permutation test calls it thousands of times
    and sklearn's per-call validation cost 10x the arithmetic.
    """
    n_labels = int(codes.max()) + 1
    onehot = np.zeros((len(codes), n_labels))
    onehot[np.arange(len(codes)), codes] = 1.0
    sums = d_rows @ onehot  # (m, n_labels): summed distance from each set row to each label
    counts = onehot.sum(0)
    m = int(counts[target])
    if m < 2:
        return 0.0  # sklearn's convention for a singleton cluster
    a = sums[:, target] / (m - 1)  # the zero self-distance is in the sum; m - 1 others
    other = np.delete(sums / np.maximum(counts, 1), target, axis=1)
    other[:, np.delete(counts, target) == 0] = np.inf
    b = other.min(1)
    return float(np.mean((b - a) / np.maximum(a, b)))
