"""One-shot GPU check: every tagger through the lab's own engine on cuda vs cpu.

    python scripts/gpu_check.py [--models fcn,se] [--clips 4] [--batch 32]

Prints, per model, the max |difference| of embeddings and tags between ``embed.device=cuda``
(fp32, TF32 off) and the CPU path, how far each of the two is from the exact reference (the CPU
model with a float64 STFT, :func:`lab.models.frontend.exact_stft`), the cosine of cuda bf16 (fast
mode) to the CPU, and seconds per 30 s clip on each, then runs ``lab.extract.embed.extract(...,
device="cuda")`` end to end on one model. Random weights (speed and agreement do not depend on the
values). Exits 1 if fp32 cuda is outside the golden tolerance (rtol = atol = 1e-4) of the CPU *and*
more than twice as far from the exact reference as the CPU is: float32 FFT rounding alone (cuFFT vs
pocketfft) moves fcn, musicnn and hcnn by up to ~1e-3 on sparse spectra, which is no error of cuda's.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np
import torch

from lab.extract.bench import MODELS, bench_dataset, cpu_model
from lab.extract.embed import extract
from lab.extract.inference import InferenceEngine
from lab.extract.windows import frame_windows
from lab.models import build
from lab.models.frontend import exact_stft

TOL = dict(rtol=1e-4, atol=1e-4)


def best_of(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (cuDNN autotuning, oneDNN primitives)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--batch", type=int, default=None, help="windows per GPU call (default: the engine's)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    logging.getLogger("lab").setLevel(logging.ERROR)
    if not torch.cuda.is_available():
        print("no CUDA GPU visible to torch: nothing to check")
        return 2
    print(f"GPU: {torch.cuda.get_device_name(0)}; CPU: {cpu_model()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    ds = bench_dataset(args.clips, seconds=30.0, audio_dir=None)
    failed = False
    print(f"{'model':10s} {'windows':>7s} {'cpu s/clip':>10s} {'cuda s/clip':>11s} {'bf16 s/clip':>11s} "
          f"{'max|d| fp32':>11s} {'cpu-exact':>9s} {'cuda-exact':>10s} {'ok':>3s} {'bf16 min cos':>12s}")
    for name in args.models.split(","):
        model, wid = build(name, pretrained=False)
        w = np.concatenate([frame_windows(ds.load(c, 16000), model.info.input_length)[0] for c in ds.clips])
        cpu = InferenceEngine(model, backend="torch")
        gpu = InferenceEngine(model, device="cuda", batch_size=args.batch)
        fast = InferenceEngine(model, device="cuda", batch_size=args.batch, precision="bf16")
        t_cpu, (ec, tc) = best_of(lambda: cpu.run(w), 1)
        t_gpu, (eg, tg) = best_of(lambda: gpu.run(w), args.repeats)
        t_bf, (eb, _) = best_of(lambda: fast.run(w), args.repeats)
        with exact_stft(model):
            ex, tx = InferenceEngine(model, backend="torch").run(w)
        d = max(float(np.abs(eg - ec).max()), float(np.abs(tg - tc).max()))
        d_cpu = max(float(np.abs(ec - ex).max()), float(np.abs(tc - tx).max()))
        d_gpu = max(float(np.abs(eg - ex).max()), float(np.abs(tg - tx).max()))
        ok = bool(np.allclose(eg, ec, **TOL) and np.allclose(tg, tc, **TOL)) or d_gpu <= 2 * d_cpu
        cos = float(np.min(np.sum(eb * ec, 1) / (np.linalg.norm(eb, axis=1) * np.linalg.norm(ec, axis=1) + 1e-30)))
        failed |= not ok
        n = len(ds.clips)
        print(f"{name:10s} {len(w):7d} {t_cpu / n:10.4f} {t_gpu / n:11.5f} {t_bf / n:11.5f} {d:11.1e} {d_cpu:9.1e} {d_gpu:10.1e} "
              f"{'yes' if ok else 'NO':>3s} {cos:12.5f}  ({gpu.describe()})", flush=True)
    name = args.models.split(",")[0]
    model, wid = build(name, pretrained=False)
    t = time.perf_counter()
    emb = extract(ds, model, weights_id=wid, cache_dir=None, device="cuda", progress=False)
    print(f"extract(device='cuda') end to end, {name}: {len(emb.clips)} clips in {time.perf_counter() - t:.2f} s "
          f"(decoding included), X {emb.X.shape}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
