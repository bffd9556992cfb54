"""Song embeddings: window a clip, run the tagger in batches, average, and cache on disk.

Windows follow :mod:`lab.extract.windows` (the study's policy; a padded clip is recorded as a
:class:`ClipIssue` of kind ``PADDED`` and counted); entries go through :mod:`lab.extract.cache`,
so every study and ``experiment=tags`` reuse them and an interrupted run resumes.

Speed: see :mod:`lab.extract.inference` (an optimized copy of the model on one worker thread per core);
decoding runs in a background thread ahead of the model, and windows of consecutive clips share
batches.
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from lab.datasets.audio import AudioError
from lab.datasets.base import Clip, Dataset
from lab.extract.cache import EmbeddingCache, cache_key
from lab.extract.inference import InferenceEngine
from lab.extract.windows import frame_windows
from lab.models.protocol import EmbeddingModel

log = logging.getLogger(__name__)


def plural(n: int, word: str) -> str:
    """``1 clip``, ``4 clips`` (log lines read "1 clips" before)."""
    return f"{n} {word}{'' if n == 1 else 's'}"


class IssueKind(enum.Enum):
    """What happened to a clip that did not embed as-is."""

    SKIPPED = "skipped"  # unusable audio: no embedding
    PADDED = "padded"  # shorter than one window: zero-padded to one window


@dataclass(frozen=True)
class ClipIssue:
    """A skipped or padded clip; ``reason`` is a short code (e.g. ``too_short``), ``detail`` a sentence."""

    clip: Clip
    kind: IssueKind
    reason: str
    detail: str


@dataclass
class Embeddings:
    """Embeddings of a dataset's usable clips; every per-clip field is aligned with ``clips``."""

    X: np.ndarray  # (n_clips, dim) float32: mean over windows
    tags: np.ndarray  # (n_clips, n_tags) float32: mean tag probabilities over windows
    clips: list[Clip]
    windows: list[np.ndarray]  # per clip: (n_windows, dim) float32
    window_tags: list[np.ndarray]  # per clip: (n_windows, n_tags) float32
    issues: list[ClipIssue] = field(default_factory=list)
    hits: int = 0
    misses: int = 0
    scaling: tuple[np.ndarray, np.ndarray] | None = None  # (mean, std) X was standardised with, if it was

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.clips])

    @property
    def paths(self) -> np.ndarray:
        return np.array([c.path for c in self.clips])

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.clips]

    @property
    def sources(self) -> list[str]:
        return [c.source_id for c in self.clips]

    @property
    def n_windows(self) -> np.ndarray:
        return np.array([len(w) for w in self.windows], dtype=int)

    @property
    def skipped(self) -> list[ClipIssue]:
        return [i for i in self.issues if i.kind is IssueKind.SKIPPED]

    @property
    def padded(self) -> list[ClipIssue]:
        return [i for i in self.issues if i.kind is IssueKind.PADDED]

    def subset(self, indices: Sequence[int]) -> "Embeddings":
        """Rows ``indices`` (issues of the kept clips only; cache counts unchanged)."""
        idx = list(indices)
        kept = {self.clips[i].id for i in idx}
        return Embeddings(X=self.X[idx], tags=self.tags[idx], clips=[self.clips[i] for i in idx],
                          windows=[self.windows[i] for i in idx], window_tags=[self.window_tags[i] for i in idx],
                          issues=[i for i in self.issues if i.clip.id in kept], hits=self.hits, misses=self.misses,
                          scaling=self.scaling)


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


@dataclass
class _Item:
    """One clip on its way through extraction."""

    index: int
    windows: np.ndarray | None = None  # (n, L) decoded windows; None when the audio was rejected
    issue: ClipIssue | None = None
    emb: list[np.ndarray] = field(default_factory=list)  # per-window outputs as they come back
    tags: list[np.ndarray] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return sum(len(e) for e in self.emb) == len(self.windows)


