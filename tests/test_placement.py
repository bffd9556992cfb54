"""Placement numbers (lab/studies/out_of_domain/placement.py) on synthetic embeddings with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab.core.errors import LabError
from lab.studies.out_of_domain import placement

DIAMOND = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # 4 points at radius 1 round the centre
DIAMOND_SPREAD = (4 * math.sqrt(2) + 2 * 2) / 6  # 4 neighbouring pairs at sqrt(2), 2 opposite pairs at 2
CENTRES = {"rock": (0.0, 0.0), "carnatic": (10.0, 0.0), "jazz": (0.0, 10.0)}


def space(extra: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Three reference genres (diamonds round CENTRES) plus ``extra`` sets."""
    parts = {g: DIAMOND + np.array(c) for g, c in CENTRES.items()} | (extra or {})
    X = np.concatenate(list(parts.values()))
    labels = np.concatenate([[name] * len(v) for name, v in parts.items()])
    return X, labels


def test_halfway_fusion_has_position_half_and_no_offset():
    X, y = space({"carnatic_rock": DIAMOND * 0.5 + np.array([5.0, 0.0])})
    r = placement.fusion_position(X, y, "carnatic_rock", ("rock", "carnatic"))
    assert r["position"] == pytest.approx(0.5)
    assert r["offset"] == pytest.approx(0.0, abs=1e-12)
    assert r["parent_distance"] == pytest.approx(10.0)
    # Parents in the other order flip the position, not the offset.
    assert placement.fusion_position(X, y, "carnatic_rock", ("carnatic", "rock"))["position"] == pytest.approx(0.5)


def test_fusion_off_the_segment_and_beyond_a_parent():
    X, y = space({"f": DIAMOND + np.array([5.0, 5.0]), "g": DIAMOND + np.array([15.0, 0.0])})
    above = placement.fusion_position(X, y, "f", ("rock", "carnatic"))
    assert above["position"] == pytest.approx(0.5) and above["offset"] == pytest.approx(0.5)
    beyond = placement.fusion_position(X, y, "g", ("rock", "carnatic"))
    # t is not clipped (1.5 = half a parent distance past carnatic); the offset is to the segment's end.
    assert beyond["position"] == pytest.approx(1.5) and beyond["offset"] == pytest.approx(0.5)
    t = placement.item_positions(X[y == "g"], np.array([0.0, 0.0]), np.array([10.0, 0.0]))
    np.testing.assert_allclose(t, [1.6, 1.4, 1.5, 1.5])


def test_copy_of_a_genre_ranks_it_first_and_is_not_its_own_neighbourhood():
    X, y = space({"copy": DIAMOND + np.array(CENTRES["jazz"])})
    ranking = placement.rank_reference(X, y, "copy", list(CENTRES))
    assert ranking[0] == ("jazz", pytest.approx(0.0))
    assert [g for g, _ in ranking] == ["jazz", "rock", "carnatic"]  # rock 10 away, carnatic sqrt(200)
    assert ranking[2][1] == pytest.approx(math.sqrt(200))
    for k in (1, 3, 5):
        r = placement.knn_self_share(X, y, "copy", k=k)
        # Every item's twin in jazz is at distance 0, so no item has a majority of its own set around it.
        assert r["knn_self_share"] == 0.0
        assert r["knn_nearest_other"] == "jazz"
    assert placement.knn_self_share(X, y, "copy", k=1)["knn_self_fraction"] == 0.0


def test_separate_cluster_is_its_own_neighbourhood():
    X, y = space({"gaana": DIAMOND + np.array([-20.0, -20.0])})
    r = placement.knn_self_share(X, y, "gaana", k=3)
    assert r == {"knn_self_share": 1.0, "knn_self_fraction": 1.0, "knn_nearest_other": ""}
    # k = 4 reaches outside the 4-item set: 3 of 4 neighbours are its own, still a majority.
    r4 = placement.knn_self_share(X, y, "gaana", k=4)
    assert r4["knn_self_share"] == 1.0 and r4["knn_self_fraction"] == pytest.approx(0.75)


def test_spread_ratio_compares_with_the_reference_genres():
    X, y = space({"tight": DIAMOND + np.array([30.0, 30.0]), "loose": 2 * DIAMOND + np.array([-30.0, 30.0])})
    ref = list(CENTRES)
    tight = placement.compactness(X, y, "tight", ref)
    assert tight["spread"] == pytest.approx(DIAMOND_SPREAD)
    assert tight["reference_spread"] == pytest.approx(DIAMOND_SPREAD)
    assert tight["spread_ratio"] == pytest.approx(1.0)
    assert placement.compactness(X, y, "loose", ref)["spread_ratio"] == pytest.approx(2.0)


