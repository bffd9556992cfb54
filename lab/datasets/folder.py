"""Any labelled audio folder: ``root/<label>/**/<file>.{wav,flac,ogg,mp3,...}``, label = sub-folder."""

from __future__ import annotations

from pathlib import Path

from lab.datasets.base import AUDIO_EXTENSIONS, Dataset, scan_labelled_folders
from lab.errors import LabError


def load_folder(root: str | Path, *, min_seconds: float = 1.0, extensions: tuple[str, ...] = AUDIO_EXTENSIONS, name: str = "folder") -> Dataset:
    """Scan ``root`` whose sub-folders are labels into a :class:`Dataset`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise LabError(f"dataset.root={root} does not exist; give a folder whose sub-folders are labels")
    exts = tuple(e if e.startswith(".") else "." + e for e in (x.lower() for x in extensions))
    clips = scan_labelled_folders(root, exts)
    if not clips:
        raise LabError(f"dataset.root={root} has no audio files ({', '.join(exts)}) inside label sub-folders")
    return Dataset(name=name, clips=clips, min_seconds=min_seconds)
