"""Pitch- and tempo-shifted audio (section 3.2.1 of the study), made once and checked.

A :class:`Shift` is the ``transform`` of a :class:`lab.datasets.derived.TransformedDataset`:
``shift(y, sr, clip)`` returns the clip's shifted audio. Shifted audio is derived data: it is
computed once per (source fingerprint, kind, amount, backend + version, sample rate) and written
atomically to a cache folder (``paths.derived``), so a second run of any model or transform
computes no shift. Each entry also stores the *achieved* shift, measured against the source when
the entry was made (:func:`achieved`), so a run can report what the engine really did.

Conventions
-----------
* ``amount`` is a ratio for both kinds: tempo 1.5 plays 1.5x faster (a 30-s clip lasts 20 s),
  pitch 1.5 raises every frequency by 1.5x, i.e. ``12 log2(1.5) = +7.02`` semitones.
* Backends: ``rubberband`` -- the Rubber Band Library inside ``pedalboard``'s wheel
  (``pedalboard.time_stretch``, high quality, formant preservation *off* so a pitch shift moves
  the whole spectrum as resampling-based shifters, librosa and Rubber Band's CLI default do);
  ``librosa`` -- librosa's phase vocoder (``librosa.effects.time_stretch`` / ``pitch_shift``).
  Licences: pedalboard is GPLv3 and bundles Rubber Band (GPLv2+ or commercial); librosa is ISC.
* ``length``: a tempo shift changes the duration. ``"loop"`` (default) loops or cuts the shifted
  audio to the source's duration, so both sides fill the same windows with music (no padding);
  ``"natural"`` keeps the natural length, and the pipeline zero-pads clips shorter than one
  window (counted as ``n_padded``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Callable

import librosa
import numpy as np

from lab.core.errors import LabError
from lab.core.storage import atomic_write, file_sha256
from lab.datasets.audio import AudioError, check_usable

log = logging.getLogger(__name__)

KINDS = ("pitch", "tempo")
BACKENDS = ("rubberband", "librosa")
LENGTHS = ("loop", "natural")
CODE_VERSION = "1"  # bump when the shift computation changes


def semitones(ratio: float) -> float:
    """Semitones of a frequency ratio: ``12 log2(ratio)`` (1.5 -> 7.02)."""
    return 12.0 * math.log2(ratio)


def backend_version(backend: str) -> str:
    """``<backend>-<version>`` of the engine, part of every cache key."""
    if backend == "rubberband":
        import pedalboard

        return f"rubberband-pedalboard{pedalboard.__version__}"
    if backend == "librosa":
        return f"librosa{librosa.__version__}"
    raise LabError(f"shift.backend={backend!r} must be one of {', '.join(BACKENDS)}")


def validate(kind: str, amount: float, backend: str, length: str = "loop") -> None:
    """Raise :class:`LabError` with one sentence for a bad shift setting."""
    if kind not in KINDS:
        raise LabError(f"shift.kind={kind!r} must be one of {', '.join(KINDS)}")
    if backend not in BACKENDS:
        raise LabError(f"shift.backend={backend!r} must be one of {', '.join(BACKENDS)}")
    if length not in LENGTHS:
        raise LabError(f"shift.length={length!r} must be one of {', '.join(LENGTHS)}")
    if not (isinstance(amount, (int, float)) and 0.25 <= float(amount) <= 4.0):
        raise LabError(f"shift.amount={amount!r} must be a ratio in [0.25, 4] (pitch 1.5 = +7.02 semitones; tempo 1.5 = 1.5x faster)")


def shift_audio(y: np.ndarray, *, sr: int, kind: str, amount: float, backend: str = "rubberband") -> np.ndarray:
    """Shift ``y`` in pitch or tempo.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float
        Mono audio.
    sr : int > 0
    kind : {"pitch", "tempo"}
    amount : float in [0.25, 4]
        Ratio: tempo ``amount`` times faster, or every frequency ``amount`` times higher.
    backend : {"rubberband", "librosa"}

    Returns
    -------
    y_shift : np.ndarray [shape=(m,)], float32
        ``m ~ n`` for pitch, ``m ~ n / amount`` for tempo.
    """
    validate(kind, amount, backend)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise LabError(f"y must be mono with shape (n,), got shape={y.shape}")
    if backend == "rubberband":
        import pedalboard

        out = pedalboard.time_stretch(y[None, :], float(sr),
                                      stretch_factor=float(amount) if kind == "tempo" else 1.0,
                                      pitch_shift_in_semitones=semitones(amount) if kind == "pitch" else 0.0,
                                      high_quality=True, preserve_formants=False)[0]
    elif kind == "tempo":
        out = librosa.effects.time_stretch(y, rate=float(amount))
    else:
        out = librosa.effects.pitch_shift(y, sr=sr, n_steps=semitones(amount))
    return np.ascontiguousarray(out, dtype=np.float32)


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Loop ``y`` (repeat from its start) or cut it to exactly ``n`` samples."""
    return np.resize(y, n).astype(np.float32, copy=False)


