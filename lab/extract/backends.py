"""Inference backends: the taggers' trunks exported to ONNX and run by ONNX Runtime or OpenVINO.

The STFT front end does not export (``torch.stft`` returns complex tensors), so the spectrogram
models are split where :meth:`~lab.models.base.Tagger.forward_from_frontend` starts: PyTorch
computes the dB spectrogram, the backend runs everything after it. The raw-waveform models
(sample, se) are exported whole.

Exported graphs are cached on disk (``<paths.cache>/graphs/<model>/<key>.onnx``), keyed by the model,
its weights id (checkpoint SHA-256 or ``random-<seed>``), the model code (SHA-256 of the source
of its modules), the backend and its version, torch's version and the opset; they are written to
a temporary file and renamed. Every backend model is checked against PyTorch on a probe window
(within the golden tolerance, ``rtol=atol=1e-4``) before use; a missing package, a failed export
or a disagreement falls back to PyTorch with the reason logged and kept in ``reason``.

``backend="auto"`` takes the per-model choice of :data:`AUTO_BACKEND` (measured, see there).
Gradients (the dream) always use the PyTorch model itself.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import logging
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lab.core.errors import LabError
from lab.core.storage import text_sha256
from lab.models.base import Tagger

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "openvino")
BACKEND_CHOICES = ("auto", *BACKENDS)
PRECISIONS = ("fp32", "bf16")
OPSET = 17  # the newest opset the TorchScript exporter covers fully for these ops (SDPA, GRU)
EXPORT_VERSION = "1"  # bump when the export wrapper below changes
CHECK_TOL = dict(rtol=1e-4, atol=1e-4)  # the golden tolerance
# Reduced precision cannot meet the golden tolerance; its probe check only guards against a broken
# graph: window embeddings must keep cosine >= this to PyTorch fp32 and tags within FAST_TAG_ATOL.
FAST_MIN_COSINE = 0.99
FAST_TAG_ATOL = 0.05

# backend="auto": per-model choice by `python -m lab.bench --fast` (model seconds per 30 s clip,
# 4 synthetic clips, best of 3 interleaved passes, 2 workers x 1 thread; all within rtol=atol=1e-4).
# Measured on a quiet Intel Xeon (family 6 model 207, AVX-512) pinned to 2 cores (taskset -c 0,1),
# torch 2.11 / onnxruntime 1.30, because the project's 2-core AMD VM was at 100 % load from other
# work all session (numbers there in notes/i13.md); original loop / torch / onnxruntime:
#   fcn 0.106 / 0.039 / 0.021   musicnn 0.281 / 0.125 / 0.104   crnn 0.140 / 0.055 / 0.032
#   attention 0.335 / 0.218 / 0.198   hcnn 0.499 / 0.191 / 0.178   sample 0.348 / 0.140 / 0.142
#   se 0.985 / 0.435 / 0.404
# OpenVINO could not be installed on that machine; on the (fully loaded) AMD VM it was within noise
# of onnxruntime and torch (see notes/i13.md), so auto does not pick it; embed.backend=openvino works.
AUTO_BACKEND: dict[str, str] = {
    "fcn": "onnxruntime",
    "musicnn": "onnxruntime",
    "crnn": "onnxruntime",
    "attention": "onnxruntime",
    "hcnn": "onnxruntime",
    "sample": "torch",  # tied with onnxruntime (0.140 vs 0.142): no export needed
    "se": "onnxruntime",
}


def parse_backend(backend: str) -> str:
    """Validate an ``embed.backend`` value."""
    if backend not in BACKEND_CHOICES:
        raise LabError(f"embed.backend={backend!r} is unknown; choose one of {', '.join(BACKEND_CHOICES)}")
    return backend


def parse_precision(precision: str) -> str:
    """Validate an ``embed.precision`` value."""
    if precision not in PRECISIONS:
        raise LabError(f"embed.precision={precision!r} is unknown; choose fp32 (exact, default) or bf16 (fast mode)")
    return precision


def backend_version(backend: str) -> str | None:
    """Installed version of a backend's package, or None when it is not installed."""
    if backend == "torch":
        return torch.__version__
    try:
        return importlib.metadata.version(backend)
    except importlib.metadata.PackageNotFoundError:
        return None


