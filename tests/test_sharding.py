"""embed.shard=I/N: which clips a shard owns (pure function; the cache test is in test_extract.py)."""

from __future__ import annotations

import pytest

from lab.core.errors import LabError
from lab.extract.sharding import parse_shard, shard_indices, shard_of


@pytest.mark.parametrize("layout", ["", ":stride", ":block"])
@pytest.mark.parametrize("n,k", [(0, 1), (1, 3), (10, 1), (10, 3), (50, 7), (7, 7), (5, 8)])
def test_shards_are_disjoint_and_cover_everything(n, k, layout):
    parts = [shard_indices(n, f"{i}/{k}{layout}") for i in range(k)]
    flat = [p for part in parts for p in part]
    assert sorted(flat) == list(range(n)) and len(flat) == n
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1  # balanced
    assert all(p == sorted(p) for p in parts)


def test_layouts():
    assert shard_indices(10, "1/3") == [1, 4, 7]
    assert shard_indices(10, "1/3:block") == [3, 4, 5]
    assert shard_indices(4, None) == shard_indices(4, "") == [0, 1, 2, 3]
    assert parse_shard(" 2 / 4 ") == (2, 4, "stride")


def test_positions_follow_sorted_ids_not_listing_order():
    ids = ["c", "a", "d", "b"]
    assert [ids[j] for j in shard_of(ids, "0/2")] == ["c", "a"]  # sorted: a b c d -> shard 0 = a, c
    assert sorted(shard_of(ids, "0/2") + shard_of(ids, "1/2")) == [0, 1, 2, 3]


@pytest.mark.parametrize("spec,msg", [("4/4", "must be in 0..3"), ("1/0", ">= 1"), ("a/b", "must look like I/N"),
                                      ("1-4", "must look like I/N"), ("0/2:zigzag", "unknown")])
def test_bad_specs_say_what_is_expected(spec, msg):
    with pytest.raises(LabError, match=msg):
        shard_indices(10, spec)


def test_bad_n():
    with pytest.raises(LabError, match="non-negative"):
        shard_indices(-1, "0/2")
