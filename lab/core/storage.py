"""Files every layer shares: atomic writes, content digests and an inter-process lock.

Depends on nothing in the lab. Every cache and checkpoint is written through :func:`atomic_write`;
cache keys are built from :func:`file_sha256` / :func:`text_sha256` / :func:`array_sha256`;
parallel jobs sharing a machine serialise on :func:`exclusive`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` via ``write(file)`` into a temporary file beside it, fsync, then rename.

    A killed process or a full disk never leaves a partial file under ``path``: readers see the
    old file or the new one. The temporary file is removed on any error, which is re-raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_DIGESTS: dict[tuple, str] = {}  # (path, inode, size, mtime_ns) -> digest, for this process


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes (streamed by :func:`hashlib.file_digest`).

    Remembered per process while the file's inode, size and modification time stay the same (as
    git and make trust them): a sweep process fingerprints the same 1000 songs in every job.
    """
    st = os.stat(path)
    key = (os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as f:
            _DIGESTS[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _DIGESTS[key]


def text_sha256(*parts: object) -> str:
    """SHA-256 hex digest of ``parts`` joined by ``|`` (cache keys of derived data)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def array_sha256(a: np.ndarray) -> str:
    """SHA-256 hex digest of an array's values in C order (dtype and shape are the caller's to key)."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@contextlib.contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock (``fcntl.flock``) on ``path`` (created if missing) for the ``with`` block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
