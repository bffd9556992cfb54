"""Extraction speed benchmark: ``python -m lab.bench [--models fcn,se] [--clips 8] [--out DIR]``.

For each tagger (random weights: speed does not depend on the values) it measures, on the same
decoded clips and in one fresh subprocess per model (so peak memory does not mix):

* decode time per clip (synthetic generation, or ``librosa`` decoding + resampling with
  ``--audio-dir``), reported apart from model time;
* BASELINE, the original way of working: clip after clip, all windows of one clip in one batch,
  float32 eager under ``torch.no_grad``, torch's default threads;
* OURS, the default path of :func:`lab.embed.extract` (:class:`lab.inference.InferenceEngine` with the
  model's ``DEFAULT_KNOBS``) over the same windows, and the speedup; both are the best of
  ``--repeats`` passes run alternately, so load from other processes hits both alike;
* the end-to-end rate of ``extract`` itself (decoding in its background thread, no cache);
* model FLOPs per window (``torch.utils.flop_counter``), the achieved FLOP/s, and their share of two
  ceilings measured in the same run: a large fp32 matmul and one large 3x3 convolution;
* peak resident memory (VmHWM, reset per phase) of the baseline, ours and end-to-end phases, and
  (``--check-memory``, on by default) the peak of embedding N, 4N and 16N songs with ``extract``
  in fresh processes, which must be flat (streaming);
* that OURS agrees with BASELINE within the golden tolerance (rtol = atol = 1e-4).

``--sweep`` additionally times a grid of knobs (batch size x workers x channels_last) per model:
the measurements behind ``lab.inference.DEFAULT_KNOBS``.

Writes ``bench.csv`` and ``bench.md`` (plus ``memory.csv``, ``sweep.csv``) to ``--out``
(default ``bench_results/``, git-ignored) and prints the table with the machine in the header.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # the repository (goldens default to ROOT/../shared)
MODELS = ("fcn", "musicnn", "crnn", "attention", "hcnn", "sample", "se")
TOL = dict(rtol=1e-4, atol=1e-4)  # the golden tolerance
# Seconds per 30 s clip of the original implementation on the reference machine, as reported in
# the issue (for comparison with the baseline measured in the same run).
REPORTED_BASELINE_S = {"fcn": 0.065, "musicnn": 0.21, "crnn": 0.08, "attention": 0.20, "hcnn": 0.32,
                       "sample": 0.24, "se": 0.63}

COLUMNS = [
    "model", "n_clips", "clip_seconds", "windows_per_clip", "decode_s_per_clip", "decode_x_realtime",
    "baseline_s_per_clip", "ours_s_per_clip", "speedup", "baseline_audio_s_per_s", "ours_audio_s_per_s",
    "e2e_audio_s_per_s", "setup_s", "gflop_per_window", "baseline_gflops", "ours_gflops",
    "baseline_pct_conv_ceiling", "ours_pct_conv_ceiling", "rss_before_mb", "peak_rss_baseline_mb", "peak_rss_ours_mb",
    "peak_rss_e2e_mb", "max_abs_diff", "within_tol", "knobs", "reported_baseline_s_per_clip",
]
# The console table: a readable subset (the files have every column).
CONSOLE = [
    ("model", "model"), ("win/clip", "windows_per_clip"), ("decode s", "decode_s_per_clip"),
    ("base s", "baseline_s_per_clip"), ("ours s", "ours_s_per_clip"), ("speedup", "speedup"),
    ("ours x", "ours_audio_s_per_s"), ("e2e x", "e2e_audio_s_per_s"), ("GFLOP/win", "gflop_per_window"),
    ("base GF/s", "baseline_gflops"), ("ours GF/s", "ours_gflops"), ("%conv", "ours_pct_conv_ceiling"),
    ("RSS base", "peak_rss_baseline_mb"), ("RSS ours", "peak_rss_ours_mb"), ("RSS e2e", "peak_rss_e2e_mb"),
    ("max|d|", "max_abs_diff"), ("knobs", "knobs"),
]
MEMORY_COLUMNS = ["model", "n_clips", "audio_seconds", "audio_mb_per_song", "wall_s", "rss_before_mb", "peak_rss_mb"]
BACKEND_COLUMNS = [
    "model", "config", "backend", "precision", "ran_on", "s_per_clip", "speedup_vs_original", "s_per_1000_clips",
    "decode_s_per_clip", "gflops", "pct_conv_ceiling", "pct_matmul_ceiling", "peak_rss_mb", "max_dev_vs_original",
    "min_cosine_vs_original", "max_dev_vs_golden", "within_tol", "auto", "fastest_within_tol", "setup_s", "knobs", "note",
]
BACKEND_CONSOLE = ["model", "config", "ran_on", "s_per_clip", "speedup_vs_original", "pct_conv_ceiling", "peak_rss_mb",
                   "max_dev_vs_golden", "min_cosine_vs_original", "within_tol", "auto", "fastest_within_tol", "setup_s"]
SWEEP_COLUMNS = ["model", "config", "batch_size", "workers", "threads_per_worker", "channels_last", "optimized",
                 "s_per_clip", "speedup_vs_baseline", "default"]


# --------------------------------------------------------------------------------------------
# Machine facts and measurement helpers
# --------------------------------------------------------------------------------------------

def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, with family/model and AVX-512 (VMs often hide the name)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.machine())
    extra = [f"family {fields['cpu family']} model {fields['model']}"] if "cpu family" in fields and "model" in fields else []
    if "avx512f" in fields.get("flags", "").split():
        extra.append("AVX-512")
    return f"{name} ({', '.join(extra)})" if extra else name


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Percent of all CPUs busy over ``seconds`` (/proc/stat): other load that skews timings."""
    def snap() -> tuple[int, int]:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(f[:8]), f[3] + f[4]  # total, idle + iowait
    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
    except (OSError, ValueError, IndexError):
        return None
    return 100.0 * (1 - (i1 - i0) / max(t1 - t0, 1))


