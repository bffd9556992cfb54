"""The machine a benchmark runs on: CPU name and load, resident memory, timers, fp32 ceilings, FLOPs."""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import resource
import time
from pathlib import Path
from typing import Callable


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