def _decode(dataset: Dataset, indices: Iterable[int], sr: int, length: int | None) -> Iterator[_Item]:
    """Decode and window each clip; rejected audio becomes an item with a SKIPPED issue."""
    for i in indices:
        clip = dataset.clips[i]
        try:
            y = dataset.load(clip, sr)
        except AudioError as err:
            yield _Item(i, issue=ClipIssue(clip, IssueKind.SKIPPED, err.reason, err.detail))
            continue
        w, pad = frame_windows(y, length)
        issue = ClipIssue(clip, IssueKind.PADDED, "shorter_than_window",
                          f"{len(y) / sr:.1f} s is shorter than one {length / sr:.1f}-s window; zero-padded") if pad and length else None
        yield _Item(i, windows=w, issue=issue)


class _Batcher:
    """Packs windows of consecutive clips into batches of ``engine.batch_size`` and keeps at most
    ``engine.max_inflight`` batches running; hands back each clip once all its windows are done."""

    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine
        self.inflight: deque[tuple[Future, list[tuple[_Item, int]]]] = deque()  # batch, [(clip, n windows)]
        self.parts: list[np.ndarray] = []
        self.segs: list[tuple[_Item, int]] = []

    def add(self, item: _Item) -> list[_Item]:
        done: list[_Item] = []
        j, n = 0, len(item.windows)
        while j < n:
            take = min(self.engine.batch_size - sum(len(p) for p in self.parts), n - j)
            self.parts.append(item.windows[j : j + take])
            self.segs.append((item, take))
            j += take
            if sum(len(p) for p in self.parts) == self.engine.batch_size:
                done += self._submit()
        return done

    def flush(self) -> list[_Item]:
        done = self._submit() if self.parts else []
        while self.inflight:
            done += self._collect_oldest()
        return done

    def _submit(self) -> list[_Item]:
        batch = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
        self.inflight.append((self.engine.submit(batch), self.segs))
        self.parts, self.segs = [], []
        done: list[_Item] = []
        while len(self.inflight) > self.engine.max_inflight:
            done += self._collect_oldest()
        return done

    def _collect_oldest(self) -> list[_Item]:
        fut, segs = self.inflight.popleft()
        e, t = fut.result()
        start, done = 0, []
        for item, n in segs:
            item.emb.append(e[start : start + n])
            item.tags.append(t[start : start + n])
            start += n
            if item.complete:
                done.append(item)
        return done