# ---------------------------------------------------------------- achieved shift (measurement)

ONSET_HOP = 256


def _onset(y: np.ndarray, sr: int) -> np.ndarray:
    return librosa.onset.onset_strength(y=np.asarray(y, dtype=np.float32), sr=sr, hop_length=ONSET_HOP)


def _scale_fit(o0: np.ndarray, o1: np.ndarray, lo: float, hi: float) -> float:
    """The ``r`` in a log grid of 600 ratios maximising corr(o1(t), o0(r t)) over the overlap."""
    best, best_r = -np.inf, float("nan")
    t1, t0 = np.arange(o1.size, dtype=np.float64), np.arange(o0.size, dtype=np.float64)
    for r in np.geomspace(lo, hi, 600):
        n = min(o1.size, int((o0.size - 1) / r) + 1)  # frames of o1 whose image r t lies inside o0
        if n < 0.5 * o1.size or n * r < 0.5 * o0.size:  # compare at least half of each envelope: tiny overlaps fit by chance
            continue
        a, b = o1[:n], np.interp(t1[:n] * r, t0, o0)
        if a.std() == 0 or b.std() == 0:
            continue
        c = float(np.corrcoef(a, b)[0, 1])
        if c > best:
            best, best_r = c, float(r)
    return best_r


def tempo_ratio(y0: np.ndarray, y1: np.ndarray, *, sr: int, lo: float = 0.3, hi: float = 3.0) -> float:
    """Achieved tempo ratio of ``y1`` against its source ``y0``: the time scale that aligns their onsets.

    Finds ``r`` maximising the correlation of ``o1(t)`` with ``o0(r t)`` (onset-strength envelopes,
    ``librosa.onset.onset_strength``) over a log grid of 600 ratios in ``[lo, hi]``. Both files start
    at the same musical instant, so the whole envelope aligns only at the true ratio; unlike a ratio
    of two beat-tracker tempi this has no octave errors. Returns ``nan`` for audio without onsets.
    """
    return _scale_fit(_onset(y0, sr), _onset(y1, sr), lo, hi)


def _bpm(o: np.ndarray, sr: int) -> float:
    return float(librosa.feature.tempo(onset_envelope=o, sr=sr, hop_length=ONSET_HOP)[0])


def beat_tempo_ratio(y0: np.ndarray, y1: np.ndarray, *, sr: int) -> float:
    """Ratio of ``librosa.feature.tempo`` estimates (BPM of ``y1`` / BPM of ``y0``); prone to octave errors."""
    t0 = _bpm(_onset(y0, sr), sr)
    return _bpm(_onset(y1, sr), sr) / t0 if t0 > 0 else float("nan")


