"""Running a tagger over windows fast: an optimized inference copy, worker threads, per-model knobs.

An internal of extraction (:mod:`lab.extract.embed`); studies that need gradients (the dream) use the
plain model from :func:`lab.extract.pipeline.build_model` instead. ``python -m lab.bench`` measures the
knobs against the original way of working.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from lab.core.errors import LabError
from lab.extract.backends import load_backend, parse_precision, torch_bf16
from lab.extract.sharding import shard_indices  # noqa: F401 - re-exported: extraction's shard option lives here
from lab.models.base import Tagger

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Inference: how windows go through the model.
#
# Measured with ``python -m lab.bench --sweep`` on the reference machine (2-core AMD EPYC Zen 4 VM,
# torch 2.13 CPU with oneDNN; numbers in README "Extraction speed"). What mattered, biggest first:
#  * One worker thread per core, each running whole batches with ONE intra-op thread, instead of
#    one batch at a time spread over both cores by OpenMP. Small convolutions parallelise badly
#    over two threads (a barrier at every op; with other load on the machine, a spinning thread
#    waits for a descheduled one), two independent windows keep both cores busy. torch releases
#    the GIL inside ops, so Python threads suffice.
#  * Batch size 1. A (1, 64, 96, 1813) activation is already 44 MB; bigger batches only add cache
#    misses and page faults: with 2 workers, batch 4 ran 1.5-2.4x slower per clip than batch 1 on
#    every model, and batch 1 was best everywhere (fcn: tied with one 2-thread batch, in noise).
#  * BatchNorm folded into the convolution before it, and ReLU applied after max-pooling (an
#    identical result on 4-8x fewer elements; now done in lab/models/frontend.py's blocks
#    themselves, so the plain models get it too): fcn 0.10 -> 0.045 s/clip, crnn
#    0.14 -> 0.056, hcnn 0.38 -> 0.27 (all with channels_last); 5-10% for the others.
#  * channels_last for the 2-D convolution models (oneDNN keeps its native layout between layers,
#    max-pooling is vectorised): fcn 0.095 -> 0.045, crnn 0.115 -> 0.056, hcnn 0.37 -> 0.27,
#    attention 0.28 -> 0.26 s/clip. It slows musicnn (0.16 -> 0.20; 1-channel timbre convs with tall
#    kernels) and means nothing to the 1-D sample-level models, hence per model.
#  * Not adopted: inference_mode vs no_grad (same speed within noise; inference_mode is used);
#    processes instead of threads (musicnn ~12% faster, fcn and sample slower, and forking torch is
#    fragile); torch.compile (28 s to compile attention for 7% per window); the TorchScript
#    freeze path (deprecated in torch 2.13, no faster than this on fcn).
#  * attention stays near 1.4x: its 27 GFLOP per window already run at ~85-90% of the measured 3x3
#    convolution ceiling; even with its ReLUs and residual adds deleted it would only reach 1.45x.
#    More needs lower precision (bf16, outside the golden tolerance) or fewer FLOPs: Winograd on
#    the stride-1 3x3 convs (15.4 of 26.8 GFLOP) would cut at most 1.47x, short of 2x (README).
# ---------------------------------------------------------------------------------------------

MAX_AUTO_WORKERS = 4  # auto workers = min(intra-op thread budget, this); measured only up to 2 cores
CHECK_TOL = dict(rtol=1e-4, atol=1e-4)  # optimized copy vs the model itself (the golden tolerance)


@dataclass(frozen=True)
class InferenceKnobs:
    """How one model's windows are run. ``workers=None``: one per intra-op thread (see above)."""

    batch_size: int = 1
    channels_last: bool = False
    workers: int | None = None