def extract(
    dataset: Dataset,
    model: EmbeddingModel,
    *,
    weights_id: str,
    cache_dir: str | os.PathLike | None,
    batch_size: int | None = None,
    progress: bool = True,
    workers: int | None = None,
    optimize: bool = True,
    device: str = "cpu",
    backend: str = "auto",
    precision: str = "fp32",
) -> Embeddings:
    """Embed every usable clip of ``dataset`` (cache first), skipping bad audio with a reason.

    Windows of consecutive clips are packed into batches of ``batch_size`` (``None``: the model's
    default in :data:`lab.extract.inference.DEFAULT_KNOBS`) and run on ``workers`` threads (``None``: one
    per intra-op thread torch has, i.e. per core) through an optimized copy of ``model``
    (``optimize=False``: the model as given). Each clip is written to the cache as soon as its
    last window is back. Returns per-clip means and per-window arrays, aligned with the usable clips
    in dataset order. ``backend`` (auto, torch, onnxruntime, openvino) and ``precision`` (fp32, or
    bf16 = fast mode, cached apart) choose how windows run (:mod:`lab.extract.backends`); exported graphs
    are cached under ``cache_dir/graphs``. ``model`` is any :class:`~lab.models.protocol.EmbeddingModel`;
    ``weights_id`` is its identity (checkpoint SHA-256, ``random-<seed>`` or a user model's digest); a
    model taking whole clips (``info.input_length=None``) gets one clip per batch.
    """
    info = model.info
    cache = EmbeddingCache(cache_dir, info.name) if cache_dir else None
    # GPU entries are kept apart from CPU ones: measured on an H200, fp32 cuda differs from the CPU
    # by up to 7.7e-3 on the spectrogram models (cosine >= 0.99998), outside the golden tolerance.
    dev = str(device).split(":")[0]
    variant = precision if dev == "cpu" else f"{precision}@{dev}"
    # "whole" for a model taking whole clips: an entry's facts must be plain arrays (None would need pickle to read back)
    facts = {"model": info.name, "weights_id": weights_id, "sample_rate": info.sample_rate,
             "input_length": info.input_length if info.input_length is not None else "whole"}
    keys: list[str | None] = [None] * len(dataset.clips)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # clip index -> (window embeddings, window tags)
    issues: dict[int, ClipIssue] = {}
    todo: list[int] = []
    for i, clip in enumerate(dataset.clips):
        if cache is not None:
            keys[i] = cache_key(model=info.name, weights_id=weights_id, fingerprint=dataset.fingerprint(clip),
                                sr=info.sample_rate, input_length=info.input_length, precision=variant)
            hit = cache.get(keys[i], expect=facts)
            if hit is not None:
                out[i] = (hit["window_embeddings"], hit["window_tags"])
                if bool(hit.get("padded", False)):
                    issues[i] = ClipIssue(clip, IssueKind.PADDED, "shorter_than_window", "zero-padded to one window (cached)")
                continue
        todo.append(i)
    hits = len(out)

    if todo:
        engine = InferenceEngine(model, batch_size=batch_size, workers=workers, optimize=optimize, device=device,
                                 backend=backend, precision=precision, weights_id=weights_id,
                                 graph_dir=Path(cache_dir) / "graphs" if cache_dir else None)
        log.info("%d of %d clips not in the cache: decoding and embedding them with %s (unusable audio is skipped "
                 "and counted): %s", len(todo), len(dataset.clips), info.name, engine.describe())
        batcher = _Batcher(engine)
        with engine, tqdm(total=len(todo), desc=f"embed {info.name}", unit="clip", disable=not progress) as bar:
            def finish(items: list[_Item]) -> None:
                for it in items:
                    emb, tags = np.concatenate(it.emb), np.concatenate(it.tags)
                    out[it.index] = (emb, tags)
                    if cache is not None:
                        cache.put(keys[it.index], {"window_embeddings": emb, "window_tags": tags,
                                                   "padded": np.array(it.issue is not None), **{k: np.array(v) for k, v in facts.items()}})

            for item in _prefetch(_decode(dataset, todo, info.sample_rate, info.input_length)):
                if item.issue is not None:
                    issues[item.index] = item.issue
                    log.log(logging.WARNING if item.windows is None else logging.INFO, "%s: %s", item.issue.clip.path, item.issue.detail)
                if item.windows is not None:
                    finish(batcher.add(item))
                bar.update(1)
            finish(batcher.flush())

    order = sorted(out)
    clips = [dataset.clips[i] for i in order]
    windows = [out[i][0] for i in order]
    window_tags = [out[i][1] for i in order]
    # float64 accumulation: the mean of many windows in float32 drifts in the last bits
    X = np.stack([w.astype(np.float64).mean(0) for w in windows]).astype(np.float32) if order else np.zeros((0, info.embedding_dim), np.float32)
    T = np.stack([t.mean(0) for t in window_tags]).astype(np.float32) if order else np.zeros((0, 0), np.float32)
    found = [issues[i] for i in sorted(issues)]
    n_skipped = sum(i.kind is IssueKind.SKIPPED for i in found)
    log.info("embeddings for %s: %d from cache, %d computed, %d skipped, %d padded",
             plural(len(order), "clip"), hits, len(todo) - n_skipped, n_skipped, len(found) - n_skipped)
    return Embeddings(X=X, tags=T, clips=clips, windows=windows, window_tags=window_tags, issues=found,
                      hits=hits, misses=len(todo) - n_skipped)
