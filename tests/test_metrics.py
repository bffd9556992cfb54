"""Hungarian accuracy on hand-made labellings with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from lab.stats.metrics import UNASSIGNED, confusion, evaluate, hungarian_accuracy, hungarian_assignment


def test_perfect_clustering_with_permuted_ids_scores_one():
    y = np.array(["a", "a", "b", "b", "c", "c"])
    assert hungarian_accuracy(y, np.array([2, 2, 0, 0, 1, 1])) == 1.0


def test_one_song_in_the_wrong_cluster():
    y = np.array(["a", "a", "a", "b", "b", "b"])
    assert hungarian_accuracy(y, np.array([1, 1, 0, 0, 0, 0])) == pytest.approx(5 / 6)


def test_fewer_clusters_than_genres_counts_unmatched_genre_as_wrong():
    # 3 genres, 2 clusters: genre c has no cluster of its own -> its 2 songs are wrong.
    y = np.array(["a", "a", "b", "b", "c", "c"])
    pred = np.array([0, 0, 1, 1, 1, 1])
    a = hungarian_assignment(y, pred)
    assert a.accuracy == pytest.approx(4 / 6)
    assert a.cluster_to_genre == {0: "a", 1: "b"}


def test_more_clusters_than_genres_leaves_extra_cluster_unassigned():
    y = np.array(["a", "a", "a", "b", "b", "b"])
    pred = np.array([0, 0, 2, 1, 1, 1])  # cluster 2 holds one "a" but "a" is taken by cluster 0
    a = hungarian_assignment(y, pred)
    assert a.accuracy == pytest.approx(5 / 6)
    assigned = a.assigned(pred)
    assert assigned[2] == UNASSIGNED
    cm, cols = confusion(y, assigned, a.genres)
    assert cols == ["a", "b", UNASSIGNED]
    assert cm.tolist() == [[2, 0, 1], [0, 3, 0]]


def test_hungarian_beats_greedy_majority_mapping():
    # Greedy "cluster -> its majority genre" would map both clusters to "a" (accuracy 4/6 with collisions);
    # one-to-one matching must give cluster 1 to "b": 3 (a in c0) + 2 (b in c1) = 5/7.
    y = np.array(["a", "a", "a", "b", "b", "a", "a"])
    pred = np.array([0, 0, 0, 1, 1, 1, 1])
    assert hungarian_accuracy(y, pred) == pytest.approx(5 / 7)


def test_evaluate_reports_all_scores_and_validates_shapes():
    y = np.array([0, 0, 1, 1])
    s = evaluate(y, np.array([1, 1, 0, 0]))
    assert s == {"accuracy": 1.0, "nmi": 1.0, "ami": 1.0, "ari": 1.0, "v_measure": 1.0}
    with pytest.raises(ValueError, match="must equal"):
        evaluate(y, np.array([0, 1]))
