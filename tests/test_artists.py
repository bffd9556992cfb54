"""Artists as a grouping: the packaged GTZAN artist list, ``Clip.group`` and :func:`lab.datasets.clip_groups`."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from lab.core.errors import LabError
from lab.datasets import Clip, CompositeDataset, Dataset, clip_groups
from lab.datasets.gtzan import artist_of, artists, fault_filtered_split, load_gtzan

from conftest import GTZAN_MINI, REFERENCE, need


def test_the_artist_list_covers_gtzan_and_agrees_with_the_fault_filtered_split():
    table = artists()
    assert len(table) == 1000 and sum(1 for a in table.values() if a) == 919
    assert table["blues.00000"] == "John Lee Hooker" and table["reggae.00087"] == "Lauryn Hill and Bob Marley"
    assert table["disco.00056"] == table["disco.00016"] == "Earth, Wind & Fire"  # one artist, one spelling
    # Kereliuk, Sturm & Larsen's split keeps artists apart: no named artist may straddle two of its parts.
    # An independent check of the transcription (a slip at a run boundary would show up here).
    parts = fault_filtered_split(need(REFERENCE / "gtzan_fault_filtered"))
    where = defaultdict(set)
    for song, part in parts.items():
        if table[song.rsplit("/", 1)[-1]]:
            where[table[song.rsplit("/", 1)[-1]]].add(part)
    assert {a: p for a, p in where.items() if len(p) > 1} == {}
    assert len(where) == 241  # distinct named artists in the split


def test_ids_of_excerpts_and_composite_parts_find_their_artist():
    assert artist_of("rock/rock.00003.wav") == "Morphine"
    assert artist_of("gtzan:jazz/jazz.00001.au@30s") == "Leonard Bernstein"
    assert artist_of("mine/unknown.wav") == ""


def test_gtzan_mini_is_29_groups_and_four_genres_are_a_single_artist():
    ds = load_gtzan(need(GTZAN_MINI))
    g = clip_groups(ds.clips)
    assert len(ds.clips) == 50 and len(set(g)) == 29
    per_genre = {lab: len(set(g[[c.label == lab for c in ds.clips]])) for lab in ds.labels}
    assert [lab for lab, n in per_genre.items() if n == 1] == ["blues", "classical", "reggae", "rock"]
    assert ds.clips[12].id == "country/country.00002.wav" and g[12] == "recording:country/country.00002.wav"  # unnamed
    assert len(set(clip_groups(ds.clips, "recording"))) == 50


def test_groups_outside_gtzan_are_recordings_and_survive_derivation():
    a = Dataset("a", [Clip("x.wav", "l", "/x.wav"), Clip("y.wav", "l", "/y.wav", artist="Queen")])
    assert list(clip_groups(a.clips)) == ["recording:x.wav", "artist:Queen"]
    both = CompositeDataset("ab", {"p": a, "q": a})
    # the same artist in two parts is one group; a recording is its part's copy
    assert list(clip_groups(both.clips)) == ["recording:p:x.wav", "artist:Queen", "recording:q:x.wav", "artist:Queen"]
    assert list(clip_groups(both.clips, "recording")) == ["p:x.wav", "p:y.wav", "q:x.wav", "q:y.wav"]
    with pytest.raises(LabError, match=r"group='album' must be one of artist, recording"):
        clip_groups(a.clips, "album")
    assert isinstance(clip_groups([], "artist"), np.ndarray)
