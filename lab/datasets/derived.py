"""Datasets made from other datasets: named parts, excerpts of long files, transformed audio.

Every derived item keeps the id of the item it comes from (``Clip.source_id``), so a study can
match items across datasets (an original and its pitch-shifted copy; the excerpts of one concert),
and every derived fingerprint includes the derivation, so the embedding cache never confuses a
derived item with its source.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Protocol

import numpy as np
import soundfile as sf

from lab.core.errors import LabError
from lab.core.storage import text_sha256
from lab.datasets.audio import AudioError
from lab.datasets.base import Clip, Dataset


class CompositeDataset(Dataset):
    """One dataset made of named parts (e.g. GTZAN + a folder of Carnatic recordings).

    Clip ids are prefixed ``<part>:`` and ``clip.part`` names the part; the label is the part
    name (``label_by="part"``) or the item's own label (``label_by="label"``, e.g. GTZAN genres
    beside one label per extra set). Loading and fingerprints are delegated to the part.
    """

    def __init__(self, name: str, parts: Mapping[str, Dataset], *, label_by: str | Mapping[str, str] = "label") -> None:
        if not parts:
            raise LabError(f"dataset {name!r} needs at least one part")
        by = {p: label_by for p in parts} if isinstance(label_by, str) else {p: label_by.get(p, "label") for p in parts}
        bad = {v for v in by.values() if v not in ("part", "label")}
        if bad:
            raise LabError(f"label_by={sorted(bad)[0]!r} must be 'part' or 'label'")
        self._origin: dict[str, tuple[Dataset, Clip]] = {}
        clips = []
        for pname, ds in parts.items():
            for c in ds.clips:
                clip = dataclasses.replace(c, id=f"{pname}:{c.id}", label=pname if by[pname] == "part" else c.label,
                                           source=f"{pname}:{c.source_id}", part=pname)
                self._origin[clip.id] = (ds, c)
                clips.append(clip)
        super().__init__(name=name, clips=clips, min_seconds=min(d.min_seconds for d in parts.values()),
                         synthetic=any(d.synthetic for d in parts.values()),
                         notes=[n for d in parts.values() for n in d.notes], root=";".join(d.root for d in parts.values()))
        self.parts = dict(parts)

    def load(self, clip: Clip, sr: int) -> np.ndarray:
        ds, original = self._origin[clip.id]
        return ds.load(original, sr)

    def fingerprint(self, clip: Clip) -> str:
        ds, original = self._origin[clip.id]
        return ds.fingerprint(original)


def audio_duration(path: str) -> float:
    """Length of an audio file in seconds from its header (no decoding); raises AudioError."""
    try:
        info = sf.info(path)
    except Exception as err:  # noqa: BLE001 - libsndfile raises several types; all mean unreadable
        raise AudioError(path, "unreadable", f"cannot read the audio header ({str(err).splitlines()[0][:200]})") from None
    return info.frames / info.samplerate


class ExcerptDataset(Dataset):
    """Long recordings cut into non-overlapping excerpts of ``seconds`` (tail kept if >= ``min_seconds``).

    Each excerpt is an item ``<id>@<offset>s`` with the source file, offset and length; a file
    shorter than ``min_seconds`` gives no item and is listed in ``skipped`` with its reason (as
    is a file whose header cannot be read).
    """

    def __init__(self, base: Dataset, *, seconds: float = 30.0, min_seconds: float | None = None) -> None:
        if not seconds > 0:
            raise LabError(f"excerpt seconds={seconds!r} must be positive")
        keep = base.min_seconds if min_seconds is None else float(min_seconds)
        self.skipped: list[tuple[Clip, str, str]] = []
        self._base = base
        clips = []
        for c in base.clips:
            try:
                total = audio_duration(c.path) - c.offset
            except AudioError as err:
                self.skipped.append((c, err.reason, err.detail))
                continue
            if c.duration is not None:
                total = min(total, c.duration)
            n = excerpt_count(total, seconds, keep)
            if n == 0:
                self.skipped.append((c, "too_short", f"audio lasts {total:.2f} s, shorter than the excerpt minimum {keep} s"))
                continue
            for i in range(n):
                off = c.offset + i * seconds
                dur = min(seconds, total - i * seconds)
                clips.append(dataclasses.replace(c, id=f"{c.id}@{i * seconds:g}s", source=c.source_id, offset=off, duration=dur))
        super().__init__(name=base.name, clips=clips, min_seconds=min(keep, base.min_seconds), synthetic=base.synthetic,
                         notes=list(base.notes), root=base.root)
        self.seconds = seconds



class AudioTransform(Protocol):
    """What :class:`TransformedDataset` needs of a transform (e.g. a pitch shift)."""

    key: str  # every parameter that changes the output, engine and version included

    def __call__(self, y: np.ndarray, sr: int, clip: Clip) -> np.ndarray: ...


class TransformedDataset(Dataset):
    """``base`` with ``transform`` applied to every item's decoded audio; ids and labels kept."""

    def __init__(self, base: Dataset, transform: AudioTransform, *, name: str | None = None) -> None:
        clips = [dataclasses.replace(c, source=c.source_id) for c in base.clips]
        super().__init__(name=name or base.name, clips=clips, min_seconds=base.min_seconds, synthetic=base.synthetic,
                         notes=list(base.notes), root=base.root)
        self._base, self.transform = base, transform
        self._by_id = {c.id: c for c in base.clips}

    def load(self, clip: Clip, sr: int) -> np.ndarray:
        from lab.datasets.audio import check_usable

        y = np.asarray(self.transform(self._base.load(self._by_id[clip.id], sr), sr, clip), dtype=np.float32)
        check_usable(y, sr=sr, path=clip.path, min_seconds=0.0)  # a transform must not produce NaN or silence
        return y

    def fingerprint(self, clip: Clip) -> str:
        return text_sha256(self._base.fingerprint(self._by_id[clip.id]), self.transform.key)


def excerpt_count(total_seconds: float, seconds: float, min_seconds: float) -> int:
    """How many excerpts of ``seconds`` fit ``total_seconds``, a tail counting if >= ``min_seconds``."""
    n_full = int(total_seconds // seconds)
    tail = total_seconds - n_full * seconds
    return n_full + (1 if tail > 0 and tail >= min_seconds else 0)

