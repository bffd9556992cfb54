"""The study's window policy: a song is cut into non-overlapping windows of the model's input length.

Windows start at sample 0; the incomplete tail is dropped; the song embedding is the mean of the
window embeddings. A clip shorter than one window (but at least ``dataset.min_seconds``) is
zero-padded to one window, and the caller records that. A model that takes each clip whole
(``input_length=None``, e.g. the handcrafted features) gets the clip as its one window.
"""

from __future__ import annotations

import numpy as np

WINDOW_POLICY = "nonoverlap-from0-droptail-padshort"  # part of every cache key


def frame_windows(y: np.ndarray, length: int | None) -> tuple[np.ndarray, bool]:
    """Cut ``y`` [shape=(n,)] into non-overlapping windows [shape=(n // length, length)].

    Returns the windows and whether the clip was shorter than one window and zero-padded.
    ``length=None``: the whole clip as one window [shape=(1, n)].
    """
    if length is None:
        return np.ascontiguousarray(y, dtype=np.float32)[None, :], False
    n = len(y) // length
    if n == 0:
        return np.pad(y, (0, length - len(y)))[None, :].astype(np.float32, copy=False), True
    return np.ascontiguousarray(y[: n * length].reshape(n, length)), False
