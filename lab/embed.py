"""Song embeddings: window a clip, run the tagger in batches, average, and cache on disk.

Window policy (the study's): non-overlapping windows of the model's input length starting at
sample 0; the incomplete tail is dropped; the song embedding is the mean of the window
embeddings. A clip shorter than one window (but at least ``dataset.min_seconds``) is zero-padded
to one window, and that is logged and counted.

Cache: one ``.npz`` per (model, weights digest, audio content, sample rate, window policy, code
version) under ``<cache>/<model>/``, written to a temporary file and renamed, so a killed run never
leaves half a file and the next run resumes where it stopped. The file holds the per-window
embeddings and tag probabilities, so every study (and ``experiment=tags``) reuses it.

Speed: windows run one (or a few) at a time on one worker thread per CPU core, each worker with a
single intra-op thread, on an inference copy of the model (BatchNorm folded into the convolutions,
channels-last where it pays; the shared conv blocks apply ReLU after max-pooling for everyone). Per-model settings are in ``DEFAULT_KNOBS``;
``python -m lab.bench`` measures them against the original way of working.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import queue
import re
import tempfile
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from tqdm.auto import tqdm

from lab.audio import AudioError
from lab.errors import LabError
from lab.datasets.base import Clip, Dataset
from lab.models.base import Tagger

log = logging.getLogger(__name__)

WINDOW_POLICY = "nonoverlap-from0-droptail-padshort"
CODE_VERSION = "1"  # bump when the embedding computation changes


def plural(n: int, word: str) -> str:
    """``1 clip``, ``4 clips`` (log lines read "1 clips" before)."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def frame_windows(y: np.ndarray, length: int) -> tuple[np.ndarray, bool]:
    """Cut ``y`` [shape=(n,)] into non-overlapping windows [shape=(n // length, length)].

    Returns the windows and whether the clip was shorter than one window and zero-padded.
    """
    n = len(y) // length
    if n == 0:
        return np.pad(y, (0, length - len(y)))[None, :].astype(np.float32, copy=False), True
    return np.ascontiguousarray(y[: n * length].reshape(n, length)), False


def cache_key(*, model: str, weights_id: str, fingerprint: str, sr: int, input_length: int) -> str:
    """Hex key of one clip's cached embedding."""
    parts = [model, weights_id, fingerprint, str(sr), str(input_length), WINDOW_POLICY, CODE_VERSION]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


class EmbeddingCache:
    """A folder of ``<key>.npz`` files; ``put`` is atomic (temp file + ``os.replace``)."""

    def __init__(self, root: str | os.PathLike, model: str) -> None:
        self.root = Path(root) / model

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, expect: dict[str, str] | None = None) -> dict[str, np.ndarray] | None:
        """The entry ``key``, or None when absent, unreadable, or its stored ``meta_<name>`` differ from ``expect``.

        ``expect`` (model, weights id, sample rate, window length) is checked against what the entry
        says it holds: the key hashes them too, but an entry copied or renamed by hand must not be used.
        """
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                entry = {k: z[k] for k in z.files}
        except Exception:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            log.warning("cache entry %s is unreadable; recomputing it", p)
            return None
        for name, want in (expect or {}).items():
            got = entry.get(f"meta_{name}")
            if got is not None and str(got) != str(want):  # entries from before the meta fields carry none
                log.warning("cache entry %s holds %s=%s, not %s; recomputing it", p, name, got, want)
                return None
        return entry

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        """Write the entry atomically; a failed write (e.g. a full disk) raises one sentence and leaves no file."""
        p = self.path(key)
        tmp = None
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=".npz")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except OSError as err:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise LabError(f"cannot write the embedding cache entry {p} ({err.strerror or err}); earlier entries are "
                           f"intact: free space there or point paths.cache (LAB_CACHE_DIR) at another disk, then re-run") from err
        except BaseException:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise


@dataclass
class Embeddings:
    """Embeddings of a dataset's usable clips, rows aligned with ``clips``."""

    X: np.ndarray  # (n_clips, dim) float32: mean over windows
    tags: np.ndarray  # (n_clips, 50) float32: mean tag probabilities over windows
    clips: list[Clip]
    n_windows: np.ndarray  # (n_clips,) int
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason, detail)
    padded: list[str] = field(default_factory=list)  # ids of clips shorter than one window
    hits: int = 0
    misses: int = 0

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.clips])

    @property
    def paths(self) -> np.ndarray:
        return np.array([c.path for c in self.clips])


