"""Bad audio: every file is embedded correctly or skipped with a reason in skipped_files.csv, and
no NaN reaches an embedding or a metric (issue 11, "Robustness with figures").

The zoo (``badaudio.make``) is cut from one real GTZAN clip: truncated / corrupt WAV and MP3,
zero-byte, header-only, wrong extensions, silence, NaN and inf float samples, 0.5 s, 8 and 96 kHz,
6 channels, 10 minutes, no read permission, a dangling link, a link to itself, a directory loop
and a duplicate song.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from lab.app.task import run
from lab.datasets import audio
from lab.datasets.folder import load_folder
from lab.tracking import resolve_tracking_uri

import badaudio
from conftest import GTZAN_MINI, ROOT, WEIGHTS, need

pytestmark = pytest.mark.robustness
SOURCE = GTZAN_MINI / "genres" / "jazz" / "jazz.00000.wav"
AS_ROOT = os.geteuid() == 0  # root reads a chmod-000 file: that case is checked as `nobody` below


def expected(name: str, outcome: str) -> str:
    return "ok" if name == "no_permission.wav" and AS_ROOT else outcome


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    need(SOURCE)
    root = tmp_path_factory.mktemp("zoo")
    return root, badaudio.make(root, SOURCE)


def test_scan_finds_every_file_and_ends_despite_a_directory_loop(zoo):
    root, files = zoo
    ds = load_folder(root)
    assert sorted(c.path for c in ds.clips) == sorted(str(p) for p, _ in files.values())  # links included, loop not walked
    assert {c.label for c in ds.clips} == {"bad", "good"}


def test_each_bad_file_is_decoded_or_refused_with_its_reason(zoo):
    _, files = zoo
    got = {}
    for name, (path, _) in files.items():
        try:
            y = audio.load(path, sr=16000)
            assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all() and len(y) >= 16000
            got[name] = "ok"
        except audio.AudioError as err:
            assert err.detail and "\n" not in err.detail  # one line, shown in the CSV and the log
            got[name] = f"skip:{err.reason}"
    assert got == {name: expected(name, outcome) for name, (_, outcome) in files.items()}


def test_decoder_messages_say_what_is_wrong(zoo):
    _, files = zoo
    msg = {}
    for name in ("corrupt.mp3", "text_named.wav", "dangling_link.wav", "loop_link.wav", "nan_samples.wav"):
        with pytest.raises(audio.AudioError) as e:
            audio.load(files[name][0], sr=16000)
        msg[name] = e.value.detail
    assert "NoBackendError" not in msg["corrupt.mp3"] and "does not exist" not in msg["corrupt.mp3"]
    assert "Format not recognised" in msg["text_named.wav"]
    assert msg["dangling_link.wav"] == "broken symbolic link (its target does not exist)"
    assert msg["loop_link.wav"] == "symbolic link loop"
    assert msg["nan_samples.wav"] == "decoded audio contains NaN or infinite samples"


def test_a_file_without_read_permission_is_refused(tmp_path):
    # Tests run as root in CI, and root ignores file modes (CAP_DAC_OVERRIDE): read it as root
    # without those two capabilities (util-linux's setpriv), so the mode bits apply as to anyone.
    import shutil

    import soundfile as sf

    p = tmp_path / "locked.wav"
    sf.write(p, (0.1 * np.sin(np.arange(32000) / 5)).astype(np.float32), 16000)
    p.chmod(0)
    prefix = []
    if AS_ROOT:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv (util-linux): root reads a chmod-000 file, so it cannot be tested")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    code = ("from lab.datasets import audio\ntry:\n    audio.load(%r, sr=16000)\n    print('loaded')\n"
            "except audio.AudioError as e:\n    print(e.reason, '|', e.detail)\n") % str(p)
    out = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    reason, detail = out.stdout.strip().split(" | ")
    assert reason == "unreadable" and "Permission denied" in detail


@pytest.mark.slow
def test_a_job_on_the_zoo_embeds_or_skips_every_file_and_stays_finite(zoo, compose_cfg):
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    root, files = zoo
    cfg = compose_cfg("dataset=folder", f"dataset.root={root}", "model=fcn", "cluster_count.k=2", "seed=0")
    scores = run(cfg)
    assert all(np.isfinite(v) for v in scores.values())
    client = MlflowClient(resolve_tracking_uri(cfg))
    (r,) = client.search_runs([client.get_experiment_by_name("clustering").experiment_id])
    assert r.info.status == "FINISHED" and all(np.isfinite(v) for v in r.data.metrics.values())
    assert not any(k.startswith("nonfinite.") for k in r.data.tags)
    want_skip = {str(p): o.split(":")[1] for name, (p, o) in files.items() if expected(name, o) != "ok"}
    with open(client.download_artifacts(r.info.run_id, "skipped_files.csv")) as f:
        rows = list(csv.DictReader(f))
    assert {row["path"]: row["reason"] for row in rows} == want_skip
    assert all(row["detail"] for row in rows)
    n_ok = len(files) - len(want_skip)
    assert r.data.metrics["n_songs"] == n_ok and r.data.metrics["n_skipped"] == len(want_skip)
    with np.load(client.download_artifacts(r.info.run_id, "embeddings.npz")) as z:
        X, ids, n_windows = z["X"], list(z["ids"]), dict(zip(z["ids"], z["n_windows"]))
    assert X.shape == (n_ok, 64) and np.isfinite(X).all()
    # the duplicate song gets the identical embedding; the 10-minute file all of its 29-s windows
    assert np.array_equal(X[ids.index("good/reference.wav")], X[ids.index("good/reference_copy.wav")])
    assert n_windows["bad/ten_minutes.wav"] == 600 * 16000 // 464000
