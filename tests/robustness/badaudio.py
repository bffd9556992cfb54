"""A folder of bad (and a few good) audio files, made from one real GTZAN clip, for the robustness tests.

Each entry says what the lab must do with it: embed it (``"ok"``) or skip it with a reason
(``"skip:<reason>"``, the reasons of :class:`lab.datasets.audio.AudioError`). Files land in
``root/<label>/``, the layout ``dataset=folder`` reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050  # GTZAN's rate


def _music(source: Path, seconds: float) -> np.ndarray:
    """``seconds`` of the real clip (looped if longer than it), float32 mono at 22.05 kHz."""
    y, sr = sf.read(source, dtype="float32", always_2d=False)
    assert sr == SR and y.ndim == 1
    n = int(seconds * SR)
    return np.resize(y, n).astype(np.float32)


def make(root: Path, source: Path) -> dict[str, tuple[Path, str]]:
    """Write the bad-audio zoo under ``root``; returns {name: (path, expected outcome)}."""
    a, b = root / "bad", root / "good"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    y = _music(source, 30.0)
    out: dict[str, tuple[Path, str]] = {}

    def wav(name: str, data: np.ndarray, sr: int = SR, subtype: str = "PCM_16", folder: Path = a, expect: str = "ok") -> Path:
        p = folder / name
        sf.write(p, data, sr, subtype=subtype, format="WAV")
        out[name] = (p, expect)
        return p

    def raw(name: str, data: bytes, expect: str, folder: Path = a) -> Path:
        p = folder / name
        p.write_bytes(data)
        out[name] = (p, expect)
        return p

    good = wav("reference.wav", y, folder=b)
    wav("reference_copy.wav", y, folder=b)  # a duplicate song (same bytes, other name)
    whole = good.read_bytes()
    raw("truncated.wav", whole[: len(whole) // 3], "ok")  # header promises 30 s, 10 s are there
    raw("corrupt_header.wav", b"\x13\x37" * 22 + whole[44:], "skip:unreadable")  # RIFF header overwritten
    rng = np.random.default_rng(0)
    raw("corrupt_data.wav", whole[:44] + rng.integers(0, 256, len(whole) - 44, dtype=np.uint8).tobytes(), "ok")  # decodes (as noise)
    raw("zero_byte.wav", b"", "skip:empty")
    header = whole[:44]
    wav("header_only.wav", np.zeros(0, np.float32))  # a valid WAV with no frames
    out["header_only.wav"] = (out["header_only.wav"][0], "skip:empty")
    assert len(header) == 44
    mp3 = a / "song.mp3"
    sf.write(mp3, y, SR, format="MP3")
    out["song.mp3"] = (mp3, "ok")
    m = mp3.read_bytes()
    raw("truncated.mp3", m[: len(m) // 2], "ok")  # decodes up to the cut
    raw("corrupt.mp3", b"ID3" + b"\x00" * 7 + bytes(rng.integers(0, 256, 20000, dtype=np.uint8)), "skip:unreadable")
    raw("wav_named.mp3", whole, "ok")  # the decoder looks at the content, not the name
    raw("text_named.wav", b"this is not audio\n" * 100, "skip:unreadable")
    wav("silence.wav", np.zeros(SR * 10, np.float32), expect="skip:silent")
    nan = y[: SR * 10].copy()
    nan[1000:1010] = np.nan
    wav("nan_samples.wav", nan, subtype="FLOAT", expect="skip:non_finite")
    inf = y[: SR * 10].copy()
    inf[5] = np.inf
    wav("inf_samples.wav", inf, sr=16000, subtype="FLOAT", expect="skip:non_finite")  # 16 kHz: no resampler in between
    wav("half_second.wav", y[: SR // 2], expect="skip:too_short")
    import librosa

    wav("sr8000.wav", librosa.resample(y, orig_sr=SR, target_sr=8000), sr=8000)
    wav("sr96000.wav", librosa.resample(y, orig_sr=SR, target_sr=96000), sr=96000, subtype="PCM_24")
    wav("six_channel.wav", np.stack([y * g for g in (1.0, 0.8, 0.6, 0.4, 0.2, 0.1)], axis=1))
    wav("ten_minutes.wav", _music(source, 600.0))
    locked = wav("no_permission.wav", y[: SR * 5], expect="skip:unreadable")
    os.chmod(locked, 0)
    dangling = a / "dangling_link.wav"
    dangling.symlink_to(a / "does_not_exist.wav")
    out["dangling_link.wav"] = (dangling, "skip:unreadable")
    loop = a / "loop_link.wav"
    loop.symlink_to(loop)  # a link to itself: ELOOP on open
    out["loop_link.wav"] = (loop, "skip:unreadable")
    (a / "subdir").mkdir()
    (a / "subdir" / "up").symlink_to(a, target_is_directory=True)  # a directory loop: the scan must end
    return out