# Per-model defaults, chosen by ``python -m lab.bench --sweep`` (model seconds per 30 s clip with
# these knobs on 2 workers x 1 thread; the baseline in brackets):
# fcn 0.045 (0.15), musicnn 0.16 (0.35), crnn 0.056 (0.16), attention 0.26 (0.38), hcnn 0.27 (0.63),
# sample 0.19 (0.50), se 0.51 (1.32).
DEFAULT_KNOBS: dict[str, InferenceKnobs] = {
    "fcn": InferenceKnobs(batch_size=1, channels_last=True),
    "musicnn": InferenceKnobs(batch_size=1, channels_last=False),
    "crnn": InferenceKnobs(batch_size=1, channels_last=True),
    "attention": InferenceKnobs(batch_size=1, channels_last=True),
    "hcnn": InferenceKnobs(batch_size=1, channels_last=True),
    "sample": InferenceKnobs(batch_size=1, channels_last=False),
    "se": InferenceKnobs(batch_size=1, channels_last=False),
}


def _fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval BatchNorm into the convolution it follows, in place; returns how many.

    Pairs are found by the checkpoints' naming convention, shared by all blocks of the zoo: a
    child ``conv`` (``conv_1``, ...) whose output goes straight into the sibling ``bn`` (``bn_1``,
    ...). The BatchNorm becomes an ``Identity``. :func:`optimize_for_inference` checks the result.
    """
    n = 0
    for module in model.modules():
        for name, conv in list(module.named_children()):
            m = re.fullmatch(r"conv(_\d+)?", name)
            if not m or not isinstance(conv, (nn.Conv1d, nn.Conv2d)):
                continue
            bn_name = "bn" + (m.group(1) or "")
            bn = getattr(module, bn_name, None)
            if (isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)) and bn.num_features == conv.out_channels
                    and bn.running_mean is not None and type(bn).forward is nn.modules.batchnorm._BatchNorm.forward):
                setattr(module, name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
                n += 1
    return n


def optimize_for_inference(model: Tagger, *, channels_last: bool = False, check: bool = True) -> Tagger:
    """An eval-mode copy of ``model`` that computes the same outputs faster; ``model`` is untouched.

    The copy is checked against ``model`` on a probe window (every output of ``forward_features``
    within ``CHECK_TOL``); if it disagrees, a warning is logged and ``model`` itself is returned.
    """
    fast = copy.deepcopy(model).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    _fold_batchnorm(fast)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    if check:
        rng = np.random.default_rng(0)
        probe = torch.from_numpy((0.1 * rng.standard_normal((1, model.info.input_length))).astype(np.float32))
        probe = probe.to(next(model.parameters()).device)
        with torch.inference_mode():
            want, got = model.forward_features(probe), fast.forward_features(probe.clone())
        bad = [k for k in want if not torch.allclose(got[k], want[k], **CHECK_TOL)]
        if bad:
            log.warning("optimized %s disagrees with the model on %s; using the model as it is",
                        model.info.name, ", ".join(bad))
            return model
    return fast


class InferenceEngine:
    """Runs a model over (n, input_length) float32 windows; a context manager owning the workers.

    Any :class:`~lab.models.protocol.EmbeddingModel` runs; the optimized copy, the exported backends
    and bf16 apply to the taggers (:class:`~lab.models.base.Tagger`), the others run as given.

    ``batch_size`` / ``channels_last`` / ``workers`` left as ``None`` take the model's entry of
    ``DEFAULT_KNOBS``. ``workers`` > 1 runs batches on that many threads; while the engine is open
    torch's (process-wide) intra-op thread count is set to ``threads // workers`` (usually 1), and
    restored on exit. ``optimize=False`` runs ``model`` itself.
    """

    def __init__(self, model, *, batch_size: int | None = None, workers: int | None = None,
                 channels_last: bool | None = None, optimize: bool = True, device: str = "cpu",
                 backend: str = "torch", precision: str = "fp32", weights_id: str | None = None,
                 graph_dir: str | os.PathLike | None = None) -> None:
        knobs = DEFAULT_KNOBS.get(model.info.name, InferenceKnobs())
        tagger = isinstance(model, Tagger)  # other models (lab.models.protocol) run as given, on PyTorch
        self.device = torch.device(device)
        on_cpu = self.device.type == "cpu"
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise LabError(f"embed.device={device} was asked for, but torch sees no CUDA GPU; use embed.device=cpu")
        self.precision = parse_precision(precision)
        if self.device.type == "cuda" and precision == "fp32":
            # TF32 convolutions/matmuls (torch's cuDNN default) differ from fp32 by ~1e-3, outside
            # the golden tolerance; exact mode turns them off (process-wide, like torch's flag).
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        # An accelerator wants big batches from one thread; the CPU knobs were measured for cores.
        self.batch_size = (knobs.batch_size if on_cpu else 16) if batch_size is None else batch_size
        if model.info.input_length is None:
            self.batch_size = 1  # whole clips differ in length: one clip per batch
        budget = torch.get_num_threads()
        self.workers = workers or (knobs.workers or max(1, min(budget, MAX_AUTO_WORKERS)) if on_cpu else 1)
        for what, v in (("batch_size", self.batch_size), ("workers", self.workers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{what}={v!r} must be a positive integer")
        self.threads_per_worker = max(1, budget // self.workers) if self.workers > 1 else budget
        self.channels_last = knobs.channels_last if channels_last is None else channels_last
        self.optimized = optimize and tagger  # BatchNorm folding follows the zoo's naming: taggers only
        # An exported graph (ONNX Runtime / OpenVINO) where the backend asks for one and passes the
        # probe check; else PyTorch: the optimized copy (or the model), maybe under bf16 autocast.
        runner, self.choice = load_backend(model, weights_id=weights_id or "unknown", backend=backend,
                                           precision=precision, cache_dir=graph_dir, threads=self.threads_per_worker,
                                           streams=self.workers, device=self.device.type)
        if runner is None:
            runner = optimize_for_inference(model, channels_last=self.channels_last) if self.optimized else model
            if not on_cpu:
                runner = runner.to(self.device)
            if self.precision == "bf16":
                runner, why = torch_bf16(runner, reference=model)
                if why:
                    self.choice.reason = "; ".join(r for r in (self.choice.reason, why) if r)
                    self.choice.precision = "fp32"
        else:
            self.optimized = False  # the backend optimizes its own graph
        self.model = runner
        self.backend = self.choice.backend
        self.max_inflight = 2 * self.workers  # batches submitted but not collected: bounds memory
        self._pool: ThreadPoolExecutor | None = None
        self._saved_threads: int | None = None

    def describe(self) -> str:
        return (f"backend={self.backend} precision={self.choice.precision} device={self.device} batch_size={self.batch_size} workers={self.workers}x{self.threads_per_worker}thr "
                f"channels_last={self.channels_last} optimized={self.optimized}")

    def __enter__(self) -> "InferenceEngine":
        if self.workers > 1:
            # Set before the pool's threads exist: torch gives each new thread the current count.
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads_per_worker)
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="embed")
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(b, L) windows -> ((b, dim), (b, n_tags)) float32, in the calling thread."""
        with torch.inference_mode():  # thread-local: every worker enters it itself
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            e, t = self.model.embed_and_tag(x)
        e = e.float().cpu().numpy()
        # a model without tags (lab.models.protocol) gives None: zero tag columns, so clips still concatenate
        return e, (t.float().cpu().numpy() if t is not None else np.zeros((len(e), 0), np.float32))

    def submit(self, batch: np.ndarray) -> Future:
        """Start one batch; on a worker when the engine is open with workers > 1, else right away."""
        if self._pool is not None:
            return self._pool.submit(self.forward, batch)
        fut: Future = Future()
        try:
            fut.set_result(self.forward(batch))
        except BaseException as err:  # noqa: BLE001 - handed to the caller via the future
            fut.set_exception(err)
        return fut

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All windows [shape=(n, L)] -> ((n, dim), (n, n_tags)) float32, in order."""
        if self._pool is None and self.workers > 1:
            with self:
                return self.run(windows)
        bs = self.batch_size
        futures = [self.submit(windows[i : i + bs]) for i in range(0, len(windows), bs)]
        out = [f.result() for f in futures]
        return np.concatenate([e for e, _ in out]), np.concatenate([t for _, t in out])
