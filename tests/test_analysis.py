"""Rogue-song scoring and genre ordering on hand-made embeddings with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from lab.stats.genres import GTZAN_ORDER, genre_order, rogue_scores, top_rogues


def _blobs():
    rng = np.random.default_rng(0)
    centres = {"a": [0, 0], "b": [10, 0], "c": [0, 10]}
    X, y = [], []
    for g, c in centres.items():
        X.append(np.asarray(c) + 0.5 * rng.standard_normal((8, 2)))
        y += [g] * 8
    X = np.concatenate(X)
    X[0] = [10.2, 0.1]  # an "a" song deep inside "b"
    X[8] = [5.0, 0.0]  # a "b" song on the a/b border
    return X, np.array(y)


def test_song_deep_in_another_genre_is_the_top_rogue():
    X, y = _blobs()
    rows = top_rogues(X, y, [f"s{i}" for i in range(len(y))], [f"/p/{i}.wav" for i in range(len(y))])
    assert rows[0]["id"] == "s0" and rows[0]["genre"] == "a" and rows[0]["sits_in"] == "b"
    assert rows[0]["path"] == "/p/0.wav" and rows[0]["knn_fraction"] == 1.0


def test_border_song_is_not_rogue():
    X, y = _blobs()
    s = rogue_scores(X, y)
    assert s[0]["rogue"] and not s[8]["rogue"]
    assert sum(r["rogue"] for r in s) == 1


def test_genre_order_uses_gtzan_genealogy_or_dendrogram():
    X, y = _blobs()
    assert genre_order(np.zeros((10, 2)), np.array(list(GTZAN_ORDER))) == list(GTZAN_ORDER)
    # two families of three genres, far apart; alphabetical order would interleave them
    X2 = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    labels = np.array(["a_low", "c_low", "e_low", "b_high", "d_high", "f_high"])
    order = genre_order(X2, labels)
    assert sorted(order) == sorted(labels)
    for family in ("low", "high"):  # each family's genres occupy consecutive positions
        pos = sorted(order.index(g) for g in labels if g.endswith(family))
        assert pos == list(range(pos[0], pos[0] + 3)), order


@pytest.mark.slow
def test_fcn_finds_jazz_00001_inside_classical_on_gtzan_mini(compose_cfg):
    """The study's (after Sturm 2013) textbook rogue: an orchestral piece filed under jazz."""
    from lab.extract.pipeline import load_embeddings

    from conftest import GTZAN_MINI, WEIGHTS, need

    need(GTZAN_MINI), need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    _, emb = load_embeddings(compose_cfg("dataset=gtzan", f"dataset.root={GTZAN_MINI}", "model=fcn"))
    rows = top_rogues(emb.X, emb.labels, emb.ids, list(emb.paths))
    found = {r["id"]: r["sits_in"] for r in rows}
    assert found.get("jazz/jazz.00001.wav") == "classical", rows
