"""The unit a study resamples, cross-validates and splits by: one group id per clip.

Two clips in one group are not independent observations (excerpts of one recording, a song and
its pitch-shifted copy, and -- on GTZAN, which is ordered by artist (Sturm 2013) -- songs of one
artist). Every place that resamples songs (bootstrap), makes folds (cross-validation) or splits
songs into a fitting and a scoring part asks :func:`groups_of` for the group of each clip, so the
unit is changed in one place.

Today the group is the recording (``Clip.source_id``). Issue 21 adds artist ids for GTZAN; once
they land, :func:`groups_of` is the one function to point at them (``by="artist"``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lab.core.errors import LabError

GROUPINGS = ("recording",)  # "artist" joins when the artist ids of issue 21 land


def groups_of(clips: Sequence, *, by: str = "recording") -> np.ndarray:
    """Group id of each clip [shape=(len(clips),)], str.

    Parameters
    ----------
    clips : sequence of :class:`lab.datasets.base.Clip` (anything with a ``source_id``).
    by : ``recording`` -- clips cut from, or derived from, one recording share a group.
    """
    if by not in GROUPINGS:
        raise LabError(f"grouping by={by!r} is not available; choose one of {', '.join(GROUPINGS)}")
    return np.array([str(c.source_id) for c in clips], dtype=object).astype(str)