def _prefetch(it: Iterator, depth: int = 2) -> Iterator:
    """Run ``it`` in a background thread, ``depth`` items ahead: decoding overlaps model compute."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work() -> None:
        try:
            for item in it:
                q.put(item)
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
            q.put(err)
        q.put(done)

    threading.Thread(target=work, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


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
#    More needs fewer FLOPs (Winograd) or lower precision (bf16), outside the golden tolerance.
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
        with torch.inference_mode():
            want, got = model.forward_features(probe), fast.forward_features(probe.clone())
        bad = [k for k in want if not torch.allclose(got[k], want[k], **CHECK_TOL)]
        if bad:
            log.warning("optimized %s disagrees with the model on %s; using the model as it is",
                        model.info.name, ", ".join(bad))
            return model
    return fast


class InferenceEngine:
    """Runs a tagger over (n, input_length) float32 windows; a context manager owning the workers.

    ``batch_size`` / ``channels_last`` / ``workers`` left as ``None`` take the model's entry of
    ``DEFAULT_KNOBS``. ``workers`` > 1 runs batches on that many threads; while the engine is open
    torch's (process-wide) intra-op thread count is set to ``threads // workers`` (usually 1), and
    restored on exit. ``optimize=False`` runs ``model`` itself.
    """

    def __init__(self, model: Tagger, *, batch_size: int | None = None, workers: int | None = None,
                 channels_last: bool | None = None, optimize: bool = True) -> None:
        knobs = DEFAULT_KNOBS.get(model.info.name, InferenceKnobs())
        self.batch_size = knobs.batch_size if batch_size is None else batch_size
        budget = torch.get_num_threads()
        self.workers = workers or knobs.workers or max(1, min(budget, MAX_AUTO_WORKERS))
        for what, v in (("batch_size", self.batch_size), ("workers", self.workers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{what}={v!r} must be a positive integer")
        self.threads_per_worker = max(1, budget // self.workers) if self.workers > 1 else budget
        self.channels_last = knobs.channels_last if channels_last is None else channels_last
        self.optimized = optimize
        self.model = optimize_for_inference(model, channels_last=self.channels_last) if optimize else model
        self.max_inflight = 2 * self.workers  # batches submitted but not collected: bounds memory
        self._pool: ThreadPoolExecutor | None = None
        self._saved_threads: int | None = None

    def describe(self) -> str:
        return (f"batch_size={self.batch_size} workers={self.workers}x{self.threads_per_worker}thr "
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
        """(b, L) windows -> ((b, dim), (b, 50)) float32, in the calling thread."""
        with torch.inference_mode():  # thread-local: every worker enters it itself
            e, t = self.model.embed_and_tag(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return e.numpy(), t.numpy()

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
        """All windows [shape=(n, L)] -> ((n, dim), (n, 50)) float32, in order."""
        if self._pool is None and self.workers > 1:
            with self:
                return self.run(windows)
        bs = self.batch_size
        futures = [self.submit(windows[i : i + bs]) for i in range(0, len(windows), bs)]
        out = [f.result() for f in futures]
        return np.concatenate([e for e, _ in out]), np.concatenate([t for _, t in out])


@dataclass
class _Pending:
    """A clip whose windows are in flight: filled batch by batch, finished when ``left`` is 0."""

    key: str | None
    emb: np.ndarray
    tags: np.ndarray
    padded: bool
    left: int


def _summary(emb: np.ndarray, tags: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean embedding, mean tags, n windows) of one clip; only these are kept per clip."""
    return emb.astype(np.float64).mean(0).astype(np.float32), tags.mean(0).astype(np.float32), len(emb)