def machine_info() -> dict[str, str]:
    import torch

    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:
        allowed = os.cpu_count() or 1
    return {
        "cpu": cpu_model(),
        "cores": f"{allowed} usable of {os.cpu_count()}",
        "torch": torch.__version__,
        "torch_threads": str(torch.get_num_threads()),
        "mkldnn": str(torch.backends.mkldnn.is_available()),
        "python": platform.python_version(),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def _proc_status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (e.g. ``VmRSS``) in MB, or None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set of this process in MB (VmHWM; ru_maxrss where /proc is missing)."""
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident set of this process in MB (VmRSS), or NaN where /proc is missing."""
    now = _proc_status_mb("VmRSS")
    return now if now is not None else float("nan")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a phase's peak can be read on its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def best_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def ceilings(repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a 2048^3 fp32 matmul and of one 3x3 conv 128->128 on 128x256, default threads."""
    import torch

    out = {}
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    out["matmul_gflops"] = 2 * n**3 / best_time(lambda: a @ b, repeats) / 1e9
    c, h, w = 128, 128, 256
    conv = torch.nn.Conv2d(c, c, 3, padding=1).eval()
    x = torch.randn(1, c, h, w)
    flops = 2 * c * c * 9 * h * w
    best = 0.0
    with torch.inference_mode():
        for fmt in (torch.contiguous_format, torch.channels_last):  # the better layout is the ceiling
            conv_f, x_f = conv.to(memory_format=fmt), x.contiguous(memory_format=fmt)
            best = max(best, flops / best_time(lambda: conv_f(x_f), repeats) / 1e9)
    out["conv_gflops"] = best
    return out


def flops_per_window(model) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, model.info.input_length)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.embed_and_tag(x)
    return float(counter.get_total_flops())


# --------------------------------------------------------------------------------------------
# Clips
# --------------------------------------------------------------------------------------------

def bench_dataset(n: int, *, seconds: float, audio_dir: str | None):
    """A dataset of ``n`` clips: synthetic (styles interleaved) or the files of ``audio_dir``, cycled."""
    from lab.datasets.folder import load_folder
    from lab.datasets.synth import SynthDataset

    if audio_dir:
        ds = load_folder(audio_dir, name="bench")
        files = ds.clips
        ds.clips = [files[i % len(files)] for i in range(n)]
        return ds
    ds = SynthDataset(n_per_class=max(1, math.ceil(n / 6)), seconds=seconds)
    ds.clips = sorted(ds.clips, key=lambda c: (int(c.id.rsplit(".", 1)[1]), c.label))[:n]
    return ds


# --------------------------------------------------------------------------------------------
# Worker jobs (each runs in its own subprocess unless --inline)
# --------------------------------------------------------------------------------------------

def _decode_all(ds, sr: int) -> tuple[list[np.ndarray], float]:
    """Decode every clip; the time excludes a first untimed decode (librosa's lazy imports: ~1 s)."""
    ds.load(ds.clips[0], sr)
    t = time.perf_counter()
    ys = [ds.load(c, sr) for c in ds.clips]
    return ys, time.perf_counter() - t