def test_silhouette_by_hand():
    # Set {0, 1} beside genre {10, 11} on a line. Item 0: a = 1, b = (10 + 11) / 2; item 1: a = 1, b = (9 + 10) / 2.
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    y = ["s", "s", "g", "g"]
    expected = ((1 - 1 / 10.5) + (1 - 1 / 9.5)) / 2
    assert placement.compactness(X, y, "s", ["g"])["silhouette"] == pytest.approx(expected)


def test_tag_summaries():
    names = ["genre---rock", "genre---world", "mood---happy", "genre---hiphop", "instrument---voice"]
    tags = np.array([
        [0.1, 0.6, 0.2, 0.0, 0.9],  # top tag voice, top genre world
        [0.1, 0.5, 0.7, 0.0, 0.2],  # top tag happy, top genre world
        [0.4, 0.1, 0.1, 0.3, 0.8],  # top tag voice, top genre rock
        [0.1, 0.2, 0.1, 0.3, 0.9],  # top tag voice, top genre hiphop
    ])
    assert placement.top_tags(tags, names, top=2) == [("instrument---voice", 0.75), ("mood---happy", 0.25)]
    # Top 2 per item: voice+world, happy+world, voice+rock, voice+hiphop.
    assert placement.top_tags(tags, names, top=3, per_item=2) == [("instrument---voice", 0.75), ("genre---world", 0.5),
                                                                   ("genre---rock", 0.25)]
    np.testing.assert_array_equal(placement.tag_ranks(tags, names, "genre---world"), [2, 2, 4, 3])
    shares, top = placement.genre_tag_shares(tags, names, ["rock", "Hip-Hop", "blues"])
    assert shares == {"rock": 0.25, "Hip-Hop": 0.25, "blues": 0.0}  # blues has no Jamendo tag
    assert top == [("world", 0.5), ("hiphop", 0.25), ("rock", 0.25)]


def test_bad_input_is_one_sentence():
    X, y = space()
    with pytest.raises(LabError, match="no item is labelled 'gaana'"):
        placement.rank_reference(X, y, "gaana", list(CENTRES))
    with pytest.raises(LabError, match="k=12 nearest neighbours"):
        placement.knn_self_share(X, y, "rock", k=12)
    with pytest.raises(LabError, match="two different parents"):
        placement.fusion_position(X, y, "rock", ("jazz", "jazz"))
    with pytest.raises(LabError, match="NaN"):
        placement.compactness(np.full_like(X, np.nan), y, "rock", list(CENTRES))


def test_bootstrap_of_a_clear_placement_is_stable():
    X, y = space({"f": DIAMOND * 0.5 + np.array([5.0, 0.2])})
    b = placement.bootstrap(X, y, "f", list(CENTRES), parents=("rock", "carnatic"), n_boot=200, seed=0)
    # f is equidistant from rock and carnatic, so resampling flips its nearest genre.
    assert 0.0 < b["nearest_stability"] < 1.0
    assert b["position_lo"] < 0.5 < b["position_hi"] and b["position_hi"] - b["position_lo"] < 0.2
    far = placement.bootstrap(*space({"g": DIAMOND + np.array([0.0, 30.0])}), "g", list(CENTRES), n_boot=200)
    assert far == {"nearest_stability": 1.0}  # 20 beyond jazz, 30 from rock: always jazz


def test_permutation_p_values():
    X, y = space({"gaana": DIAMOND + np.array([-20.0, -20.0])})
    p = placement.permutation_test(X, y, "gaana", k=3, n_perm=199, seed=0)
    # A separate, tight cluster: hardly any random 4 of 16 labels beat it (p near the floor 1/200).
    assert p["silhouette_p"] <= 0.02 and p["knn_self_share_p"] <= 0.02
    Xc, yc = space({"copy": DIAMOND + np.array(CENTRES["jazz"])})
    pc = placement.permutation_test(Xc, yc, "copy", k=1, n_perm=199, seed=0)
    assert pc["knn_self_share_p"] == 1.0  # self-share 0: every random draw ties or beats it


def test_set_silhouette_equals_sklearn():
    from sklearn.metrics import pairwise_distances, silhouette_samples

    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    codes = rng.integers(0, 4, size=30)
    d = pairwise_distances(X)
    for target in range(4):
        expected = silhouette_samples(d, codes, metric="precomputed")[codes == target].mean()
        assert placement.set_silhouette(d[codes == target], codes, target) == pytest.approx(expected, abs=1e-12)
