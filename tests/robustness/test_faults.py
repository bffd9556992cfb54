"""Faults during extraction: kill -9 midway then rerun, two processes on one cache, a full disk,
and cache entries that claim another sample rate or model (issue 11, "Robustness with figures")."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from lab.core.errors import LabError
from lab.datasets.synth import SynthDataset
from lab.extract.cache import EmbeddingCache
from lab.extract.embed import extract
from lab.models import build

from conftest import ROOT

pytestmark = pytest.mark.robustness

# Random-weight sample-level CNN on 4-s synthetic clips: the real extraction path, ~0.1 s a clip.
FAST = ["model=sample", "model.pretrained=false", "dataset.seconds=4", "embed.progress=false", "experiment=tags"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LAB_CACHE_DIR")}
    env.update(PYTHONPATH=str(ROOT), MLFLOW_DISABLE_TELEMETRY="true", **extra)
    return env


def _entries(cache: Path) -> tuple[list[Path], list[Path]]:
    """(complete entries, leftover temporary files) under a cache folder."""
    files = [p for p in cache.rglob("*.npz")]
    return [p for p in files if not p.name.startswith(".tmp-")], [p for p in files if p.name.startswith(".tmp-")]


def _loads(p: Path) -> bool:
    with np.load(p) as z:
        return np.isfinite(z["window_embeddings"]).all() and str(z["model"]) == "sample"


def _lab(tmp_path, *args, **kw):
    return subprocess.Popen([sys.executable, "-m", "lab", *FAST, f"paths.mlruns={tmp_path}/mlruns", f"paths.cache={tmp_path}/cache",
                             f"hydra.run.dir={tmp_path}/out/{time.monotonic_ns()}", *args],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _metrics(tmp_path) -> list[dict]:
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tags").experiment_id])
    return [{"status": r.info.status, **r.data.metrics} for r in runs]


@pytest.mark.slow
def test_kill_9_mid_extraction_leaves_no_partial_entry_and_the_rerun_resumes(tmp_path):
    n = 6 * 6  # n_per_class=6, six styles
    p = _lab(tmp_path, "dataset.n_per_class=6")
    deadline = time.time() + 300
    while len(_entries(tmp_path / "cache")[0]) < 5:  # kill once a few clips are cached, long before the end
        assert p.poll() is None, p.stdout.read()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done, tmp_left = _entries(tmp_path / "cache")
    assert 5 <= len(done) < n and all(_loads(e) for e in done)  # every entry complete
    # A temp file may survive a kill -9 (nothing runs after SIGKILL); it is never read as an entry.
    r = _lab(tmp_path, "dataset.n_per_class=6")
    out, _ = r.communicate(timeout=600)
    assert r.returncode == 0, out[-3000:]
    runs = _metrics(tmp_path)
    finished = [m for m in runs if m["status"] == "FINISHED"]
    assert len(finished) == 1 and finished[0]["n_songs"] == n
    assert finished[0]["cache_hits"] == len(done) and finished[0]["cache_misses"] == n - len(done)  # resumed
    assert len(_entries(tmp_path / "cache")[0]) == n and len(tmp_left) <= 2


@pytest.mark.slow
def test_two_processes_extracting_the_same_dataset_share_one_sound_cache(tmp_path):
    a, b = _lab(tmp_path, "dataset.n_per_class=4"), _lab(tmp_path, "dataset.n_per_class=4")
    outs = [q.communicate(timeout=600)[0] for q in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, [o[-2000:] for o in outs]
    runs = _metrics(tmp_path)
    assert [m["status"] for m in runs] == ["FINISHED", "FINISHED"]
    assert sum(m["cache_misses"] for m in runs) == 24 and sum(m["cache_hits"] for m in runs) == 24  # extracted once
    done, tmp_left = _entries(tmp_path / "cache")
    assert len(done) == 24 and not tmp_left and all(_loads(e) for e in done)


_RACE = """
import sys
from lab.datasets.synth import SynthDataset
from lab.extract.embed import extract
from lab.models import build
model, wid = build("sample", pretrained=False, seed=0)
emb = extract(SynthDataset(n_per_class=3, seconds=4), model, weights_id=wid, cache_dir=sys.argv[1], progress=False, workers=1)
print(emb.hits, emb.misses)
"""


@pytest.mark.slow
def test_two_unlocked_writers_racing_on_the_same_entries_never_corrupt_them(tmp_path):
    # No extraction lock here (that is the pipeline's): both compute every clip and write the same
    # entries at the same moments; atomic renames mean the last complete file wins, never a mix.
    procs = [subprocess.Popen([sys.executable, "-c", _RACE, str(tmp_path / "cache")], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [q.communicate(timeout=600) for q in procs]
    assert all(q.returncode == 0 for q in procs), [e[-2000:] for _, e in outs]
    done, tmp_left = _entries(tmp_path / "cache")
    assert len(done) == 18 and not tmp_left and all(_loads(e) for e in done)
    model, wid = build("sample", pretrained=False, seed=0)
    again = extract(SynthDataset(n_per_class=3, seconds=4), model, weights_id=wid, cache_dir=tmp_path / "cache", progress=False)
    assert (again.hits, again.misses) == (18, 0)


def test_a_full_disk_while_writing_an_entry_is_one_sentence_and_earlier_entries_survive(tmp_path, monkeypatch):
    model, wid = build("sample", pretrained=False, seed=0)
    ds = SynthDataset(n_per_class=1, seconds=4)
    real_savez, calls = np.savez, []

    def savez_until_full(f, **arrays):
        calls.append(1)
        if len(calls) > 3:
            f.write(b"\0" * 100)  # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_savez(f, **arrays)

    monkeypatch.setattr("lab.extract.cache.np.savez", savez_until_full)
    with pytest.raises(LabError) as err:
        extract(ds, model, weights_id=wid, cache_dir=tmp_path, progress=False, workers=1)
    msg = str(err.value)
    assert "cannot write the embedding cache entry" in msg and "No space left on device" in msg
    assert "earlier entries are intact" in msg and "paths.cache" in msg and "\n" not in msg
    done, tmp_left = _entries(tmp_path)
    assert len(done) == 3 and not tmp_left and all(_loads(e) for e in done)
    monkeypatch.setattr("lab.extract.cache.np.savez", real_savez)
    emb = extract(ds, model, weights_id=wid, cache_dir=tmp_path, progress=False, workers=1)  # space again: resumes
    assert (emb.hits, emb.misses, len(emb.clips)) == (3, 3, 6)


@pytest.mark.parametrize("field, value", [("sample_rate", "22050"), ("model", "se")])
def test_an_entry_claiming_another_sample_rate_or_model_is_recomputed(tmp_path, field, value):
    model, wid = build("sample", pretrained=False, seed=0)
    ds = SynthDataset(n_per_class=1, seconds=4)
    first = extract(ds, model, weights_id=wid, cache_dir=tmp_path, progress=False, workers=1)
    (victim, *_), _ = _entries(tmp_path)
    with np.load(victim) as z:
        entry = {k: z[k] for k in z.files}
    entry[field] = np.array(value)
    entry["window_embeddings"] = entry["window_embeddings"] + 1.0  # what a wrong entry would feed the study
    np.savez(victim, **entry)
    again = extract(ds, model, weights_id=wid, cache_dir=tmp_path, progress=False, workers=1)
    assert (again.hits, again.misses) == (5, 1)
    np.testing.assert_array_equal(again.X, first.X)  # recomputed, not used
    assert EmbeddingCache(tmp_path, "sample").get(victim.stem, expect={field: value}) is None  # rewritten with the truth
