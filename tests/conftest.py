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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on 127.0.0.1 (SQLite store, proxied artifacts), stopped after the test."""
    import subprocess
    import time
    import urllib.request

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LAB_CACHE_DIR")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination", str(tmp_path / "server-artifacts")],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if urllib.request.urlopen(url + "/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("mlflow server did not start: " + (tmp_path / "server.log").read_text()[-2000:])
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
