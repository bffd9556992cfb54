"""The embedding cache: one ``.npz`` per clip, model, weights, audio and window policy, written atomically.

Key: (model, weights digest, audio content and derivation, sample rate, window policy, code
version, reduced precision if any). Each entry is written to a temporary file and renamed, so a
killed run never leaves half a file and the next run resumes where it stopped. An entry holds the
per-window embeddings and tag probabilities and the facts it was made with: one that disagrees is
recomputed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from lab.core.errors import LabError
from lab.core.storage import atomic_write, text_sha256
from lab.extract.windows import WINDOW_POLICY

log = logging.getLogger(__name__)

CODE_VERSION = "1"  # bump when the embedding computation changes


def cache_key(*, model: str, weights_id: str, fingerprint: str, sr: int, input_length: int,
              precision: str = "fp32") -> str:
    """Hex key of one clip's cached embedding (``fingerprint`` covers audio content and derivation).

    The inference backend is not part of it (every backend is checked against PyTorch within the
    golden tolerance, so their entries are interchangeable); reduced precision (fast mode) is.
    """
    extra = () if precision == "fp32" else (precision,)
    return text_sha256(model, weights_id, fingerprint, sr, input_length, WINDOW_POLICY, CODE_VERSION, *extra)


class EmbeddingCache:
    """A folder of ``<key>.npz`` files; ``put`` is atomic (temp file + ``os.replace``)."""

    def __init__(self, root: str | os.PathLike, model: str) -> None:
        self.root = Path(root) / model

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, expect: dict[str, object] | None = None) -> dict[str, np.ndarray] | None:
        """The entry under ``key``, or None when absent, unreadable or made with other ``expect`` facts."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                entry = {k: z[k] for k in z.files}
        except Exception:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            log.warning("cache entry %s is unreadable; recomputing it", p)
            return None
        for k, v in (expect or {}).items():
            if k in entry and str(entry[k]) != str(v):
                log.warning("cache entry %s was made with %s=%s, not %s; recomputing it", p, k, entry[k], v)
                return None
        return entry

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        """Write the entry atomically; a failed write (e.g. a full disk) is one sentence and leaves no file."""
        p = self.path(key)
        try:
            atomic_write(p, lambda f: np.savez(f, **arrays))
        except OSError as err:
            raise LabError(f"cannot write the embedding cache entry {p} ({err.strerror or err}); earlier entries are "
                           f"intact: free space there or point paths.cache (LAB_CACHE_DIR) at another disk, then re-run") from err
