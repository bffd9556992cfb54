"""Content digests shared by every layer (datasets, models, caches); depends on nothing in the lab."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes (streamed by :func:`hashlib.file_digest`)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def text_sha256(*parts: object) -> str:
    """SHA-256 hex digest of ``parts`` joined by ``|`` (cache keys of derived data)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