def extract(
    dataset: Dataset,
    model: Tagger,
    *,
    weights_id: str,
    cache_dir: str | os.PathLike | None,
    batch_size: int | None = None,
    progress: bool = True,
    workers: int | None = None,
    optimize: bool = True,
) -> Embeddings:
    """Embed every usable clip of ``dataset`` (cache first), skipping bad audio with a reason.

    Windows of consecutive clips are packed into batches of ``batch_size`` (``None``: the model's
    default in ``DEFAULT_KNOBS``) and run on ``workers`` threads (``None``: one per intra-op
    thread torch has, i.e. per core) through an optimized copy of ``model`` (``optimize=False``:
    the model as given; see :class:`InferenceEngine`). Audio is decoded in a background thread one
    or two clips ahead, at most ``2 * workers`` batches are in flight, and only the per-clip means
    are kept, so memory does not grow with the number of songs.
    """
    info = model.info
    cache = EmbeddingCache(cache_dir, info.name) if cache_dir else None
    results: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}  # clip index -> mean emb, mean tags, n
    skipped: list[tuple[str, str, str]] = []
    padded: list[str] = []
    todo: list[tuple[int, str | None]] = []
    meta = {"model": info.name, "weights_id": weights_id, "sr": str(info.sample_rate), "input_length": str(info.input_length)}
    for i, clip in enumerate(dataset.clips):
        key = cache_key(model=info.name, weights_id=weights_id, fingerprint=dataset.fingerprint(clip),
                        sr=info.sample_rate, input_length=info.input_length) if cache else None
        hit = cache.get(key, expect=meta) if cache else None
        if hit is not None:
            results[i] = _summary(hit["window_embeddings"], hit["window_tags"])
            if bool(hit.get("padded", False)):
                padded.append(clip.id)
        else:
            todo.append((i, key))
    hits = len(results)

    def decoded() -> Iterator[tuple[int, str | None, np.ndarray | None, str]]:
        for i, key in todo:
            clip = dataset.clips[i]
            try:
                y = dataset.load(clip, info.sample_rate)
            except AudioError as err:
                yield i, key, None, f"{err.reason}\t{err.detail}"
                continue
            w, pad = frame_windows(y, info.input_length)
            yield i, key, w, "padded" if pad else ""

    if todo:
        engine = InferenceEngine(model, batch_size=batch_size, workers=workers, optimize=optimize)
        log.info("decoding and embedding %s not in the cache with %s (unusable audio is skipped and counted): %s",
                 plural(len(todo), "clip"), info.name, engine.describe())
        pending: dict[int, _Pending] = {}
        inflight: deque[tuple[Future, list[tuple[int, int, int]]]] = deque()  # batch, [(clip, first window, n)]
        parts: list[np.ndarray] = []
        segs: list[tuple[int, int, int]] = []
        filled = 0

        def collect_oldest() -> None:
            fut, batch_segs = inflight.popleft()
            e, t = fut.result()
            start = 0
            for i, first, n in batch_segs:
                p = pending[i]
                p.emb[first : first + n] = e[start : start + n]
                p.tags[first : first + n] = t[start : start + n]
                start += n
                p.left -= n
                if p.left == 0:
                    del pending[i]
                    results[i] = _summary(p.emb, p.tags)
                    if cache:
                        cache.put(p.key, {"window_embeddings": p.emb, "window_tags": p.tags, "padded": np.array(p.padded),
                                          **{f"meta_{k}": np.array(v) for k, v in meta.items()}})

        def submit() -> None:
            nonlocal filled
            batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
            inflight.append((engine.submit(batch), segs.copy()))
            parts.clear()
            segs.clear()
            filled = 0
            while len(inflight) > engine.max_inflight:
                collect_oldest()

        bar = tqdm(total=len(todo), desc=f"embed {info.name}", unit="clip", disable=not progress)
        with engine:
            for i, key, w, note in _prefetch(decoded()):
                clip = dataset.clips[i]
                if w is None:
                    reason, detail = note.split("\t", 1)
                    skipped.append((clip.path, reason, detail))
                    log.warning("skipped %s: %s", clip.path, detail)
                else:
                    if note == "padded":
                        padded.append(clip.id)
                        log.info("%s is shorter than one %s window (%.1f s); zero-padded to one window",
                                 clip.id, info.name, info.input_length / info.sample_rate)
                    n = len(w)
                    pending[i] = _Pending(key, np.empty((n, info.embedding_dim), np.float32),
                                          np.empty((n, 50), np.float32), note == "padded", n)
                    j = 0
                    while j < n:
                        take = min(engine.batch_size - filled, n - j)
                        parts.append(w[j : j + take])
                        segs.append((i, j, take))
                        filled += take
                        j += take
                        if filled == engine.batch_size:
                            submit()
                bar.update(1)
            if parts:
                submit()
            while inflight:
                collect_oldest()
        bar.close()

    order = sorted(results)
    clips = [dataset.clips[i] for i in order]
    X = np.stack([results[i][0] for i in order]).astype(np.float32) if order else np.zeros((0, info.embedding_dim), np.float32)
    T = np.stack([results[i][1] for i in order]).astype(np.float32) if order else np.zeros((0, 50), np.float32)
    n_windows = np.array([results[i][2] for i in order], dtype=int)
    log.info("embeddings for %s: %d from cache, %d computed, %d skipped, %d padded",
             plural(len(order), "clip"), hits, len(todo) - len(skipped), len(skipped), len(padded))
    return Embeddings(X=X, tags=T, clips=clips, n_windows=n_windows, skipped=skipped, padded=padded,
                      hits=hits, misses=len(todo) - len(skipped))
