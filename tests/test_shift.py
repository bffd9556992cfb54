"""Shifted audio: the engines really shift, the derived-audio cache is atomic and reused, bad sources are skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lab.core.errors import LabError
from lab.datasets.audio import AudioError
from lab.datasets.base import Clip
from lab.studies.transforms import shift as S

SR = 16000


def tone(seconds: float = 4.0, f0: float = 220.0) -> np.ndarray:
    """A harmonic tone with irregular clicks: it has both a pitch and a time scale to measure."""
    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * 0.15
    # Irregular gaps (0.15-0.45 s), so only the true time scale lines the onsets up.
    hits = np.cumsum(np.random.default_rng(0).uniform(0.15, 0.45, size=int(seconds / 0.15)))
    for h in hits[hits < seconds - 0.01]:
        y[int(h * SR): int(h * SR) + 40] += 0.9
    return y.astype(np.float32)


@pytest.mark.slow  # librosa compiles its onset code on first use (~10 s)
@pytest.mark.parametrize("backend", S.BACKENDS)
def test_engines_shift_what_they_say(backend):
    y = tone()
    up = S.shift_audio(y, sr=SR, kind="pitch", amount=1.5, backend=backend)
    fast = S.shift_audio(y, sr=SR, kind="tempo", amount=1.5, backend=backend)
    assert abs(len(up) - len(y)) <= 0.01 * len(y) and abs(len(fast) - len(y) / 1.5) <= 0.01 * len(y)
    m_up, m_fast = S.achieved(y, up, sr=SR), S.achieved(y, fast, sr=SR)
    assert m_up["pitch_ratio"] == pytest.approx(1.5, rel=0.01) and m_up["tempo_ratio"] == pytest.approx(1.0, rel=0.02)
    assert m_fast["tempo_ratio"] == pytest.approx(1.5, rel=0.02) and m_fast["pitch_ratio"] == pytest.approx(1.0, rel=0.01)


def test_bad_settings_are_one_sentence():
    with pytest.raises(LabError, match="shift.kind"):
        S.Shift("speed", 1.5)
    with pytest.raises(LabError, match="shift.amount"):
        S.Shift("pitch", 7.02)  # semitones given where a ratio is expected
    with pytest.raises(LabError, match="shift.backend"):
        S.Shift("pitch", 1.5, "sox")


def _clips(tmp_path: Path, n: int = 3) -> list[Clip]:
    clips = []
    for i in range(n):
        p = tmp_path / f"song{i}.wav"
        sf.write(p, tone(4.0, 200.0 + 40 * i), SR)
        clips.append(Clip(id=f"x/song{i}.wav", label="x", path=str(p)))
    return clips


def test_cache_reused_second_run_computes_nothing(tmp_path):
    clips = _clips(tmp_path)
    first = S.Shift("tempo", 1.5, "rubberband", cache_dir=tmp_path / "derived", measure=False)
    out1 = [first(sf.read(c.path, dtype="float32")[0], SR, c) for c in clips]
    assert (first.computed, first.reused) == (3, 0)
    assert all(len(o) == 4 * SR for o in out1)  # length=loop: back to the source's duration
    second = S.Shift("tempo", 1.5, "rubberband", cache_dir=tmp_path / "derived", length="natural")
    out2 = [second(sf.read(c.path, dtype="float32")[0], SR, c) for c in clips]
    assert (second.computed, second.reused) == (0, 3)  # length does not change the derived audio
    assert all(np.array_equal(a[: len(b)], b) for a, b in zip(out1, out2))
    assert all(abs(len(b) - 4 * SR / 1.5) < 0.01 * SR for b in out2)
    assert second.measured(clips[0])["seconds"] > 0
    # Another amount is another entry; a changed source file is another entry.
    assert S.Shift("tempo", 1.25, "rubberband", cache_dir=tmp_path / "derived").entry_key(clips[0]) != second.entry_key(clips[0])
    sf.write(clips[0].path, tone(4.0, 300.0), SR)
    assert second.entry_key(clips[0]) != first.entry_key(Clip("x/other", "x", clips[1].path))


def test_cache_write_is_atomic_and_damage_is_recomputed(tmp_path, monkeypatch):
    clip = _clips(tmp_path, 1)[0]
    y = sf.read(clip.path, dtype="float32")[0]
    sh = S.Shift("pitch", 1.5, "rubberband", cache_dir=tmp_path / "derived", measure=False)

    def killed(f, **arrays):  # dies half-way through writing, as a killed run would
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(S.np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        sh(y, SR, clip)
    monkeypatch.undo()
    assert not [p for p in (tmp_path / "derived").rglob("*") if p.is_file()]  # no final file, no temp left
    sh(y, SR, clip)
    entry = sh.cache.path(sh.entry_key(clip))
    assert entry.is_file() and sh.computed == 1
    entry.write_bytes(b"garbage")
    sh(y, SR, clip)
    assert sh.computed == 2  # the damaged entry was recomputed, not trusted


def test_too_short_or_silent_source_is_refused_with_a_reason(tmp_path):
    sh = S.Shift("tempo", 1.5, "rubberband", cache_dir=tmp_path / "derived")
    clip = Clip("x/short.wav", "x", str(tmp_path / "short.wav"))
    sf.write(clip.path, tone(1.2), SR)
    with pytest.raises(AudioError) as err:  # 1.2 s sped up 1.5x lasts 0.8 s < min_seconds=1
        sh.derive(tone(1.2), clip)
    assert err.value.reason == "too_short"
    with pytest.raises(AudioError) as err:
        sh.derive(np.zeros(3 * SR, np.float32), clip)
    assert err.value.reason == "silent"
    with pytest.raises(LabError, match="sr="):
        sh(tone(), 22050, clip)
    assert sh.computed == 0


def test_corrupt_source_in_a_transformed_dataset_is_skipped_with_a_reason(tmp_path):
    from lab.datasets.base import Dataset
    from lab.datasets.derived import TransformedDataset

    good = _clips(tmp_path, 1)[0]
    bad = Clip("x/corrupt.wav", "x", str(tmp_path / "corrupt.wav"))
    Path(bad.path).write_bytes(b"RIFF not really a wave file")
    sh = S.Shift("pitch", 1.5, "rubberband", cache_dir=tmp_path / "derived", measure=False)
    shifted = TransformedDataset(Dataset(name="t", clips=[good, bad]), sh)
    assert shifted.load(good, SR).shape == (4 * SR,)
    with pytest.raises(AudioError) as err:
        shifted.load(bad, SR)
    assert err.value.reason == "unreadable" and sh.computed == 1
    assert shifted.fingerprint(good) != Dataset(name="t", clips=[good]).fingerprint(good)  # derivation is in the key
