"""A built-in, deterministic, SYNTHETIC labelled music set, so the lab runs with no download.

Six procedurally generated styles that differ the way genres do — tempo, metre, rhythm,
percussion and timbre. They are not real music and results on them say nothing about GTZAN; they
exist so ``python -m lab`` works on a fresh machine and so tests have labelled audio with known
structure. Every clip is a pure function of (style, index, seed, seconds, sr).

| label | tempo (BPM) | what plays |
|---|---|---|
| synth-disco | 118-126 | four-on-the-floor kick, off-beat hi-hat, octave bass |
| synth-waltz | 84-96, 3/4 | piano-like decaying triads, no drums |
| synth-ambient | none | slow detuned pad chords with a breathy noise bed |
| synth-dnb | 165-175 | broken kick/snare pattern, busy hats, sub bass |
| synth-folk | 96-108 | bright plucked-string strums |
| synth-metal | 176-190 | distorted power chords over double kick |
"""

from __future__ import annotations

import hashlib

import numpy as np

from lab.datasets.base import Clip, Dataset

STYLES = ("synth-disco", "synth-waltz", "synth-ambient", "synth-dnb", "synth-folk", "synth-metal")
GENERATOR_VERSION = "1"  # bump when the sound changes, so cached embeddings are recomputed


def _midi_hz(m: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69) / 12)


class _Track:
    """An output buffer plus helpers that add events at times in seconds."""

    def __init__(self, seconds: float, sr: int, rng: np.random.Generator) -> None:
        self.sr, self.rng = sr, rng
        self.y = np.zeros(int(round(seconds * sr)))

    def add(self, start: float, sig: np.ndarray, gain: float = 1.0) -> None:
        i = int(start * self.sr)
        if i >= len(self.y):
            return
        n = min(len(sig), len(self.y) - i)
        self.y[i : i + n] += gain * sig[:n]

    def t(self, dur: float) -> np.ndarray:
        return np.arange(int(dur * self.sr)) / self.sr

    def kick(self, dur: float = 0.25) -> np.ndarray:
        t = self.t(dur)
        f = 45 + 90 * np.exp(-t * 30)  # pitch drop gives the thump
        return np.sin(2 * np.pi * np.cumsum(f) / self.sr) * np.exp(-t * 12)

    def noise_hit(self, dur: float, decay: float, bright: bool) -> np.ndarray:
        n = self.rng.standard_normal(int(dur * self.sr))
        if bright:  # crude high-pass: first difference
            n = np.diff(n, prepend=0.0)
        return n * np.exp(-self.t(dur) * decay)

    def tone(self, hz: float, dur: float, partials: tuple[float, ...], decay: float, attack: float = 0.005) -> np.ndarray:
        t = self.t(dur)
        env = np.minimum(t / attack, 1.0) * np.exp(-t * decay)
        sig = sum(a * np.sin(2 * np.pi * hz * (k + 1) * t) for k, a in enumerate(partials) if hz * (k + 1) < self.sr / 2)
        return sig * env


def _disco(tr: _Track, bpm: float, root: int) -> None:
    beat = 60 / bpm
    bass = [root, root + 12, root + 7, root + 12]
    for i in range(int(len(tr.y) / tr.sr / beat)):
        tr.add(i * beat, tr.kick(), 0.9)
        tr.add(i * beat + beat / 2, tr.noise_hit(0.08, 60, True), 0.25)
        tr.add(i * beat + beat / 2, tr.tone(_midi_hz(bass[i % 4] - 12), beat / 2, (1, 0.5, 0.33, 0.25), 6), 0.35)
        if i % 2 == 1:
            tr.add(i * beat, tr.noise_hit(0.2, 20, False), 0.3)  # clap on 2 and 4


