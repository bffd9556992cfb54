"""Song embeddings: window a clip, run the tagger in batches, average, and cache on disk.

Window policy (the study's): non-overlapping windows of the model's input length starting at
sample 0; the incomplete tail is dropped; the song embedding is the mean of the window
embeddings. A clip shorter than one window (but at least ``dataset.min_seconds``) is zero-padded
to one window, and that is logged and counted.

Cache: one ``.npz`` per (model, weights digest, audio content, sample rate, window policy, code
version) under ``<cache>/<model>/``, written to a temporary file and renamed, so a killed run never
leaves half a file and the next run resumes where it stopped. The file holds the per-window
embeddings and tag probabilities, so every study (and ``experiment=tags``) reuses it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from lab.audio import AudioError
from lab.datasets.base import Clip, Dataset
from lab.models.base import Tagger

log = logging.getLogger(__name__)

WINDOW_POLICY = "nonoverlap-from0-droptail-padshort"
CODE_VERSION = "1"  # bump when the embedding computation changes


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

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            log.warning("cache entry %s is unreadable; recomputing it", p)
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
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


def embed_windows(model: Tagger, windows: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over windows [shape=(n, L)] in batches -> ((n, dim), (n, 50)) float32."""
    embs, tags = [], []
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            e, t = model.embed_and_tag(torch.from_numpy(windows[i : i + batch_size]))
            embs.append(e.numpy())
            tags.append(t.numpy())
    return np.concatenate(embs), np.concatenate(tags)


def extract(
    dataset: Dataset,
    model: Tagger,
    *,
    weights_id: str,
    cache_dir: str | os.PathLike | None,
    batch_size: int = 8,
    progress: bool = True,
) -> Embeddings:
    """Embed every usable clip of ``dataset`` (cache first), skipping bad audio with a reason.

    Windows of consecutive clips are packed into batches of ``batch_size``; audio is decoded in a
    background thread one or two clips ahead and never held for more than the current batch, so
    memory does not grow with the number of songs.
    """
    info = model.info
    cache = EmbeddingCache(cache_dir, info.name) if cache_dir else None
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    skipped: list[tuple[str, str, str]] = []
    padded: list[str] = []
    todo: list[tuple[int, str | None]] = []
    for i, clip in enumerate(dataset.clips):
        key = cache_key(model=info.name, weights_id=weights_id, fingerprint=dataset.fingerprint(clip),
                        sr=info.sample_rate, input_length=info.input_length) if cache else None
        hit = cache.get(key) if cache else None
        if hit is not None:
            results[i] = (hit["window_embeddings"], hit["window_tags"])
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

    pending: list[tuple[int, str | None, int, bool]] = []  # clip index, key, n windows, padded
    buf: list[np.ndarray] = []

    def flush() -> None:
        if not buf:
            return
        e, t = embed_windows(model, np.concatenate(buf), batch_size)
        buf.clear()
        start = 0
        for i, key, n, pad in pending:
            results[i] = (e[start : start + n], t[start : start + n])
            start += n
            if cache:
                cache.put(key, {"window_embeddings": results[i][0], "window_tags": results[i][1], "padded": np.array(pad)})
        pending.clear()

    bar = tqdm(total=len(todo), desc=f"embed {info.name}", unit="clip", disable=not progress or not todo)
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
            buf.append(w)
            pending.append((i, key, len(w), note == "padded"))
            if sum(len(b) for b in buf) >= batch_size:
                flush()
        bar.update(1)
    flush()
    bar.close()

    order = sorted(results)
    clips = [dataset.clips[i] for i in order]
    X = np.stack([results[i][0].astype(np.float64).mean(0) for i in order]).astype(np.float32) if order else np.zeros((0, info.embedding_dim), np.float32)
    T = np.stack([results[i][1].mean(0) for i in order]).astype(np.float32) if order else np.zeros((0, 50), np.float32)
    n_windows = np.array([len(results[i][0]) for i in order], dtype=int)
    log.info("embeddings for %d clips: %d from cache, %d computed, %d skipped, %d padded",
             len(order), hits, len(todo) - len(skipped), len(skipped), len(padded))
    return Embeddings(X=X, tags=T, clips=clips, n_windows=n_windows, skipped=skipped, padded=padded,
                      hits=hits, misses=len(todo) - len(skipped))
