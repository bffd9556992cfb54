"""GTZAN (Tzanetakis & Cook 2002): 1000 30-s excerpts, 10 genres, label = genre folder.

Accepted layouts under ``root``: ``genres/<genre>/<genre>.NNNNN.{wav,au}`` (the original tarball),
``genres_original/<genre>/...`` (the common Kaggle copy) or the genre folders directly.
``split=fault_filtered`` keeps only the 930 files of Kereliuk, Sturm & Larsen's fault-filtered
split (lists in ``split_dir``), dropping GTZAN's repeated, mislabelled and distorted excerpts.

Every clip carries its artist (``Clip.artist``) from ``gtzan_artists.csv`` beside this module
(Sturm's identification of the excerpts; source and edits in the file's header): 919 of the 1000
excerpts are named, the other 81 are their own group (``Clip.group`` falls back to the recording).
GTZAN is ordered by artist, so the first files of a genre are often one artist: in ``gtzan_mini``
blues, classical, reggae and rock are each a single artist.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
from importlib import resources
from pathlib import Path

from lab.core.errors import LabError
from lab.datasets.base import Dataset, scan_labelled_folders

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def _genre_root(root: Path) -> Path:
    for sub in ("genres", "genres_original", "Data/genres_original"):
        if (root / sub).is_dir():
            return root / sub
    if any((root / g).is_dir() for g in GENRES):
        return root
    raise LabError(
        f"dataset.root={root} does not look like GTZAN: expected genres/<genre>/<genre>.NNNNN.wav "
        f"(or genres_original/) inside it"
    )


SPLIT_PARTS = ("train", "valid", "test")


def fault_filtered_split(split_dir: str | Path) -> dict[str, str]:
    """``{"blues/blues.00029": "train", ...}``: the part of every file of the fault-filtered split.

    Keys are GTZAN ids without extension (``<genre>/<genre>.NNNNN``), as :func:`split_of` looks them up.
    """
    split_dir = Path(split_dir)
    files = [split_dir / f"{part}_filtered.txt" for part in SPLIT_PARTS]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise LabError(f"dataset.split=fault_filtered needs the split lists, but {missing[0]} is missing (set dataset.split_dir)")
    parts: dict[str, str] = {}
    for part, f in zip(SPLIT_PARTS, files):
        for line in f.read_text().splitlines():
            if line.strip():
                parts[Path(line.strip()).with_suffix("").as_posix()] = part
    return parts


def split_of(clip_id: str, parts: dict[str, str]) -> str | None:
    """The fault-filtered part (``train``/``valid``/``test``) of GTZAN clip ``clip_id``, or None.

    ``clip_id`` is ``<genre>/<genre>.NNNNN.<ext>``; an excerpt id (``...@12.0s``) or a prefixed
    composite id (``part:...``) is looked up by the song it comes from.
    """
    song = clip_id.split("@", 1)[0].rsplit(":", 1)[-1]
    return parts.get(Path(song).with_suffix("").as_posix())


@functools.cache
def artists() -> dict[str, str]:
    """``{"blues.00000": "John Lee Hooker", ...}``: the artist of every GTZAN excerpt ("" = not identified)."""
    text = resources.files("lab.datasets").joinpath("gtzan_artists.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {r["file"]: r["artist"].strip() for r in rows}


def artist_of(clip_id: str) -> str:
    """The artist of GTZAN clip ``clip_id`` (``<genre>/<genre>.NNNNN.<ext>``, excerpt or composite ids too), or ""."""
    song = clip_id.split("@", 1)[0].rsplit(":", 1)[-1]
    return artists().get(Path(song).stem, "")


def _fault_filtered_ids(split_dir: Path) -> set[str]:
    return set(fault_filtered_split(split_dir))


def load_gtzan(root: str | Path, *, min_seconds: float = 1.0, split: str = "all", split_dir: str | Path | None = None,
               name: str = "gtzan") -> Dataset:
    """Scan a GTZAN folder into a :class:`Dataset` (no audio is decoded here)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise LabError(f"dataset.root={root} does not exist; point it at your GTZAN folder (the one holding genres/)")
    clips = scan_labelled_folders(_genre_root(root), (".wav", ".au"))
    if split == "fault_filtered":
        keep = _fault_filtered_ids(Path(split_dir or ""))
        clips = [c for c in clips if Path(c.id).with_suffix("").as_posix() in keep]
    elif split != "all":
        raise LabError(f"dataset.split={split!r} must be 'all' or 'fault_filtered'")
    if not clips:
        raise LabError(f"dataset.root={root} holds no GTZAN audio files (.wav or .au)")
    clips = [dataclasses.replace(c, artist=artist_of(c.id)) for c in clips]
    return Dataset(name=name, clips=clips, min_seconds=min_seconds, root=str(root))
