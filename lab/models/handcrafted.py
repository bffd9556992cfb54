"""The handcrafted baseline (``model=handcrafted``): the classic GTZAN feature set, per clip, with librosa.

"How much better is a tagger than plain MFCCs?" This model answers the baseline half. It follows
the feature families of Tzanetakis & Cook 2002 ("Musical genre classification of audio signals",
IEEE TSAP 10(5)) — timbral texture, rhythm and pitch content — in the form most later GTZAN work
uses (librosa statistics over a whole 30-s clip, as in the widely used ``features_30_sec.csv``),
plus spectral contrast (Jiang et al. 2002). Each clip is taken whole at 22 050 Hz (GTZAN's own
rate); frames are ``n_fft=2048``, hop 512 (librosa's defaults); every frame-level feature is
summarised by its mean and standard deviation over the clip:

======================  ====  ==========================================================
feature                 dims  what
======================  ====  ==========================================================
``mfcc``                40    20 MFCCs (mel 128, dB; librosa), mean and std each
``chroma``              24    12 chroma bins of the STFT, mean and std
``contrast``            14    spectral contrast, 6 octave bands + valley/peak residue, mean and std
``centroid``             2    spectral centroid (Hz)
``bandwidth``            2    spectral bandwidth (Hz)
``rolloff``              2    85 % spectral roll-off (Hz)
``zcr``                  2    zero-crossing rate
``rms``                  2    frame RMS energy
``flux``                 2    spectral flux (librosa's onset strength)
``low_energy``           1    share of frames whose RMS is below the clip's mean RMS (Tzanetakis & Cook)
``tempo``                1    global tempo estimate (BPM, librosa.feature.tempo)
======================  ====  ==========================================================

92 dimensions in all (:data:`FEATURE_NAMES`). The cache holds the raw statistics; the study
standardises them (z-score of every dimension across the study's songs) before clustering, CKA or
the probe, because their scales differ by orders of magnitude (Hz next to shares). It is not
differentiable (librosa runs on NumPy), so the dream does not run on it.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import nn

from lab.core.errors import LabError
from lab.core.storage import text_sha256
from lab.models.base import TaggerSpec
from lab.models.protocol import Built, check_rate, source_digest

SAMPLE_RATE = 22050  # GTZAN's own rate; librosa's default
N_FFT, HOP = 2048, 512
N_MFCC = 20
FEATURE_VERSION = "1"  # bump when a feature's definition changes


def _stats(name: str, n: int) -> list[str]:
    if n == 1:
        return [f"{name}_mean", f"{name}_std"]
    return [f"{name}{i}_mean" for i in range(n)] + [f"{name}{i}_std" for i in range(n)]


FEATURE_NAMES: tuple[str, ...] = tuple(
    _stats("mfcc", N_MFCC) + _stats("chroma", 12) + _stats("contrast", 7)
    + [n for f in ("centroid", "bandwidth", "rolloff", "zcr", "rms", "flux") for n in _stats(f, 1)]
    + ["low_energy", "tempo"])


def _mean_std(F: np.ndarray) -> list[np.ndarray]:
    """[shape=(n, frames)] -> [means (n,), stds (n,)]."""
    return [F.mean(axis=1), F.std(axis=1)]


def tuning(power: np.ndarray, sr: int) -> float:
    """The chroma's tuning offset (fractions of a bin), as ``librosa.estimate_tuning(S=power, sr=sr)`` computes it.

    Computed here and passed to ``chroma_stft`` (one pitch track per clip, as before) for the clip with
    no pitched peak at all (silence, noise): librosa takes 0 there too but warns once per clip, and a
    ``warnings.catch_warnings`` around it would not hold while other threads extract clips (its filter
    state is global).
    """
    pitch, mag = librosa.piptrack(S=power, sr=sr)
    pitched = pitch > 0
    if not pitched.any():
        return 0.0
    return float(librosa.pitch_tuning(pitch[(mag >= np.median(mag[pitched])) & pitched], bins_per_octave=12))


def features(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The 92 statistics of :data:`FEATURE_NAMES` for one clip ``y`` [shape=(n,)] -> [shape=(92,)] float32."""
    y = np.asarray(y, dtype=np.float32)
    S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))  # magnitude, computed once for every feature
    power = S**2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr))
    mfcc = librosa.feature.mfcc(S=mel_db, sr=sr, n_mfcc=N_MFCC)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, tuning=tuning(power, sr))
    contrast = librosa.feature.spectral_contrast(S=S, sr=sr)
    centroid = librosa.feature.spectral_centroid(S=S, sr=sr)
    bandwidth = librosa.feature.spectral_bandwidth(S=S, sr=sr)
    rolloff = librosa.feature.spectral_rolloff(S=S, sr=sr, roll_percent=0.85)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP)
    rms = librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP)  # of the samples (from S it would carry the window's loss)
    flux = librosa.onset.onset_strength(S=mel_db, sr=sr)[None, :]
    tempo = librosa.feature.tempo(onset_envelope=flux[0], sr=sr, hop_length=HOP)
    low_energy = float(np.mean(rms[0] < rms[0].mean()))
    blocks = [_mean_std(mfcc), _mean_std(chroma), _mean_std(contrast)]
    blocks += [_mean_std(f) for f in (centroid, bandwidth, rolloff, zcr, rms, flux)]
    out = np.concatenate([np.concatenate(b) for b in blocks] + [np.array([low_energy, float(tempo[0])])])
    return out.astype(np.float32)


class Handcrafted(nn.Module):
    """The feature extractor as an :class:`~lab.models.protocol.EmbeddingModel` (whole clips, no tags)."""

    differentiable = False

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        self.info = TaggerSpec("handcrafted", sample_rate, None, len(FEATURE_NAMES),
                               "Tzanetakis & Cook 2002 feature families, librosa statistics")

    def embed_and_tag(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """(B, n_samples) clips -> ((B, 92) statistics, None)."""
        rows = [features(row, self.info.sample_rate) for row in x.detach().cpu().numpy()]
        return torch.from_numpy(np.stack(rows)), None

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        e, t = self.embed_and_tag(x)
        return {"embedding": e, "tags": t}


def build_handcrafted(*, name: str = "handcrafted", sample_rate: int = SAMPLE_RATE, id: str | None = None,
                      pretrained: bool | None = None, seed: int = 0) -> Built:
    """The handcrafted baseline; ``sample_rate`` is the rate clips are decoded at (22 050 Hz by default)."""
    if pretrained is not None:
        # tables read pretrained=false as "random weights": a feature extractor has none to randomise
        raise LabError(f"model.pretrained={pretrained} does not apply to model=handcrafted (it has no weights); drop the override")
    sr = check_rate("model=handcrafted", sample_rate, None)
    identity = text_sha256("handcrafted", FEATURE_VERSION, librosa.__version__, sr, N_FFT, HOP, source_digest(features))
    return Built(Handcrafted(sr), identity, [], label=id or "handcrafted", standardize=True)