def _bench_inputs(name: str, n_clips: int, args: argparse.Namespace):
    """A random-weight ``name`` (speed does not depend on the values), the bench clips decoded and
    windowed: (model, weights id, dataset, decoded clips, decode seconds, windows per clip)."""
    from lab.embed import frame_windows
    from lab.models import build

    model, wid = build(name, pretrained=False)
    ds = bench_dataset(n_clips, seconds=args.seconds, audio_dir=args.audio_dir)
    ys, decode_s = _decode_all(ds, model.info.sample_rate)
    return model, wid, ds, ys, decode_s, [frame_windows(y, model.info.input_length)[0] for y in ys]


def job_model(name: str, args: argparse.Namespace, conv_ceiling: float | None) -> dict:
    import torch

    from lab.embed import extract
    from lab.inference import InferenceEngine

    model, wid, ds, ys, decode_s, windows = _bench_inputs(name, args.clips, args)
    info = model.info
    audio_s = sum(len(y) for y in ys) / info.sample_rate
    n = len(ys)
    gflop = flops_per_window(model) / 1e9
    n_windows = sum(len(w) for w in windows)

    def baseline() -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        with torch.no_grad():
            for w in windows:
                e, t = model.embed_and_tag(torch.from_numpy(w))
                out.append((e.numpy(), t.numpy()))
        return out

    t = time.perf_counter()
    engine = InferenceEngine(model)
    setup_s = time.perf_counter() - t
    all_windows = np.concatenate(windows)

    def ours() -> tuple[np.ndarray, np.ndarray]:
        with engine:
            return engine.run(all_windows)

    # Warm-up on one clip (first calls create oneDNN primitives), then one pass each with the
    # peak-RSS meter reset: the memory of each phase on its own.
    with torch.no_grad():
        model.embed_and_tag(torch.from_numpy(windows[0]))
    with engine:
        engine.run(windows[0])
    rss_start = rss_mb()
    reset_peak_rss()
    base_out = baseline()
    rss_base = peak_rss_mb()
    reset_peak_rss()
    ours_e, ours_t = ours()
    rss_ours = peak_rss_mb()
    base_e = np.concatenate([e for e, _ in base_out])
    base_t = np.concatenate([t for _, t in base_out])
    diff = max(float(np.max(np.abs(ours_e - base_e))), float(np.max(np.abs(ours_t - base_t))))
    ok = bool(np.allclose(ours_e, base_e, **TOL) and np.allclose(ours_t, base_t, **TOL))

    # Timing: alternate the two so that load from elsewhere hits both; keep the best pass.
    tb, to = [], []
    for _ in range(args.repeats):
        tb.append(timed(baseline))
        to.append(timed(ours))
    base_s, ours_s = min(tb) / n, min(to) / n

    # End to end: extract() itself, decoding in its background thread, no cache.
    reset_peak_rss()
    t = time.perf_counter()
    emb = extract(ds, model, weights_id=wid, cache_dir=None, progress=False)
    e2e_s = time.perf_counter() - t
    rss_e2e = peak_rss_mb()
    assert len(emb.clips) == n, f"extract embedded {len(emb.clips)} of {n} clips"

    gf_base = gflop * n_windows / (base_s * n)
    gf_ours = gflop * n_windows / (ours_s * n)
    return {
        "model": name, "n_clips": n, "clip_seconds": audio_s / n, "windows_per_clip": n_windows / n,
        "decode_s_per_clip": decode_s / n, "decode_x_realtime": audio_s / decode_s,
        "baseline_s_per_clip": base_s, "ours_s_per_clip": ours_s, "speedup": base_s / ours_s,
        "baseline_audio_s_per_s": audio_s / (base_s * n), "ours_audio_s_per_s": audio_s / (ours_s * n),
        "e2e_audio_s_per_s": audio_s / e2e_s, "setup_s": setup_s, "gflop_per_window": gflop,
        "baseline_gflops": gf_base, "ours_gflops": gf_ours,
        "baseline_pct_conv_ceiling": 100 * gf_base / conv_ceiling if conv_ceiling else float("nan"),
        "ours_pct_conv_ceiling": 100 * gf_ours / conv_ceiling if conv_ceiling else float("nan"),
        "rss_before_mb": rss_start, "peak_rss_baseline_mb": rss_base, "peak_rss_ours_mb": rss_ours, "peak_rss_e2e_mb": rss_e2e,
        "max_abs_diff": diff, "within_tol": ok, "knobs": _knobs(engine),
        "reported_baseline_s_per_clip": REPORTED_BASELINE_S.get(name, float("nan")),
    }


