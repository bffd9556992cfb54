"""``python -m lab.studies.dream.bench``: what one dream step costs, against one inference forward pass.

For each model with a checkpoint: the time of one inference forward (``torch.inference_mode``,
the same ``n_windows`` windows the dream optimises, the plain frozen model) and of one dream step
(forward + backward to the waveform + Adam update, run through :func:`lab.studies.dream.dreaming.dream` itself),
each the best of ``--repeats`` timed runs after a warm-up. Prints a Markdown table with the
machine, torch version, threads and load average (shared machines slow down under load).

    python -m lab.studies.dream.bench --models fcn musicnn crnn --steps 5
    python -m lab.studies.dream.bench --device cuda --steps 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from lab.models import build, model_info
from lab.studies.dream.dreaming import DreamSettings, dream, freeze


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(name: str, *, device: str = "cpu", weights_dir: str | None = None, steps: int = 5,
                repeats: int = 3, n_windows: int = 1) -> dict[str, float | str]:
    """Seconds per inference forward and per dream step of model ``name`` on ``device``."""
    dev = torch.device(device)
    model, _ = build(name, weights_dir=weights_dir)
    model = freeze(model).to(dev)
    L = model_info(name).input_length
    x = (0.1 * torch.randn(n_windows, L)).to(dev)
    target = np.zeros(model.info.embedding_dim, dtype=np.float32)
    fwd = []
    with torch.inference_mode():
        model.embed(x)  # warm-up (allocations, kernel selection)
        for _ in range(repeats):
            _sync(dev)
            t = time.perf_counter()
            model.embed(x)
            _sync(dev)
            fwd.append(time.perf_counter() - t)
    settings = DreamSettings(steps=2, n_windows=n_windows, device=device, progress=False, checkpoint_every=0, log_every=10**9)
    dream(model, target, settings)  # warm-up
    settings.steps = steps
    step = []
    for _ in range(repeats):
        _sync(dev)
        res = dream(model, target, settings)
        _sync(dev)
        step.append(res.seconds / steps)
    f, s = min(fwd), min(step)
    return {"model": name, "device": device, "n_windows": n_windows, "forward_s": f, "step_s": s,
            "step_over_forward": s / f, "steps_per_s": 1 / s, "est_10k_steps_min": 10_000 * s / 60}


def machine() -> str:
    """One line naming the machine the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads{load}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lab.studies.dream.bench", description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["fcn", "musicnn", "crnn"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-windows", type=int, default=1)
    p.add_argument("--weights", default=os.environ.get("LAB_WEIGHTS_DIR", "../shared/weights"))
    p.add_argument("--json", default=None, help="also write the rows here")
    a = p.parse_args(argv)
    print(machine())
    rows = []
    print("| model | device | windows | forward s | dream step s | step / forward | steps/s | 10 000 steps (min) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in a.models:
        r = bench_model(name, device=a.device, weights_dir=a.weights, steps=a.steps, repeats=a.repeats, n_windows=a.n_windows)
        rows.append(r)
        print(f"| {name} | {a.device} | {a.n_windows} | {r['forward_s']:.4f} | {r['step_s']:.4f} | {r['step_over_forward']:.1f} | "
              f"{r['steps_per_s']:.2f} | {r['est_10k_steps_min']:.1f} |", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
