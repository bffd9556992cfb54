"""The study's window policy: a song is cut into non-overlapping windows of the model's input length.

Windows start at sample 0; the incomplete tail is dropped; the song embedding is the mean of the
window embeddings. A clip shorter than one window (but at least ``dataset.min_seconds``) is
zero-padded to one window, and the caller records that.
"""

from __future__ import annotations

import numpy as np

WINDOW_POLICY = "nonoverlap-from0-droptail-padshort"  # part of every cache key


def frame_windows(y: np.ndarray, length: int) -> tuple[np.ndarray, bool]:
    """Cut ``y`` [shape=(n,)] into non-overlapping windows [shape=(n // length, length)].

    Returns the windows and whether the clip was shorter than one window and zero-padded.
    """
    n = len(y) // length
    if n == 0:
        return np.pad(y, (0, length - len(y)))[None, :].astype(np.float32, copy=False), True
    return np.ascontiguousarray(y[: n * length].reshape(n, length)), False