def backend_summary(rows: list[dict]) -> str:
    """Per model: the auto choice, the fastest backend within tolerance, and the totals per 1000 clips."""
    lines, auto_total, best_total, orig_total = [], 0.0, 0.0, 0.0
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        orig = next(r for r in mine if r["config"] == "original loop")
        auto = next((r for r in mine if r.get("auto")), None)
        best = next((r for r in mine if r.get("fastest_within_tol")), None)
        orig_total += orig["s_per_1000_clips"]
        auto_total += (auto or orig)["s_per_1000_clips"]
        best_total += (best or orig)["s_per_1000_clips"]
        lines.append(f"  {name}: auto -> {auto['backend'] if auto else '?'} "
                     f"({auto['speedup_vs_original']:.2f}x the original loop)" if auto else f"  {name}: auto not measured")
        if best:
            lines[-1] += f"; fastest within tolerance: {best['config']} ({best['speedup_vs_original']:.2f}x)"
    lines.append(f"  all models, per 1000 clips incl. decoding: original loop {orig_total:.0f} s, auto {auto_total:.0f} s, "
                 f"fastest {best_total:.0f} s ({orig_total / auto_total:.2f}x / {orig_total / best_total:.2f}x)")
    return "chosen backend per model:\n" + "\n".join(lines)


def _knobs(engine) -> str:
    return (f"bs={engine.batch_size} w={engine.workers}x{engine.threads_per_worker}t"
            f"{' cl' if engine.channels_last else ''}{'' if engine.optimized else ' eager'}")


def job_memory(name: str, args: argparse.Namespace, n: int) -> dict:
    """Peak RSS of embedding ``n`` songs end to end with extract() (run in a fresh process)."""
    from lab.embed import extract
    from lab.models import build

    model, wid = build(name, pretrained=False)
    ds = bench_dataset(n, seconds=args.seconds, audio_dir=args.audio_dir)
    rss_start = rss_mb()
    reset_peak_rss()  # count the embedding, not the imports
    t = time.perf_counter()
    emb = extract(ds, model, weights_id=wid, cache_dir=None, progress=False)
    wall = time.perf_counter() - t
    used = float(np.sum(emb.n_windows)) * model.info.input_length  # samples the model saw (<= decoded)
    return {"model": name, "n_clips": len(emb.clips), "audio_seconds": used / model.info.sample_rate,
            "audio_mb_per_song": used * 4 / 2**20 / max(len(emb.clips), 1),
            "wall_s": wall, "rss_before_mb": rss_start, "peak_rss_mb": peak_rss_mb()}


def memory_verdict(rows: list[dict]) -> tuple[str, bool]:
    """Flat = peak RSS grows by less than half a song's decoded audio per extra song, N -> 16N.

    (A pipeline that kept every song's audio would grow by at least one song's audio per song.
    Below that, what remains is allocator noise: with two worker threads glibc's per-thread arenas
    settle at a plateau within the first few dozen songs.)
    """
    first, last = rows[0], rows[-1]
    extra = max(last["n_clips"] - first["n_clips"], 1)
    slope = (last["peak_rss_mb"] - first["peak_rss_mb"]) / extra
    song_mb = first["audio_mb_per_song"]
    flat = slope < 0.5 * song_mb
    peaks = ", ".join(f"{r['peak_rss_mb']:.0f} MB for {r['n_clips']} songs" for r in rows)
    return (f"peak RSS of extract() ({first['model']}): {peaks}; {slope:+.2f} MB per extra song vs "
            f"{song_mb:.2f} MB of decoded audio per song: {'flat (streaming)' if flat else 'GROWS'}"), flat


