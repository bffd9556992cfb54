"""``python -m lab.bench``: arguments, the subprocess driver, and the tables it prints and writes."""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.extract.bench.jobs import (
    BACKEND_COLUMNS,
    BACKEND_CONSOLE,
    COLUMNS,
    CONSOLE,
    MEMORY_COLUMNS,
    MODELS,
    SWEEP_COLUMNS,
    backend_summary,
    job_backends,
    job_memory,
    job_model,
    job_sweep,
    memory_verdict,
)
from lab.extract.bench.machine import ceilings, cpu_busy, machine_info


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
    p = argparse.ArgumentParser(prog="python -m lab.bench", description=(sys.modules["lab.extract.bench"].__doc__ or "").split("\n\n")[0],
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
    from lab.extract.backends import BACKENDS, backend_version

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
    md = ["# lab.extract.bench: embedding extraction speed", "", *[f"- {h}" for h in head], f"- {tail}", ""]
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
           "audio embedded per wall second; `e2e` = `lab.extract.embed.extract` with decoding in its background thread; "
           "`setup_s` = building the optimized copy; `peak_rss_*` = VmHWM of each phase in the model's own process; "
           "`max_abs_diff` = ours vs baseline outputs; `within_tol` = allclose(rtol=atol=1e-4).", ""]
    (out / "bench.md").write_text("\n".join(md))
    print(f"wrote {out / 'bench.csv'} and {out / 'bench.md'}")
    return {"rows": rows, "memory": mem_rows, "sweep": sweep_rows, "backends": backend_rows, "ceilings": ceil,
            "machine": info, "busy_before": busy_before, "busy_after": busy_after}


if __name__ == "__main__":
    main()
