"""Decoding real clips and rejecting broken ones with a reason (never a library traceback)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from lab.datasets import audio
from lab.datasets.audio import AudioError

from conftest import CARNATIC, GTZAN_MINI, need


def test_real_gtzan_clip_decodes_to_16k_mono():
    path = need(GTZAN_MINI / "genres" / "jazz" / "jazz.00001.wav")
    y = audio.load(path, sr=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert 29.9 < len(y) / 16000 < 30.5
    assert 0.01 < np.abs(y).max() <= 1.0


def test_real_carnatic_clip_is_20_seconds():
    path = need(CARNATIC / "example1_mixture.wav")
    assert len(audio.load(path, sr=16000)) == pytest.approx(20 * 16000, abs=160)


def _tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([y, 0.5 * y], axis=1) if channels == 2 else y


def test_stereo_44k_is_downmixed_and_resampled(tmp_path):
    p = tmp_path / "stereo.wav"
    sf.write(p, _tone(2.0, 44100, channels=2), 44100)
    y = audio.load(p, sr=16000)
    assert y.shape == (32000,)
    # channel mean: amplitude (0.5 + 0.25) / 2
    assert np.abs(y).max() == pytest.approx(0.375, abs=0.01)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "unreadable"),  # truncated header
        (lambda p: p.write_bytes(b"this is not audio at all" * 100), "unreadable"),
        (lambda p: sf.write(p, np.zeros(16000 * 3), 16000), "silent"),
        (lambda p: sf.write(p, _tone(0.5, 22050), 22050), "too_short"),
    ],
    ids=["zero-byte", "truncated-header", "garbage", "silence", "half-second"],
)
def test_broken_files_raise_audio_error_with_reason(tmp_path, make, reason):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError) as err:
        audio.load(p, sr=16000, min_seconds=1.0)
    assert err.value.reason == reason
    assert str(p) in str(err.value)


def test_truncated_real_wav_still_decodes_what_is_there(tmp_path):
    """A WAV cut mid-data decodes its remaining samples (libsndfile's behaviour)."""
    src = need(GTZAN_MINI / "genres" / "blues" / "blues.00000.wav")
    p = tmp_path / "cut.wav"
    p.write_bytes(src.read_bytes()[: 44 + 22050 * 2 * 3])  # header + 3 s of 16-bit mono
    y = audio.load(p, sr=16000)
    assert len(y) == pytest.approx(3 * 16000, abs=16)


def test_one_second_clip_is_accepted_at_the_default_minimum(tmp_path):
    p = tmp_path / "one.wav"
    sf.write(p, _tone(1.0, 16000), 16000)
    assert len(audio.load(p, sr=16000, min_seconds=1.0)) == 16000