def job_sweep(name: str, args: argparse.Namespace) -> list[dict]:
    """Time a grid of knobs on the same windows, round-robin, best of --repeats; plus the baseline."""
    import torch

    from lab.inference import DEFAULT_KNOBS, InferenceEngine, InferenceKnobs

    model, _, ds, ys, _, windows = _bench_inputs(name, args.clips, args)
    all_windows = np.concatenate(windows)
    n = len(ys)
    has_2d = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())

    def baseline() -> None:
        with torch.no_grad():
            for w in windows:
                model.embed_and_tag(torch.from_numpy(w))

    configs: dict[str, tuple[Callable[[], object], dict]] = {"baseline": (baseline, {})}
    default = DEFAULT_KNOBS.get(name, InferenceKnobs())
    budget = torch.get_num_threads()
    grid = [(bs, wk, cl, True) for bs in (1, 2, 4, 8) for wk in sorted({1, budget}) for cl in ((False, True) if has_2d else (False,))]
    grid.append((default.batch_size, budget, default.channels_last, False))  # what folding etc. buys
    for bs, wk, cl, opt in grid:
        eng = InferenceEngine(model, batch_size=bs, workers=wk, channels_last=cl, optimize=opt)

        def run(eng=eng) -> None:
            with eng:
                eng.run(all_windows)
        configs[f"bs={bs} w={wk}x{eng.threads_per_worker}t{' cl' if cl else ''}{'' if opt else ' eager'}"] = (
            run, {"batch_size": bs, "workers": wk, "threads_per_worker": eng.threads_per_worker, "channels_last": cl,
                  "optimized": opt, "default": opt and bs == default.batch_size and cl == default.channels_last and wk == budget})
    best = {k: math.inf for k in configs}
    for fn, _ in configs.values():
        fn()  # warm-up
    for _ in range(args.repeats):
        for k, (fn, _) in configs.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    rows = []
    for k, (_, meta) in configs.items():
        rows.append({"model": name, "config": k, "batch_size": meta.get("batch_size", "clip"),
                     "workers": meta.get("workers", 1), "threads_per_worker": meta.get("threads_per_worker", budget),
                     "channels_last": meta.get("channels_last", False), "optimized": meta.get("optimized", False),
                     "s_per_clip": best[k] / n, "speedup_vs_baseline": best["baseline"] / best[k],
                     "default": meta.get("default", False)})
    return rows


