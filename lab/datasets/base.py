"""Labelled collections of clips, and what they share: identity, labels, decoding, fingerprints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab import audio
from lab.models.weights import file_sha256


@dataclass(frozen=True)
class Clip:
    """One song: a stable id (``jazz/jazz.00001.wav``), its label, and where its audio comes from."""

    id: str
    label: str
    path: str  # a file path, or a ``synth://`` URI for generated clips


@dataclass
class Dataset:
    """A labelled list of clips. Subclasses override :meth:`load` / :meth:`fingerprint` for non-file audio."""

    name: str
    clips: list[Clip]
    min_seconds: float = 1.0
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """Sorted distinct labels."""
        return sorted({c.label for c in self.clips})

    def load(self, clip: Clip, sr: int) -> np.ndarray:
        """Decoded mono float32 audio of ``clip`` at ``sr``; raises :class:`lab.audio.AudioError`."""
        return audio.load(clip.path, sr=sr, min_seconds=self.min_seconds)

    def fingerprint(self, clip: Clip) -> str:
        """SHA-256 of the clip's bytes: the audio-content part of the embedding cache key."""
        try:
            return file_sha256(clip.path)
        except OSError:
            return "unreadable:" + clip.path


AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")


def scan_labelled_folders(root: Path, extensions: tuple[str, ...]) -> list[Clip]:
    """Clips of every ``root/<label>/<file>`` with a matching extension, sorted by id."""
    clips = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(label_dir.rglob("*")):
            # Links that point nowhere (or at themselves) are kept: they are skipped later with a
            # counted reason instead of vanishing from the dataset without a word.
            if (f.is_file() or f.is_symlink()) and f.suffix.lower() in extensions and not f.name.startswith("."):
                clips.append(Clip(id=f"{label_dir.name}/{f.relative_to(label_dir).as_posix()}", label=label_dir.name, path=str(f)))
    return clips