def has_frontend(model: Tagger) -> bool:
    """Whether the model has a PyTorch spectrogram front end split off before export."""
    return type(model).forward_from_frontend is not Tagger.forward_from_frontend


def code_version(model: Tagger) -> str:
    """SHA-256 of the source of every ``lab.models`` module the model's class is built from."""
    mods = {c.__module__ for c in type(model).__mro__} | {type(m).__module__ for m in model.modules()}
    mods = sorted(m for m in mods if m.startswith("lab.models"))
    return text_sha256(*(part for name in mods for part in (name, inspect.getsource(sys.modules[name]))))


def graph_key(model: Tagger, *, weights_id: str, backend: str) -> str:
    """Hex key of a model's exported graph for ``backend`` (see the module docstring)."""
    parts = [model.info.name, weights_id, code_version(model), backend, backend_version(backend) or "?",
             f"torch-{torch.__version__}", f"opset-{OPSET}", EXPORT_VERSION]
    return text_sha256(*parts)


class _Exportable(nn.Module):
    """What is exported: the front-end-free part (or the whole raw-waveform model) -> (emb, tags)."""

    def __init__(self, model: Tagger) -> None:
        super().__init__()
        self.model = model
        self.split = has_frontend(model)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.forward_from_frontend(x) if self.split else self.model.forward_features(x)
        return out["embedding"], out["tags"]


def export_onnx(model: Tagger, path: str | os.PathLike) -> Path:
    """Export ``model`` (front end split off) to ONNX at ``path``, atomically; batch axis dynamic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _Exportable(model).eval()
    x = torch.zeros(2, model.info.input_length)
    if wrapper.split:
        with torch.inference_mode():
            x = model.frontend(x)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings_quiet():
            # The TorchScript exporter: the dynamo one needs onnxscript and gave no faster graph.
            torch.onnx.export(wrapper, (x,), tmp, dynamo=False, opset_version=OPSET, input_names=["x"],
                              output_names=["embedding", "tags"],
                              dynamic_axes={"x": {0: "batch"}, "embedding": {0: "batch"}, "tags": {0: "batch"}})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def warnings_quiet():
    """Silence the exporter's tracer warnings (shape asserts become constants: windows are fixed)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass
class BackendChoice:
    """The backend a model runs on and why (``reason`` is empty when the request was met)."""

    requested: str
    backend: str
    version: str
    precision: str
    reason: str = ""
    graph: str = ""  # path of the exported graph, if any