def _golden_deviation(name: str, backend: str, precision: str, graph_dir: str) -> float:
    """Max |difference| of ``backend`` from the reference outputs on the golden ``music`` input.

    Uses the real checkpoint where ``LAB_WEIGHTS_DIR`` (default ``../shared/weights``) has it, else
    the golden README's synthetic weights; NaN when the goldens are not on this machine.
    """
    import torch

    from lab.embed import frame_windows
    from lab.inference import InferenceEngine
    from lab.models import build, model_class
    from lab.models.synthetic import read_manifest, synthetic_state_dict
    from lab.models.weights import load_strict

    ref = Path(os.environ.get("LAB_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))
    weights = Path(os.environ.get("LAB_WEIGHTS_DIR", ROOT.parent / "shared" / "weights"))
    golden = ref / "golden"
    if not (golden / "inputs" / "music.npy").is_file():
        return float("nan")
    if (weights / "jamendo" / name / "best_model.pth").is_file():
        model, wid = build(name, weights_dir=weights)
        gdir = golden / name
    else:
        model = model_class(name)()
        load_strict(model, synthetic_state_dict(name, read_manifest(ref / "state_dicts" / f"{name}.json")), "synthetic")
        model, wid, gdir = model.eval(), f"synthetic-{name}", golden / "synthetic" / name
    if not (gdir / "music_window_embeddings.npy").is_file():
        return float("nan")
    w, _ = frame_windows(np.load(golden / "inputs" / "music.npy"), model.info.input_length)
    eng = InferenceEngine(model, backend=backend, precision=precision, weights_id=wid, graph_dir=graph_dir)
    if eng.backend != backend:
        return float("nan")
    with eng:
        e, t = eng.run(w)
    return max(float(np.max(np.abs(e - np.load(gdir / "music_window_embeddings.npy")))),
               float(np.max(np.abs(t - np.load(gdir / "music_tags.npy")))))


def job_backends(name: str, args: argparse.Namespace, ceil: dict) -> list[dict]:
    """Every backend x precision on the same windows, interleaved, best of --repeats; plus the original loop."""
    import torch

    from lab.backends import AUTO_BACKEND
    from lab.inference import InferenceEngine

    model, wid, ds, ys, decode_s, windows = _bench_inputs(name, args.backend_clips, args)
    all_windows = np.concatenate(windows)
    n, n_windows = len(ys), len(all_windows)
    gflop = flops_per_window(model) / 1e9

    def baseline() -> tuple[np.ndarray, np.ndarray]:
        out = []
        with torch.no_grad():
            for w in windows:
                e, t = model.embed_and_tag(torch.from_numpy(w))
                out.append((e.numpy(), t.numpy()))
        return np.concatenate([e for e, _ in out]), np.concatenate([t for _, t in out])

    graph_dir = tempfile.mkdtemp(prefix="lab-bench-graphs-")
    configs: dict[str, tuple[Callable[[], tuple], dict]] = {}
    configs["original loop"] = (baseline, {"backend": "original loop", "precision": "fp32", "ran_on": "torch eager",
                                           "setup_s": 0.0, "note": "clip by clip, all windows of a clip in one batch"})
    for backend in args.backend_list:
        for precision in (("fp32", "bf16") if args.fast else ("fp32",)):
            t0 = time.perf_counter()
            eng = InferenceEngine(model, backend=backend, precision=precision, weights_id=wid, graph_dir=graph_dir)
            setup = time.perf_counter() - t0

            def run(eng=eng) -> tuple:
                with eng:
                    return eng.run(all_windows)
            configs[f"{backend} {precision}"] = (run, {
                "backend": backend, "precision": precision, "ran_on": eng.backend, "ran_precision": eng.choice.precision,
                "setup_s": setup, "note": eng.choice.reason, "knobs": f"w={eng.workers}x{eng.threads_per_worker}t bs={eng.batch_size}"})
    outs, peaks = {}, {}
    for k, (fn, _) in configs.items():  # warm-up pass, also the outputs and the peak memory of each
        fn()
        reset_peak_rss()
        outs[k] = fn()
        peaks[k] = peak_rss_mb()
    best = {k: math.inf for k in configs}
    for _ in range(args.repeats):
        for k, (fn, _) in configs.items():
            best[k] = min(best[k], timed(fn))
    ref_e, ref_t = outs["original loop"]
    rows = []
    for k, (_, meta) in configs.items():
        e, t = outs[k]
        s = best[k] / n
        dev = max(float(np.max(np.abs(e - ref_e))), float(np.max(np.abs(t - ref_t))))
        cos = float(np.min(np.sum(e * ref_e, 1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(ref_e, axis=1) + 1e-30)))
        gdev = float("nan")
        if k != "original loop" and meta["ran_on"] == meta["backend"] and meta["precision"] == "fp32" and args.goldens:
            gdev = _golden_deviation(name, meta["backend"], "fp32", graph_dir)
        gfs = gflop * n_windows / best[k]
        rows.append({
            "model": name, "config": k, "backend": meta["backend"], "precision": meta.get("ran_precision", "fp32"),
            "ran_on": meta["ran_on"], "s_per_clip": s, "speedup_vs_original": best["original loop"] / best[k],
            "s_per_1000_clips": 1000 * (s + decode_s / n), "decode_s_per_clip": decode_s / n,
            "gflops": gfs, "pct_conv_ceiling": 100 * gfs / ceil["conv_gflops"],
            "pct_matmul_ceiling": 100 * gfs / ceil["matmul_gflops"], "peak_rss_mb": peaks[k],
            "max_dev_vs_original": dev, "min_cosine_vs_original": cos, "max_dev_vs_golden": gdev,
            "within_tol": bool(np.allclose(e, ref_e, **TOL) and np.allclose(t, ref_t, **TOL)),
            "auto": meta["backend"] == AUTO_BACKEND.get(name, "torch") and meta["precision"] == "fp32",
            "setup_s": meta["setup_s"], "knobs": meta.get("knobs", ""), "note": meta["note"],
        })
    exact = [r for r in rows if r["config"] != "original loop" and r["within_tol"] and r["ran_on"] == r["backend"]]
    if exact:
        min(exact, key=lambda r: r["s_per_clip"])["fastest_within_tol"] = True
    return rows


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def _run_job(kind: str, name: str, args: argparse.Namespace, extra: dict) -> object:
    """Run a job in a fresh interpreter (its own peak RSS, its own torch threads) or inline."""
    if args.inline:
        return _dispatch(kind, name, args, extra)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "lab.bench", "--_job", kind, "--_name", name, "--_extra", json.dumps(extra),
               "--_result", str(result), "--clips", str(args.clips), "--seconds", str(args.seconds),
               "--repeats", str(args.repeats), "--backend-clips", str(args.backend_clips),
               "--backend-list", ",".join(args.backend_list)]
        cmd += ["--fast"] if args.fast else []
        cmd += [] if args.goldens else ["--no-goldens"]
        if args.audio_dir:
            cmd += ["--audio-dir", args.audio_dir]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not result.exists():
            raise RuntimeError(f"bench job {kind}/{name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(result.read_text())


def _dispatch(kind: str, name: str, args: argparse.Namespace, extra: dict) -> object:
    import logging

    jobs = {"model": lambda: job_model(name, args, extra.get("conv_ceiling")),
            "memory": lambda: job_memory(name, args, int(extra["n"])),
            "sweep": lambda: job_sweep(name, args),
            "backends": lambda: job_backends(name, args, extra["ceilings"])}
    lab_log = logging.getLogger("lab")
    level = lab_log.level
    lab_log.setLevel(logging.ERROR)  # no "RANDOM weights" warnings in the output
    try:
        return jobs[kind]()
    finally:
        lab_log.setLevel(level)


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if v == 0:
            return "0"
        if abs(v) < 1e-3:
            return f"{v:.1e}"
        if abs(v) < 1:
            return f"{v:.3f}"
        if abs(v) < 100:
            return f"{v:.2f}"
        return f"{v:.0f}"
    return str(v)


def _text_table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    cells = [[h for h, _ in cols]] + [[_fmt(r.get(k, "")) for _, k in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(line, widths))) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _md_table(rows: list[dict], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def _write_csv(path: Path, rows: list[dict], cols: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: (f"{r[c]:.6g}" if isinstance(r.get(c), float) else r.get(c, "")) for c in cols})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lab.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of %(default)s")
    p.add_argument("--clips", type=int, default=8, help="clips per model (default %(default)s)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of synthetic clips (default %(default)s)")
    p.add_argument("--audio-dir", default=None, help="use real audio: a folder of <label>/<file> (e.g. gtzan_mini/genres)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per path; the best counts (default %(default)s)")
    p.add_argument("--out", default="bench_results", help="folder for bench.csv / bench.md (default %(default)s)")
    p.add_argument("--check-memory", action=argparse.BooleanOptionalAction, default=True,
                   help="peak RSS of N, 4N and 16N songs in fresh processes (default on)")
    p.add_argument("--memory-model", default=None, help="model for --check-memory (default: the first of --models)")
    p.add_argument("--memory-clips", type=int, default=None, help="N for --check-memory (default: --clips)")
    p.add_argument("--sweep", action="store_true", help="also time batch size x workers x channels_last per model")
    p.add_argument("--backends", action=argparse.BooleanOptionalAction, default=True,
                   help="the backend table: torch / onnxruntime / openvino per model (default on)")
    p.add_argument("--backend-list", default=None, help="backends to compare (default: torch and every installed one)")
    p.add_argument("--backend-clips", type=int, default=4, help="clips per model for the backend table (default %(default)s)")
    p.add_argument("--fast", action="store_true", help="also time fast mode (precision=bf16) on every backend")
    p.add_argument("--goldens", action=argparse.BooleanOptionalAction, default=True,
                   help="max deviation of each backend from ../shared/reference/golden (default on)")
    p.add_argument("--speed-table", action=argparse.BooleanOptionalAction, default=True,
                   help="the baseline-vs-default table with end-to-end rate (default on)")
    p.add_argument("--inline", action="store_true", help="run every job in this process (peaks then mix)")
    for hidden in ("--_job", "--_name", "--_extra", "--_result"):
        p.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    from lab.backends import BACKENDS, backend_version

    args.backend_list = ([b.strip() for b in args.backend_list.split(",") if b.strip()] if args.backend_list
                         else [b for b in BACKENDS if backend_version(b)])
    bad_b = [b for b in args.backend_list if b not in BACKENDS]
    if bad_b:
        p.error(f"unknown backend(s) {', '.join(bad_b)}; choose from {', '.join(BACKENDS)}")
    bad = [m for m in args.models if m not in MODELS]
    if bad:
        p.error(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(MODELS)}")
    for k in ("clips", "repeats", "backend_clips"):
        if getattr(args, k) < 1:
            p.error(f"--{k} must be >= 1")
    if args.audio_dir and not Path(args.audio_dir).is_dir():
        p.error(f"--audio-dir {args.audio_dir} is not a folder")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args._job:  # a worker subprocess
        res = _dispatch(args._job, args._name, args, json.loads(args._extra or "{}"))
        Path(args._result).write_text(json.dumps(res))
        return {}

    t_start = time.perf_counter()
    busy_before = cpu_busy()
    info = machine_info()
    ceil = ceilings()
    source = f"real audio from {args.audio_dir}" if args.audio_dir else f"synthetic {args.seconds:g} s clips (lab.datasets.synth)"
    head = [
        f"machine: {info['cpu']}, {info['cores']} cores; torch {info['torch']} ({info['torch_threads']} threads by default, "
        f"oneDNN {info['mkldnn']}); python {info['python']}; {info['date']}",
        f"ceilings (default threads): fp32 matmul 2048^3 {ceil['matmul_gflops']:.0f} GFLOP/s; "
        f"3x3 conv 128->128 on 128x256 {ceil['conv_gflops']:.0f} GFLOP/s",
        f"clips: {args.clips} (speed table), {args.backend_clips} (backend table) x {source}; timings: best of {args.repeats} alternating passes; random weights",
        f"other load on the CPUs at start: {busy_before:.0f}% busy" if busy_before is not None else "other load: unknown",
    ]
    print("\n".join(head), flush=True)

    rows = []
    if args.speed_table:
        for name in args.models:
            print(f"  measuring {name} ...", flush=True)
            rows.append(_run_job("model", name, args, {"conv_ceiling": ceil["conv_gflops"]}))
        print()
        print(_text_table(rows, CONSOLE))

    backend_rows: list[dict] = []
    summary = ""
    if args.backends:
        for name in args.models:
            print(f"  backends {name} ({', '.join(args.backend_list)}) ...", flush=True)
            backend_rows += _run_job("backends", name, args, {"ceilings": ceil})
        print()
        print(_text_table(backend_rows, [(c, c) for c in BACKEND_CONSOLE]))
        summary = backend_summary(backend_rows)
        print(summary)

    mem_rows: list[dict] = []
    if args.check_memory:
        mname = args.memory_model or args.models[0]
        n = args.memory_clips or args.clips
        for k in (n, 4 * n, 16 * n):
            print(f"  memory check: {mname}, {k} songs ...", flush=True)
            mem_rows.append(_run_job("memory", mname, args, {"n": k}))
        mem_note, _ = memory_verdict(mem_rows)
        print(mem_note)

    sweep_rows: list[dict] = []
    if args.sweep:
        for name in args.models:
            print(f"  sweep {name} ...", flush=True)
            sweep_rows += _run_job("sweep", name, args, {})
        print(_text_table(sweep_rows, [(c, c) for c in SWEEP_COLUMNS]))

    busy_after = cpu_busy()
    wall = time.perf_counter() - t_start
    tail = f"other load at end: {busy_after:.0f}% busy; bench wall time {wall:.0f} s" if busy_after is not None else f"bench wall time {wall:.0f} s"
    print(tail)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# lab.bench: embedding extraction speed", "", *[f"- {h}" for h in head], f"- {tail}", ""]
    if rows:
        _write_csv(out / "bench.csv", rows, COLUMNS)
        md += [_md_table(rows, COLUMNS), ""]
    if backend_rows:
        _write_csv(out / "backends.csv", backend_rows, BACKEND_COLUMNS)
        md += ["## Backends (model seconds per clip, best pass; `*` = fastest within the golden tolerance)", "",
               _md_table(backend_rows, BACKEND_COLUMNS), "", summary, ""]
    if mem_rows:
        _write_csv(out / "memory.csv", mem_rows, MEMORY_COLUMNS)
        md += ["## Memory (streaming)", "", f"- {mem_note}", "", _md_table(mem_rows, MEMORY_COLUMNS), ""]
    if sweep_rows:
        _write_csv(out / "sweep.csv", sweep_rows, SWEEP_COLUMNS)
        md += ["## Knob sweep (model time per clip, best pass)", "", _md_table(sweep_rows, SWEEP_COLUMNS), ""]
    md += ["Columns: `*_s_per_clip` model seconds per clip (decoded audio in memory); `*_audio_s_per_s` seconds of "
           "audio embedded per wall second; `e2e` = `lab.embed.extract` with decoding in its background thread; "
           "`setup_s` = building the optimized copy; `peak_rss_*` = VmHWM of each phase in the model's own process; "
           "`max_abs_diff` = ours vs baseline outputs; `within_tol` = allclose(rtol=atol=1e-4).", ""]
    (out / "bench.md").write_text("\n".join(md))
    print(f"wrote {out / 'bench.csv'} and {out / 'bench.md'}")
    return {"rows": rows, "memory": mem_rows, "sweep": sweep_rows, "backends": backend_rows, "ceilings": ceil,
            "machine": info, "busy_before": busy_before, "busy_after": busy_after}


if __name__ == "__main__":
    main()