def _waltz(tr: _Track, bpm: float, root: int) -> None:
    beat = 60 / bpm
    chords = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)]
    for i in range(int(len(tr.y) / tr.sr / beat)):
        chord = chords[(i // 3) % 4]
        notes = [chord[0] - 12] if i % 3 == 0 else list(chord[1:])  # bass on 1, chord on 2 and 3
        for n in notes:
            tr.add(i * beat, tr.tone(_midi_hz(root + n), 1.6 * beat, (1, 0.4, 0.2, 0.1, 0.05), 2.5), 0.3)


def _ambient(tr: _Track, bpm: float, root: int) -> None:
    chord_len = 8.0
    chords = [(0, 7, 16), (-3, 4, 12), (5, 12, 16), (-5, 7, 14)]
    for i in range(int(len(tr.y) / tr.sr / chord_len) + 1):
        t = tr.t(chord_len + 2)
        env = np.sin(np.pi * np.clip(t / (chord_len + 2), 0, 1)) ** 2
        pad = sum(np.sin(2 * np.pi * _midi_hz(root + n) * (1 + d) * t) for n in chords[i % 4] for d in (-0.003, 0.003))
        tr.add(i * chord_len, pad * env, 0.12)
    tr.y += 0.01 * np.convolve(tr.rng.standard_normal(len(tr.y)), np.ones(8) / 8, "same")


def _dnb(tr: _Track, bpm: float, root: int) -> None:
    step = 60 / bpm / 4  # 16th notes
    kicks, snares = {0, 10}, {4, 12}
    for i in range(int(len(tr.y) / tr.sr / step)):
        s = i % 16
        if s in kicks:
            tr.add(i * step, tr.kick(0.2), 0.8)
        if s in snares:
            tr.add(i * step, tr.noise_hit(0.18, 25, False), 0.5)
        tr.add(i * step, tr.noise_hit(0.03, 120, True), 0.12 if s % 2 else 0.2)
        if s == 0:
            tr.add(i * step, tr.tone(_midi_hz(root - 24), 16 * step, (1, 0.1), 0.8), 0.5)


def _folk(tr: _Track, bpm: float, root: int) -> None:
    beat = 60 / bpm
    chords = [(0, 7, 12, 16, 19), (5, 12, 17, 21, 24), (7, 14, 19, 23, 26), (0, 7, 12, 16, 19)]
    pluck = tuple(1 / (k + 1) ** 0.7 for k in range(10))  # bright, many partials
    for i in range(int(len(tr.y) / tr.sr / (beat / 2))):
        chord = chords[(i // 8) % 4]
        down = i % 2 == 0
        for j, n in enumerate(chord if down else chord[::-1]):
            tr.add(i * beat / 2 + j * 0.012, tr.tone(_midi_hz(root + n), beat, pluck, 5.0, 0.002), 0.12 if down else 0.07)


def _metal(tr: _Track, bpm: float, root: int) -> None:
    beat = 60 / bpm
    riff = [0, 0, 3, 0, 5, 0, 3, 7]
    for i in range(int(len(tr.y) / tr.sr / (beat / 2))):
        t = tr.t(beat / 2)
        hz = _midi_hz(root - 12 + riff[i % 8])
        chord = np.sin(2 * np.pi * hz * t) + np.sin(2 * np.pi * hz * 1.5 * t) + 0.5 * np.sin(2 * np.pi * hz * 2 * t)
        tr.add(i * beat / 2, np.tanh(6 * chord) * np.exp(-t * 2), 0.25)  # tanh = distortion
        tr.add(i * beat / 2, tr.kick(0.12), 0.6)
        if i % 4 == 2:
            tr.add(i * beat / 2, tr.noise_hit(0.15, 25, False), 0.45)


_STYLE_FN = {"synth-disco": (_disco, (118, 126)), "synth-waltz": (_waltz, (84, 96)), "synth-ambient": (_ambient, (60, 60)),
             "synth-dnb": (_dnb, (165, 175)), "synth-folk": (_folk, (96, 108)), "synth-metal": (_metal, (176, 190))}


def generate(style: str, index: int, *, seed: int = 0, seconds: float = 30.0, sr: int = 16000) -> np.ndarray:
    """One synthetic clip: float32 [shape=(round(seconds*sr),)], peak-normalised to 0.8."""
    fn, (lo, hi) = _STYLE_FN[style]
    rng = np.random.default_rng([seed, STYLES.index(style), index])
    tr = _Track(seconds, sr, rng)
    fn(tr, rng.uniform(lo, hi), int(rng.integers(52, 64)))
    y = tr.y / max(np.max(np.abs(tr.y)), 1e-9) * 0.8
    return y.astype(np.float32)


class SynthDataset(Dataset):
    """Clips are generated on demand at the requested rate; nothing is read from disk."""

    def __init__(self, *, n_per_class: int = 8, seconds: float = 30.0, seed: int = 0, min_seconds: float = 1.0,
                 name: str = "synth") -> None:
        clips = [Clip(id=f"{s}/{s}.{i:03d}", label=s, path=f"synth://{s}/{i}?seed={seed}&seconds={seconds}")
                 for s in STYLES for i in range(n_per_class)]
        super().__init__(name=name, clips=clips, root="built-in", min_seconds=min_seconds, synthetic=True,
                         notes=["dataset=synth is procedurally generated audio, not real music"])
        self.seconds, self.seed = seconds, seed

    def load(self, clip: Clip, sr: int) -> np.ndarray:
        style, index = clip.label, int(clip.id.rsplit(".", 1)[1])
        return generate(style, index, seed=self.seed, seconds=self.seconds, sr=sr)

    def fingerprint(self, clip: Clip) -> str:
        return hashlib.sha256(f"synth:{GENERATOR_VERSION}:{clip.path}".encode()).hexdigest()
