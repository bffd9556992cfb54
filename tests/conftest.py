"""Shared fixtures: paths to ``../shared`` (overridable by env) and small helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LAB_SHARED_DIR", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
WEIGHTS = SHARED / "weights"
MUSIC = SHARED / "music"
GTZAN_MINI = MUSIC / "gtzan_mini"
CARNATIC = MUSIC / "carnatic"

sys.path.insert(0, str(Path(__file__).parent))  # lets test modules `from conftest import ...`


def need(path: Path) -> Path:
    """Skip (with the reason) when a file from ../shared is truly absent."""
    if not Path(path).exists():
        pytest.skip(f"{path} is absent (set LAB_SHARED_DIR to the folder holding reference/, weights/, music/)")
    return Path(path)
