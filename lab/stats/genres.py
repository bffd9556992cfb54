"""Error analysis of an embedding space: genre ordering and "rogue" songs.

Rogue songs sit deep inside another genre's region, not on a border. A song is scored with two
views that must agree:

* centroid ratio ``r = d(x, own centroid) / d(x, nearest other centroid)`` — own centroid
  computed without the song itself (leave-one-out), Euclidean distance in the raw embedding space
  the clusterers see. ``r > 1`` means the song is nearer another genre's centre than its own.
* k-NN agreement: the fraction of the song's ``n_neighbors`` nearest songs that belong to that
  other genre.

A song is *rogue* when ``r > 1`` and at least half its neighbours come from the genre it sits in;
rogues are ranked by ``score = r * knn_fraction``. (In GTZAN, jazz.00001 — an orchestral piece
filed under jazz — is the textbook case.)
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from sklearn.neighbors import NearestNeighbors

# Related GTZAN genres side by side, after the genealogy the study uses (Musicmap): art music
# (classical, jazz), the blues family (blues, country, rock, metal), then dance/pop (pop, disco)
# and the Afro-Caribbean / urban branch (reggae, hiphop).
GTZAN_ORDER = ("classical", "jazz", "blues", "country", "rock", "metal", "pop", "disco", "reggae", "hiphop")


def genre_order(X: np.ndarray, labels: np.ndarray) -> list[str]:
    """Genres ordered so related ones sit together.

    GTZAN's ten genres use :data:`GTZAN_ORDER`; any other label set is ordered by the leaves of
    an average-linkage dendrogram of the genre centroids (nearest genres end up adjacent).
    """
    genres = sorted(set(labels.tolist()))
    if set(genres) == set(GTZAN_ORDER):
        return list(GTZAN_ORDER)
    if len(genres) < 3:
        return genres
    centroids = np.stack([X[labels == g].mean(0) for g in genres])
    return [genres[i] for i in leaves_list(linkage(centroids, method="average"))]


def rogue_scores(X: np.ndarray, labels: np.ndarray, *, n_neighbors: int = 5) -> list[dict]:
    """Per-song centroid ratio, k-NN agreement and the genre it sits in, for every song.

    X : np.ndarray [shape=(n_clips, dim)]; labels : np.ndarray [shape=(n_clips,)].
    Returns one dict per song (row order kept): ``sits_in``, ``ratio``, ``knn_fraction``,
    ``score``, ``rogue`` (bool).
    """
    labels = np.asarray(labels)
    genres = sorted(set(labels.tolist()))
    sums = {g: X[labels == g].sum(0) for g in genres}
    counts = {g: int((labels == g).sum()) for g in genres}
    k = int(min(n_neighbors, len(X) - 1))
    nn = NearestNeighbors(n_neighbors=k + 1).fit(X)
    _, idx = nn.kneighbors(X)
    out = []
    for i, (x, g) in enumerate(zip(X, labels)):
        # leave-one-out own centroid: a song should not pull its own genre's centre towards itself
        own = (sums[g] - x) / (counts[g] - 1) if counts[g] > 1 else sums[g]
        d_own = float(np.linalg.norm(x - own))
        others = [(float(np.linalg.norm(x - sums[h] / counts[h])), h) for h in genres if h != g]
        if not others:
            out.append({"sits_in": g, "ratio": 0.0, "knn_fraction": 0.0, "score": 0.0, "rogue": False})
            continue
        d_other, h = min(others)
        neigh = [j for j in idx[i] if j != i][:k]
        frac = float(np.mean(labels[neigh] == h)) if neigh else 0.0
        ratio = d_own / max(d_other, 1e-12)
        out.append({"sits_in": h, "ratio": ratio, "knn_fraction": frac, "score": ratio * frac,
                    "rogue": bool(ratio > 1.0 and frac >= 0.5)})
    return out


ROGUE_COLUMNS = ("row", "id", "genre", "sits_in", "score", "centroid_ratio", "knn_fraction", "path")


def top_rogues(X: np.ndarray, labels: np.ndarray, ids: list[str], paths: list[str], *, n_neighbors: int = 5, top: int = 10) -> list[dict]:
    """The ``top`` rogue songs, most rogue first, as CSV-ready rows (with the audio path)."""
    rows = []
    for i, s in enumerate(rogue_scores(X, labels, n_neighbors=n_neighbors)):
        if s["rogue"]:
            rows.append({"row": i, "id": ids[i], "genre": labels[i], "sits_in": s["sits_in"], "score": round(s["score"], 4),
                         "centroid_ratio": round(s["ratio"], 4), "knn_fraction": round(s["knn_fraction"], 3), "path": paths[i]})
    rows.sort(key=lambda r: -r["score"])
    return rows[:top]
