"""Shared fixtures: paths to ``../shared`` (overridable by env) and small helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here: telemetry would wait for a time-out

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


@pytest.fixture
def compose_cfg(tmp_path, monkeypatch):
    """Compose the lab config with Hydra's compose API; paths point into ``tmp_path``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LAB_CACHE_DIR", raising=False)

    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        base = [f"paths.mlruns={tmp_path / 'mlruns'}", f"paths.cache={tmp_path / 'cache'}",
                f"paths.weights={WEIGHTS}", f"paths.reference={REFERENCE}", "embed.progress=false"]
        with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
            return compose(config_name="config", overrides=base + list(overrides))

    yield _compose
    GlobalHydra.instance().clear()