class BackendModel:
    """A tagger running on ONNX Runtime or OpenVINO; duck-types ``Tagger.embed_and_tag``.

    ``threads`` is the intra-op thread count of one call; ``streams`` how many calls may run at
    once from different threads (one per worker of :class:`lab.extract.embed.InferenceEngine`).
    """

    def __init__(self, model: Tagger, graph: Path, backend: str, *, threads: int = 1, streams: int = 1,
                 precision: str = "fp32") -> None:
        self.info = model.info
        self.frontend_model = model if has_frontend(model) else None
        self.backend = backend
        self.precision = precision
        self._local = threading.local()
        self.effective_precision = "fp32"
        if backend == "onnxruntime":
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.log_severity_level = 3
            # No busy-waiting: on a shared 2-core machine a spinning thread steals the other's core.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
        elif backend == "openvino":
            import openvino as ov

            core = ov.Core()
            config = {"INFERENCE_NUM_THREADS": threads * streams, "NUM_STREAMS": streams,
                      "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
            self._compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)
            # Report what OpenVINO chose, not what was asked: older releases run f32 where the CPU
            # lacks AVX512-BF16 / AMX, 2026 releases emulate bf16 on AVX2. The hint is an ov.Type
            # (str() reads "<Type: 'bfloat16'>" since 2026), a string in older releases.
            hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
            name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
            self.effective_precision = "bf16" if name in ("bf16", "bfloat16") else "fp32"
        else:
            raise LabError(f"backend={backend!r} is not an exported-graph backend")

    def _run(self, inp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.backend == "onnxruntime":
            e, t = self._session.run(None, {"x": inp})
            return e, t
        req = getattr(self._local, "request", None)
        if req is None:  # one infer request per worker thread: requests are not thread-safe
            req = self._local.request = self._compiled.create_infer_request()
        res = req.infer({0: inp})
        return np.array(res[0], copy=True), np.array(res[1], copy=True)

    def embed_and_tag(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, input_length) -> ((B, dim) embedding, (B, 50) probabilities), float32."""
        if x.ndim != 2 or x.shape[1] != self.info.input_length:
            raise ValueError(f"{self.info.name} expects windows of shape (B, {self.info.input_length}), got {tuple(x.shape)}")
        if self.frontend_model is not None:
            with torch.inference_mode():
                x = self.frontend_model.frontend(x)
        e, t = self._run(np.ascontiguousarray(x.numpy(), dtype=np.float32))
        return torch.from_numpy(e), torch.from_numpy(t)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        e, t = self.embed_and_tag(x)
        return {"embedding": e, "tags": t}


class TorchBF16:
    """A PyTorch tagger under autocast to bfloat16 (fast mode on the torch backend), fp32 outputs."""

    def __init__(self, model: Tagger) -> None:
        self.model = model
        self.info = model.info

    def embed_and_tag(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            e, t = self.model.embed_and_tag(x)
        return e.float(), t.float()

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        e, t = self.embed_and_tag(x)
        return {"embedding": e, "tags": t}


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere oneDNN emulates it."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: do not claim what we cannot tell
        return True


def torch_bf16(runner, *, reference: Tagger) -> tuple[object, str]:
    """``runner`` under bf16 autocast if it passes the fast-mode probe check, else ``runner`` and why not.

    On a CPU without native bf16 it still runs (measuring fast mode's cost there needs it), with
    one warning; OpenVINO, the other bf16 path, falls back to fp32 by itself.
    """
    if _device_of(runner).type == "cpu" and not native_bf16_cpu():
        log.warning("embed.precision=bf16 on a CPU without native bf16 (AVX512-BF16 or AMX): it is emulated here "
                    "and runs ~10-20x slower than fp32 (musicnn on the project's AVX2 EPYC: 307 s vs 16 s for 50 "
                    "clips); fast mode is for CPUs with AMX/AVX512-BF16 and for GPUs, so use embed.precision=fp32 here")
    fast = TorchBF16(runner)
    bad = disagreement(reference, fast, precision="bf16")
    if bad:
        log.warning("model=%s: bf16 autocast rejected (%s); running fp32", reference.info.name, bad)
        return runner, f"bf16 autocast rejected: {bad}; running fp32"
    return fast, ""


def probe_window(model: Tagger) -> torch.Tensor:
    """One deterministic (1, input_length) noise window at -20 dBFS RMS, as the optimizer's check."""
    rng = np.random.default_rng(0)
    return torch.from_numpy((0.1 * rng.standard_normal((2, model.info.input_length))).astype(np.float32))


def _device_of(runner) -> torch.device:
    """Where ``runner`` computes: its (wrapped) module's parameters; exported graphs take CPU tensors."""
    try:
        return next(getattr(runner, "model", runner).parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def disagreement(model: Tagger, candidate, *, precision: str = "fp32") -> str:
    """Empty if ``candidate`` computes ``model``'s outputs on the probe windows, else what differs.

    ``model`` and ``candidate`` may sit on different devices (the CPU reference of a cuda runner)."""
    x = probe_window(model).to(_device_of(model))
    with torch.inference_mode():
        want = model.forward_features(x)
        e, t = candidate.embed_and_tag(x.to(_device_of(candidate), copy=True))
    e, t = e.float().cpu(), t.float().cpu()
    we, wt = want["embedding"].float().cpu(), want["tags"].float().cpu()
    if precision == "fp32":
        bad = [k for k, got, ref in (("embedding", e, we), ("tags", t, wt)) if not torch.allclose(got, ref, **CHECK_TOL)]
        if bad:
            worst = max(float((e - we).abs().max()), float((t - wt).abs().max()))
            return f"{', '.join(bad)} differ from PyTorch by up to {worst:.2e} (tolerance rtol=atol=1e-4)"
        return ""
    cos = float(torch.nn.functional.cosine_similarity(e, we, dim=1).min())
    tag_diff = float((t - wt).abs().max())
    if cos < FAST_MIN_COSINE or tag_diff > FAST_TAG_ATOL:
        return f"fast mode is off by too much (min cosine {cos:.4f}, max tag difference {tag_diff:.3f})"
    return ""


def load_backend(
    model: Tagger,
    *,
    weights_id: str,
    backend: str = "auto",
    precision: str = "fp32",
    cache_dir: str | os.PathLike | None = None,
    threads: int = 1,
    streams: int = 1,
    device: str = "cpu",
) -> tuple[BackendModel | None, BackendChoice]:
    """``model`` exported to ``backend`` and checked, or None where PyTorch should run it.

    Returns ``(runner, choice)``: ``runner`` is a :class:`BackendModel` when the backend is used
    (``choice.backend`` names it), None for PyTorch (asked for, chosen by ``auto``, or fallen back
    to; ``choice.reason`` says why, also logged as a warning). Never raises for a backend problem.
    ``cache_dir`` holds the exported graphs (None: a folder in the system's temp dir).
    """
    requested = parse_backend(backend)
    parse_precision(precision)
    name = model.info.name
    want = AUTO_BACKEND.get(name, "torch") if requested == "auto" else requested
    reason = ""
    if not isinstance(model, Tagger):
        # the export splits a tagger at its spectrogram front end and is checked against the golden
        # tolerance; a user's model (lab.models.protocol) has neither, so it runs on PyTorch as given
        if requested not in ("auto", "torch"):
            log.warning("model=%s: embed.backend=%s applies to the lab's taggers; running PyTorch", name, requested)
            reason = f"{requested} applies to the lab's taggers only; model {name} runs on PyTorch"
        return None, BackendChoice(requested, "torch", torch.__version__, precision, reason)
    if want != "torch" and device != "cpu":
        want = "torch"
        if requested != "auto":
            reason = f"{requested} runs on the CPU only here; device={device} uses PyTorch"
    if want == "onnxruntime" and precision != "fp32":
        # The CPU execution provider has no bf16 kernels for these ops; fp32 ORT is no fast mode.
        want = "torch" if requested == "auto" else want
        if requested != "auto":
            reason = "onnxruntime has no bf16 CPU kernels; its fast mode runs fp32"
            precision = "fp32"
    if want != "torch" and backend_version(want) is None:
        reason = f"{want} is not installed (pip install {want}); using PyTorch"
        want = "torch"
    if want != "torch":
        try:
            root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "lab-graphs"
            graph = root / name / f"{graph_key(model, weights_id=weights_id, backend=want)}.onnx"
            if not graph.is_file():
                log.info("exporting %s to ONNX for %s (once; cached at %s)", name, want, graph)
                export_onnx(model, graph)
            runner = BackendModel(model, graph, want, threads=threads, streams=streams, precision=precision)
            effective = runner.effective_precision
            if effective != precision:
                reason = "; ".join(r for r in (reason, f"{want} runs {effective} on this CPU (no native {precision})") if r)
            bad = disagreement(model, runner, precision=effective)
            if not bad:
                return runner, BackendChoice(requested, want, backend_version(want) or "", effective, reason, str(graph))
            reason = f"{want} disagrees with PyTorch on the probe window: {bad}; using PyTorch"
        except Exception as err:  # noqa: BLE001 - any export/load failure falls back, with its reason
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            reason = f"{want} failed ({type(err).__name__}: {first}); using PyTorch"
    if reason:
        log.warning("model=%s: %s", name, reason)
    return None, BackendChoice(requested, "torch", torch.__version__, precision, reason)
