"""Labelled collections of clips, and what they share: identity, labels, decoding, fingerprints."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from lab.core.errors import LabError
from lab.core.storage import file_sha256
from lab.datasets import audio


@dataclass(frozen=True)
class Clip:
    """One item: a stable id (``jazz/jazz.00001.wav``), its label, and where its audio comes from.

    Derived items (an excerpt of a long file, a pitch-shifted copy, a part of a composite dataset)
    keep the id of the item they come from in ``source``, so studies can match them across
    datasets; ``offset``/``duration`` (seconds) select an excerpt of ``path``. ``artist`` is set
    where a dataset knows it (GTZAN: :mod:`lab.datasets.gtzan`); :attr:`group` is the unit that
    cross-validation and resampling must never split (see :func:`clip_groups`).
    """

    id: str
    label: str
    path: str  # a file path, or a ``synth://`` URI for generated clips
    source: str = ""  # id of the original item ("" = this item is an original)
    offset: float = 0.0  # seconds into ``path``
    duration: float | None = None  # seconds; None = to the end
    part: str = ""  # name of the composite-dataset part holding it ("" outside composites)
    artist: str = ""  # performing artist where the dataset knows it ("" = unknown)

    @property
    def source_id(self) -> str:
        """The id of the original item this one derives from (its own id for originals)."""
        return self.source or self.id

    @property
    def group(self) -> str:
        """``artist:<name>`` where the artist is known, else ``recording:<source_id>``.

        Songs of one artist share production, voice and instrumentation; a test song whose artist
        is also in the training songs measures artist recognition as much as genre (Sturm 2013).
        """
        return f"artist:{self.artist}" if self.artist else f"recording:{self.source_id}"


@dataclass
class Dataset:
    """A labelled list of clips. Subclasses override :meth:`load` / :meth:`fingerprint` for non-file audio."""

    name: str
    clips: list[Clip]
    min_seconds: float = 1.0
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)
    root: str = ""  # where the audio lives (shown as the dataset's source in MLflow)

    has_audio = True  # False for items known only by their vectors (ItemsDataset)

    @property
    def labels(self) -> list[str]:
        """Sorted distinct labels."""
        return sorted({c.label for c in self.clips})

    def load(self, clip: Clip, sr: int) -> np.ndarray:
        """Decoded mono float32 audio of ``clip`` at ``sr``; raises :class:`lab.datasets.audio.AudioError`."""
        return audio.load(clip.path, sr=sr, min_seconds=self.min_seconds, offset=clip.offset, duration=clip.duration)

    def fingerprint(self, clip: Clip) -> str:
        """Identity of the clip's audio for the embedding cache: the file's SHA-256 (+ the excerpt)."""
        try:
            digest = file_sha256(clip.path)
        except OSError:
            digest = "unreadable:" + clip.path
        if clip.offset or clip.duration is not None:
            digest += f"@{clip.offset:.6f}+{clip.duration}"
        return digest

    def subset(self, indices: Sequence[int]) -> "Dataset":
        """The same dataset restricted to ``clips[i] for i in indices`` (loading unchanged)."""
        sub = copy.copy(self)
        sub.clips = [self.clips[i] for i in indices]
        return sub


class ItemsDataset(Dataset):
    """Items known only by id, label and a vector computed elsewhere (an embeddings file): no audio.

    ``clip.path`` is the file the items come from; ``clip.part`` names an item's out-of-domain set.
    """

    has_audio = False

    def load(self, clip: Clip, sr: int) -> np.ndarray:
        raise LabError(f"item {clip.id!r} of {self.name} comes from an embeddings file ({clip.path}); it has no audio")

    def fingerprint(self, clip: Clip) -> str:
        return f"items:{clip.path}:{clip.id}"


GROUP_UNITS = ("artist", "recording")


def clip_groups(clips: Sequence[Clip], unit: str = "artist") -> np.ndarray:
    """The unit each clip belongs to, for grouped cross-validation and resampling [shape=(n_clips,)].

    ``unit="artist"``: :attr:`Clip.group` (the artist where known, else the recording);
    ``unit="recording"``: :attr:`Clip.source_id` (excerpts and transformed copies of one recording
    together, artists ignored: the lab's behaviour before artists were known). Clips with equal
    values must stay on one side of a split and be drawn together by a bootstrap.
    """
    if unit not in GROUP_UNITS:
        raise LabError(f"group={unit!r} must be one of {', '.join(GROUP_UNITS)} (the unit never split by folds or resampling)")
    return np.array([c.group if unit == "artist" else c.source_id for c in clips], dtype=object)


AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")


def _audio_files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    # Links that point nowhere (or at themselves) are kept: they are skipped later with a counted
    # reason instead of vanishing from the dataset without a word.
    return sorted(f for f in folder.rglob("*") if (f.is_file() or f.is_symlink()) and f.suffix.lower() in extensions
                  and not f.name.startswith("."))


def scan_labelled_folders(root: Path, extensions: tuple[str, ...], *, flat_label: str | None = None) -> list[Clip]:
    """Clips of every ``root/<label>/**/<file>`` with a matching extension, sorted by id.

    Files directly in ``root`` get ``flat_label`` (skipped when it is None), so a flat folder of
    recordings is one labelled set.
    """
    clips = []
    if flat_label is not None:
        clips += [Clip(id=f.name, label=flat_label, path=str(f))
                  for f in sorted(root.iterdir()) if f.is_file() and f.suffix.lower() in extensions and not f.name.startswith(".")]
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in _audio_files(label_dir, extensions):
            clips.append(Clip(id=f"{label_dir.name}/{f.relative_to(label_dir).as_posix()}", label=label_dir.name, path=str(f)))
    return clips
