"""Audio decoding for the lab: mono float32 at the model's rate, with clear rejections.

``load`` decodes exactly as the reference numbers were made (``librosa.load(path, sr=16000,
mono=True)``: channel mean, soxr high-quality resampling) and then refuses audio that would give a
silently wrong embedding: undecodable, empty, non-finite, all-silent or too-short files raise
:class:`AudioError` whose ``reason`` is a short code the dataset layer counts and reports.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np

from lab.errors import LabError

SILENCE_DB = -80.0  # peak below -80 dBFS counts as silent (16-bit dither is about -96 dBFS)


class AudioError(LabError):
    """A file the lab cannot use; ``reason`` is one of unreadable, empty, non_finite, silent, too_short."""

    def __init__(self, path: str | Path, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path, self.reason, self.detail = str(path), reason, detail


def check_usable(y: np.ndarray, *, sr: int, path: str | Path = "<array>", min_seconds: float = 1.0) -> None:
    """Raise :class:`AudioError` if decoded audio ``y`` is empty, non-finite, silent or shorter than ``min_seconds``."""
    if y.size == 0:
        raise AudioError(path, "empty", "file decodes to zero samples")
    if not np.isfinite(y).all():
        raise AudioError(path, "non_finite", "decoded audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak <= 10 ** (SILENCE_DB / 20):
        raise AudioError(path, "silent", f"audio is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS <= {SILENCE_DB:.0f} dBFS)")
    seconds = y.size / sr
    if seconds < min_seconds:
        raise AudioError(path, "too_short", f"audio lasts {seconds:.2f} s, shorter than min_seconds={min_seconds}")


def load(path: str | Path, *, sr: int = 16000, mono: bool = True, min_seconds: float = 1.0,
         offset: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Decode ``path`` to float32 at ``sr`` Hz.

    Parameters
    ----------
    path : str or Path
        Any format libsndfile reads (wav, au, flac, ogg, mp3).
    sr : int > 0
        Target sample rate; resampled with soxr (librosa's default ``soxr_hq``).
    mono : bool
        Down-mix by channel mean, as ``librosa.load`` does.
    min_seconds : float >= 0
        Shorter audio raises :class:`AudioError` (reason ``too_short``).
    offset, duration : float >= 0, float > 0 or None
        Decode only ``duration`` seconds starting ``offset`` seconds in (an excerpt of a long
        recording); ``None`` reads to the end.

    Returns
    -------
    y : np.ndarray [shape=(n,)], float32 (or (channels, n) when ``mono=False``)
    """
    if sr <= 0:
        raise LabError(f"sr={sr} must be a positive number")
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "unreadable", "file does not exist")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty", "file is zero bytes")
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; the failure itself is reported below.
            warnings.simplefilter("ignore")
            y, _ = librosa.load(path, sr=sr, mono=mono, offset=offset, duration=duration)
    except Exception as err:  # noqa: BLE001 - decoders raise many types; all mean "unreadable"
        msg = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise AudioError(path, "unreadable", f"cannot decode audio ({msg[:200]})") from None
    y = np.asarray(y, dtype=np.float32)
    check_usable(y if y.ndim == 1 else y.mean(axis=0), sr=sr, path=path, min_seconds=min_seconds)
    return y
