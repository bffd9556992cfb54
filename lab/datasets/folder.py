"""Any folder of audio: ``root/<label>/**/<file>``, label = first sub-folder; files directly in
``root`` are one set labelled with the folder's own name (``dataset.label`` names the dataset)."""

from __future__ import annotations

from pathlib import Path

from lab.core.errors import LabError
from lab.datasets.base import AUDIO_EXTENSIONS, Dataset, scan_labelled_folders


def load_folder(root: str | Path, *, min_seconds: float = 1.0, extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
                name: str = "folder", label: str | None = None) -> Dataset:
    """Scan ``root`` into a :class:`Dataset`; ``name`` is shown in MLflow (``label`` is an alias kept for old configs)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise LabError(f"dataset.root={root} does not exist; give a folder of audio files (sub-folders = labels)")
    exts = tuple(e if e.startswith(".") else "." + e for e in (x.lower() for x in extensions))
    clips = scan_labelled_folders(root, exts, flat_label=root.name)
    if not clips:
        raise LabError(f"dataset.root={root} has no audio files ({', '.join(exts)})")
    return Dataset(name=label or name, clips=clips, min_seconds=min_seconds, root=str(root))
