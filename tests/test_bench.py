"""lab.extract.bench smoke test (no timing assertions) and the default inference path's faithfulness."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from lab.datasets.synth import SynthDataset
from lab.extract import bench
from lab.extract.bench import jobs
from lab.extract.embed import extract
from lab.extract.inference import InferenceEngine
from lab.models import build

from conftest import REFERENCE, need

NUMERIC_POSITIVE = [
    "n_clips", "clip_seconds", "windows_per_clip", "decode_s_per_clip", "decode_x_realtime", "baseline_s_per_clip",
    "ours_s_per_clip", "speedup", "baseline_audio_s_per_s", "ours_audio_s_per_s", "e2e_audio_s_per_s", "setup_s",
    "gflop_per_window", "baseline_gflops", "ours_gflops", "baseline_pct_conv_ceiling", "ours_pct_conv_ceiling",
    "rss_before_mb", "peak_rss_baseline_mb", "peak_rss_ours_mb", "peak_rss_e2e_mb",
]


def _read_csv(path):
    with open(path) as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_bench_runs_one_model_on_one_short_clip(tmp_path, capsys):
    out = tmp_path / "bench"
    res = bench.main(["--models", "sample", "--clips", "1", "--seconds", "4", "--repeats", "1",
                      "--no-check-memory", "--no-backends", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "machine:" in printed and "ceilings" in printed and "sample" in printed
    assert res["ceilings"]["matmul_gflops"] > 0 and res["ceilings"]["conv_gflops"] > 0

    fields, rows = _read_csv(out / "bench.csv")
    assert fields == jobs.COLUMNS
    assert [r["model"] for r in rows] == ["sample"]
    row = rows[0]
    for col in NUMERIC_POSITIVE:
        v = float(row[col])
        assert math.isfinite(v) and v > 0, f"{col}={row[col]}"
    assert float(row["max_abs_diff"]) >= 0 and row["within_tol"] == "True"
    assert float(row["n_clips"]) == 1 and float(row["windows_per_clip"]) == 1  # 4 s holds one 59049-sample window
    md = (out / "bench.md").read_text()
    assert "machine:" in md and "| model |" in md


def test_bench_memory_check_reports_n_4n_16n(tmp_path, capsys):
    out = tmp_path / "bench"
    res = bench.main(["--models", "sample", "--clips", "1", "--seconds", "4", "--repeats", "1", "--inline",
                      "--memory-clips", "1", "--no-backends", "--out", str(out)])
    assert "peak RSS of extract()" in capsys.readouterr().out
    fields, mem = _read_csv(out / "memory.csv")
    assert fields == jobs.MEMORY_COLUMNS
    assert [int(r["n_clips"]) for r in mem] == [1, 4, 16]
    assert all(float(r["peak_rss_mb"]) > 0 and float(r["audio_mb_per_song"]) > 0 for r in mem)
    assert len(res["memory"]) == 3 and "## Memory" in (out / "bench.md").read_text()


def test_bench_rejects_unknown_models():
    with pytest.raises(SystemExit):
        bench.parse_args(["--models", "fcn,nope"])


def test_cross_clip_batching_and_workers_match_the_plain_model():
    """Windows packed across clips, run on 2 workers through the optimized copy == the model as is."""
    ds = SynthDataset(n_per_class=1, seconds=7.0)  # musicnn: two 3 s windows per clip, 6 clips
    model, wid = build("musicnn", pretrained=False)
    fast = extract(ds, model, weights_id=wid, cache_dir=None, batch_size=3, workers=2, progress=False)
    plain = extract(ds, model, weights_id=wid, cache_dir=None, batch_size=1, workers=1, optimize=False, progress=False)
    assert list(fast.n_windows) == [2] * 6
    np.testing.assert_allclose(fast.X, plain.X, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fast.tags, plain.tags, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", jobs.MODELS)
def test_default_inference_path_matches_golden(name):
    """What extract() runs by default (optimized copy, per-model knobs) stays within the golden tolerance."""
    need(REFERENCE / "golden" / "manifest.json")
    from test_models_golden import INPUTS, TOL, _golden_model

    model, gdir = _golden_model(name)
    engine = InferenceEngine(model)
    assert engine.model is not model, "the optimized copy failed its self-check"
    L = model.info.input_length
    for inp in INPUTS:
        x = np.load(REFERENCE / "golden" / "inputs" / f"{inp}.npy")
        n = len(x) // L
        emb, tags = engine.run(x[: n * L].reshape(n, L))
        np.testing.assert_allclose(emb, np.load(gdir / f"{inp}_window_embeddings.npy"), **TOL, err_msg=f"{name}/{inp}")
        np.testing.assert_allclose(tags, np.load(gdir / f"{inp}_tags.npy"), **TOL, err_msg=f"{name}/{inp} tags")


@pytest.mark.slow  # ~15 s on an idle 2-core machine, minutes under load: three paths, an ONNX export, the goldens
def test_backend_table_marks_the_choice_and_checks_goldens(tmp_path, capsys):
    """One short clip through the original loop, torch and onnxruntime; goldens checked per backend."""
    out = tmp_path / "bench"
    res = bench.main(["--models", "sample", "--backend-clips", "1", "--seconds", "4", "--repeats", "1", "--inline",
                      "--no-check-memory", "--no-speed-table", "--backend-list", "torch,onnxruntime", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "chosen backend per model" in printed and "per 1000 clips" in printed
    fields, rows = _read_csv(out / "backends.csv")
    assert fields == jobs.BACKEND_COLUMNS
    assert [r["config"] for r in rows] == ["original loop", "torch fp32", "onnxruntime fp32"]
    for r in rows:
        assert float(r["s_per_clip"]) > 0 and float(r["peak_rss_mb"]) > 0 and r["within_tol"] == "True"
    for r in rows[1:]:
        assert r["ran_on"] == r["backend"]
        if (REFERENCE / "golden" / "manifest.json").exists():
            assert float(r["max_dev_vs_golden"]) <= 1e-4
    assert sum(r["fastest_within_tol"] == "True" for r in rows) == 1
    assert len(res["backends"]) == 3 and "## Backends" in (out / "bench.md").read_text()
