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

from lab.core.errors import LabError

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


def _why_not_a_file(path: Path) -> str:
    """Why ``path`` cannot be opened as a file, in words (a dataset folder may hold odd entries)."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # pathlib's "Symlink loop" before Python 3.13
            return "symbolic link loop"
        except OSError as err:
            return "symbolic link loop" if err.errno == 40 else "broken symbolic link (its target does not exist)"
        return "symbolic link to something that is not a file"
    return "file does not exist" if not path.exists() else "not a regular file"


def _decoder_message(path: Path, err: Exception) -> str:
    """The most telling decoder message: librosa's ``NoBackendError`` says nothing, libsndfile's own error does."""
    if err.__class__.__name__ == "NoBackendError" or not str(err).strip():
        try:
            import soundfile

            soundfile.info(str(path))
        except Exception as sf_err:  # noqa: BLE001 - only its text is wanted
            text = str(sf_err).strip().splitlines()[0].split(": ")[-1] if str(sf_err).strip() else ""
            # libsndfile's MPEG reader answers a corrupt stream with "File does not exist or is not a
            # regular file", which would send the user looking for a missing file.
            if text and "does not exist" not in text:
                return f"not a format libsndfile or audioread can read: {text[:150]}"
        return "not a readable audio format: corrupt, or an encoding libsndfile and audioread do not support"
    return str(err).strip().splitlines()[0][:200]


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
        raise AudioError(path, "unreadable", _why_not_a_file(path))
    if path.stat().st_size == 0:
        raise AudioError(path, "empty", "file is zero bytes")
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; the failure itself is reported below.
            warnings.simplefilter("ignore")
            y, _ = librosa.load(path, sr=sr, mono=mono, offset=offset, duration=duration)
    except librosa.util.exceptions.ParameterError as err:
        # librosa checks the decoded buffer (down-mix, resampling) and refuses NaN/inf samples itself.
        if "finite" in str(err):
            raise AudioError(path, "non_finite", "decoded audio contains NaN or infinite samples") from None
        raise AudioError(path, "unreadable", f"cannot decode audio ({str(err)[:200]})") from None
    except Exception as err:  # noqa: BLE001 - decoders raise many types; all mean "unreadable"
        raise AudioError(path, "unreadable", f"cannot decode audio ({_decoder_message(path, err)})") from None
    y = np.asarray(y, dtype=np.float32)
    check_usable(y if y.ndim == 1 else y.mean(axis=0), sr=sr, path=path, min_seconds=min_seconds)
    return y
