"""Check the shift engines on real clips: seconds per song and achieved vs nominal ratio, per backend.

    python -m lab.studies.transforms.check --audio-dir ../shared/music/gtzan_mini/genres --amount 1.5 --out bench_results

For every audio file under ``--audio-dir`` (decoded at 16 kHz as the models see it) and each backend
and kind, times :func:`lab.studies.transforms.shift.shift_audio` (wall and process CPU seconds: on a shared machine the
CPU time is the comparable number) and measures the achieved ratios with
:func:`lab.studies.transforms.shift.achieved`; writes ``shift_check.csv`` (one row per clip x backend x kind) and
``shift_check.md`` (median and 10th-90th percentiles), and prints the summary.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import librosa
import numpy as np

from lab.datasets import audio
from lab.datasets.base import AUDIO_EXTENSIONS
from lab.studies.transforms import shift


def roundtrip_lsd(y: np.ndarray, back: np.ndarray, *, sr: int) -> float:
    """Log-spectral distance (dB, RMS over mel bands and frames) between ``y`` and its shift-and-unshift ``back``.

    A quality proxy: an engine that smears transients or adds phasiness cannot undo itself, so the
    round trip ``x amount`` then ``x 1/amount`` drifts from the source. 0 dB = perfect.
    """
    n = min(len(y), len(back))
    a, b = (librosa.feature.melspectrogram(y=v[:n], sr=sr, n_mels=96) for v in (y, back))
    ref = float(a.max())
    # Both in dB re the source's peak, floored 80 dB below it, so near-silent bins do not dominate.
    a, b = (librosa.power_to_db(m, ref=ref, top_db=None).clip(-80, None) for m in (a, b))
    return float(np.sqrt(np.mean((a - b) ** 2)))


def check(files: list[Path], *, amount: float, sr: int = 16000, backends=shift.BACKENDS, log: Path | None = None) -> list[dict]:
    """One row per (file, backend, kind): seconds to shift, achieved tempo / pitch / beat-tempo ratios.

    With ``log``, each row is also appended to that CSV as soon as it is measured.
    """
    rows = []
    for f in files:
        try:
            y = audio.load(f, sr=sr)
        except audio.AudioError as err:
            print(f"skipping {f}: {err.detail}")
            continue
        for b in backends:
            for kind in shift.KINDS:
                t0, c0 = time.perf_counter(), time.process_time()
                out = shift.shift_audio(y, sr=sr, kind=kind, amount=amount, backend=b)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                back = shift.shift_audio(out, sr=sr, kind=kind, amount=1 / amount, backend=b)
                rows.append({"file": str(f), "backend": b, "kind": kind, "amount": amount, "audio_s": len(y) / sr,
                             "shift_s": dt, "shift_cpu_s": dc, **shift.achieved(y, out, sr=sr), "roundtrip_lsd_db": roundtrip_lsd(y, back, sr=sr)})
                if log is not None:
                    new = not log.exists()
                    with open(log, "a", newline="") as fh:  # not `f`: that is the audio file being checked
                        w = csv.DictWriter(fh, fieldnames=list(rows[-1]))
                        if new:
                            w.writeheader()
                        w.writerow(rows[-1])
    return rows


def summary(rows: list[dict]) -> str:
    """Markdown table: per (backend, kind) median [p10, p90] of seconds and achieved ratios."""
    def q(v):
        v = np.asarray(v, dtype=float)
        v = v[np.isfinite(v)]
        return f"{np.median(v):.3f} [{np.percentile(v, 10):.3f}, {np.percentile(v, 90):.3f}]" if v.size else "-"

    lines = ["| backend | shift | n | wall s/song | CPU s/song | tempo ratio (onset fit) | pitch ratio (spectrum) | beat-tempo ratio | within 2% of nominal | round-trip LSD dB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for b in sorted({r["backend"] for r in rows}, reverse=True):
        for kind in shift.KINDS:
            sel = [r for r in rows if r["backend"] == b and r["kind"] == kind]
            if not sel:
                continue
            key = "tempo_ratio" if kind == "tempo" else "pitch_ratio"
            ok = np.mean([abs(r[key] / r["amount"] - 1) <= 0.02 for r in sel])
            lines.append(f"| {b} | {kind} x{sel[0]['amount']:g} | {len(sel)} | {q([r['shift_s'] for r in sel])} | {q([r['shift_cpu_s'] for r in sel])} | "
                         f"{q([r['tempo_ratio'] for r in sel])} | {q([r['pitch_ratio'] for r in sel])} | "
                         f"{q([r['beat_tempo_ratio'] for r in sel])} | {ok:.0%} | {q([r['roundtrip_lsd_db'] for r in sel])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lab.studies.transforms.check", description=__doc__.splitlines()[0])
    p.add_argument("--audio-dir", required=True, type=Path)
    p.add_argument("--amount", type=float, default=1.5)
    p.add_argument("--per-folder", type=int, default=0, help="first N files of each folder only (0 = all)")
    p.add_argument("--out", type=Path, default=Path("bench_results"))
    a = p.parse_args(argv)
    files = sorted(f for f in a.audio_dir.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS)
    if a.per_folder:
        files = [f for f in files if sorted(f.parent.iterdir()).index(f) < a.per_folder]
    shift.achieved(np.random.default_rng(0).normal(size=16000 * 3).astype(np.float32),
                   np.random.default_rng(1).normal(size=16000 * 3).astype(np.float32), sr=16000)  # JIT warm-up, not timed
    shift.shift_audio(np.zeros(16000, np.float32) + 0.1, sr=16000, kind="pitch", amount=1.5, backend="librosa")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "shift_check.csv").unlink(missing_ok=True)
    rows = check(files, amount=a.amount, log=a.out / "shift_check.csv")
    md = summary(rows)
    (a.out / "shift_check.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