def _log_spectrum(y: np.ndarray, sr: int, grid: np.ndarray, n_fft: int) -> np.ndarray:
    S = np.abs(librosa.stft(np.asarray(y, dtype=np.float32), n_fft=n_fft, hop_length=n_fft // 2)).mean(axis=1)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    s = np.log(np.interp(grid, freqs, S) + 1e-6)
    # Subtract the spectral envelope (moving mean over one octave) so harmonic peaks, not the
    # overall tilt, decide the alignment.
    s = s - np.convolve(s, np.ones(241) / 241, mode="same")
    return (s - s.mean()) / (s.std() + 1e-12)


def pitch_ratio(y0: np.ndarray, y1: np.ndarray, *, sr: int, fmin: float = 80.0, fmax: float = 6000.0,
                max_semitones: float = 24.0) -> float:
    """Achieved pitch ratio of ``y1`` against ``y0``: the shift of the long-term log-frequency spectrum.

    Both mean magnitude spectra (STFT, ``n_fft=8192``: 2 Hz bins at 16 kHz) are sampled on a grid of
    1/20 semitone from ``fmin`` to ``fmax``, their envelope removed, and the lag (within
    ``+-max_semitones``) with the highest correlation per overlapping grid point is taken: a pitch
    shift translates harmonic peaks along log frequency. Returns ``2 ** (lag_semitones / 12)``.
    """
    step = 1 / 20  # semitones per grid point
    grid = fmin * 2.0 ** (np.arange(0, semitones(fmax / fmin), step) / 12)
    n_fft = 8192 if sr >= 12000 else 4096
    s0, s1 = _log_spectrum(y0, sr, grid, n_fft), _log_spectrum(y1, sr, grid, n_fft)
    n = s0.size
    full = np.correlate(s1, s0, mode="full") / (n - np.abs(np.arange(-(n - 1), n)))  # lag = index - (n-1)
    max_lag = int(round(max_semitones / step))
    lags = np.arange(-max_lag, max_lag + 1)
    best = lags[int(np.argmax(full[lags + n - 1]))]
    return float(2.0 ** (best * step / 12))


def achieved(y0: np.ndarray, y1: np.ndarray, *, sr: int) -> dict[str, float]:
    """Both ratios of ``y1`` against its source ``y0``: a tempo shift should leave pitch at 1 and vice versa.

    Returns ``tempo_ratio`` (onset scale fit), ``pitch_ratio`` (log-spectrum shift) and
    ``beat_tempo_ratio`` (ratio of beat-tracker tempi, shown for comparison).
    """
    o0, o1 = _onset(y0, sr), _onset(y1, sr)
    b0 = _bpm(o0, sr)
    return {"tempo_ratio": _scale_fit(o0, o1, 0.3, 3.0), "pitch_ratio": pitch_ratio(y0, y1, sr=sr),
            "beat_tempo_ratio": _bpm(o1, sr) / b0 if b0 > 0 else float("nan")}


# ---------------------------------------------------------------- the derived-audio cache


class DerivedAudioCache:
    """A folder of ``<key>.npz`` files (audio + measured shift); ``put`` is atomic (temp file + ``os.replace``)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, *, audio: bool = True) -> dict[str, np.ndarray] | None:
        """The entry's arrays (``audio=False`` skips reading the samples), or None if absent or damaged."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                return {k: z[k] for k in z.files if audio or k != "y"}
        except Exception:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            log.warning("derived-audio entry %s is unreadable; recomputing it", p)
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        atomic_write(self.path(key), lambda f: np.savez(f, **arrays))


def _default_fingerprint(clip) -> str:
    """Same as ``Dataset.fingerprint`` for a file clip, so entries made either way are shared."""
    try:
        digest = file_sha256(clip.path)
    except OSError:
        digest = "unreadable:" + clip.path
    offset, duration = getattr(clip, "offset", 0.0), getattr(clip, "duration", None)
    if offset or duration is not None:
        digest += f"@{offset:.6f}+{duration}"
    return digest


class Shift:
    """Pitch or tempo shift of a clip, cached on disk; the ``transform`` of a ``TransformedDataset``.

    Parameters
    ----------
    kind : {"pitch", "tempo"}
    amount : float
        Ratio (see the module docstring).
    backend : {"rubberband", "librosa"}
    cache_dir : path
        Derived-audio cache folder (``paths.derived``).
    sr : int
        The sample rate the shift runs at (the models' 16 kHz); part of the key.
    length : {"loop", "natural"}
        What to do with the changed duration of a tempo shift (module docstring).
    fingerprint : callable(clip) -> str, optional
        Content fingerprint of the source clip (the dataset's); default: file SHA-256 + excerpt bounds.
    min_seconds : float
        Shifted audio shorter than this is refused (``AudioError`` reason ``too_short``).
    measure : bool
        Measure the achieved ratios (:func:`achieved`, ~1 s per 30-s clip) when an entry is made.

    Attributes
    ----------
    key : str
        Every parameter that changes the output, engine version included (the embedding cache
        key appends it to the source fingerprint).
    computed, reused : int
        Shifts computed vs read from the cache by this object.
    """

    def __init__(self, kind: str, amount: float, backend: str = "rubberband", *, cache_dir: str | os.PathLike = ".cache/derived",
                 sr: int = 16000, length: str = "loop", fingerprint: Callable | None = None, min_seconds: float = 1.0,
                 measure: bool = True) -> None:
        amount = float(amount)
        validate(kind, amount, backend, length)
        self.kind, self.amount, self.backend, self.sr, self.length = kind, amount, backend, int(sr), length
        self.version = backend_version(backend)
        self.cache = DerivedAudioCache(cache_dir)
        self.fingerprint = fingerprint or _default_fingerprint
        self.min_seconds = float(min_seconds)
        self.measure = bool(measure)
        self.computed = 0
        self.reused = 0
        self.seconds = 0.0  # wall time spent shifting (not measuring) in this process
        self._lock = threading.Lock()
        # Without length: the derived audio does not depend on it, only what the model sees does.
        self.audio_key = f"shift={kind}|amount={amount!r}|{self.version}|formants=off|sr={self.sr}|v{CODE_VERSION}"
        self.key = f"{self.audio_key}|length={length}"

    def __repr__(self) -> str:
        return f"Shift({self.kind} x{self.amount:g}, {self.version}, length={self.length})"

    def entry_key(self, clip) -> str:
        """Hex key of ``clip``'s derived-audio entry."""
        return hashlib.sha256(f"{self.fingerprint(clip)}|{self.audio_key}".encode()).hexdigest()

    def derive(self, y: np.ndarray, clip) -> np.ndarray:
        """The shifted audio of ``clip`` at its natural length (cache first); ``y`` is its decoded source."""
        key = self.entry_key(clip)
        hit = self.cache.get(key)
        if hit is not None and "y" in hit:
            with self._lock:
                self.reused += 1
            return hit["y"]
        check_usable(y, sr=self.sr, path=clip.path, min_seconds=self.min_seconds)
        t0 = time.perf_counter()
        try:
            out = shift_audio(y, sr=self.sr, kind=self.kind, amount=self.amount, backend=self.backend)
        except LabError:
            raise
        except Exception as err:  # noqa: BLE001 - an engine failure skips this clip with a reason
            raise AudioError(clip.path, "shift_failed", f"{self.backend} could not shift the audio ({err})") from None
        dt = time.perf_counter() - t0
        # Shorter than min_seconds (a very short source sped up) or broken output: skipped with a reason.
        check_usable(out, sr=self.sr, path=clip.path, min_seconds=self.min_seconds)
        meas = achieved(y, out, sr=self.sr) if self.measure else dict.fromkeys(("tempo_ratio", "pitch_ratio", "beat_tempo_ratio"), float("nan"))
        self.cache.put(key, {"y": out, "seconds": np.float64(dt), "meta": np.array(json.dumps(
            {"clip": clip.id, "key": self.audio_key, **meas}))})
        with self._lock:
            self.computed += 1
            self.seconds += dt
        return out

    def __call__(self, y: np.ndarray, sr: int, clip) -> np.ndarray:
        """Shifted audio of ``clip`` (``y`` [shape=(n,)] its source at ``sr``), fitted to ``self.length``."""
        if int(sr) != self.sr:
            raise LabError(f"the shift was configured for sr={self.sr} but the audio comes at sr={sr}")
        out = self.derive(y, clip)
        return fit_length(out, len(y)) if self.length == "loop" else out

    def measured(self, clip) -> dict[str, float] | None:
        """The achieved ratios and shifting seconds stored with ``clip``'s entry, or None if not derived yet."""
        hit = self.cache.get(self.entry_key(clip), audio=False)
        if hit is None or "meta" not in hit:
            return None
        meta = json.loads(str(hit["meta"]))
        return {k: float(meta[k]) for k in ("tempo_ratio", "pitch_ratio", "beat_tempo_ratio")} | {"seconds": float(hit["seconds"])}
