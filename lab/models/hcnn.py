"""Harmonic CNN of Won, Chun, Nieto & Serra 2020, "Data-driven harmonic filters for audio
representation learning" (ICASSP 2020), as trained on MTG-Jamendo in
minzwon/sota-music-tagging-models (``training/model.py: HarmonicCNN``, jamendo defaults).

5 s window -> power STFT (257, 313) -> learnable triangular harmonic filterbank, 6 harmonics x
128 pitches -> dB (6, 128, 313) -> Conv/residual blocks down to (256, 1, 1) -> dense1-BN-ReLU
(256-d embedding) -> 50 tags.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lab.models.base import Tagger, TaggerSpec
from lab.models.frontend import N_FFT, SAMPLE_RATE, Conv2dBlock, _Spectrogram, power_to_db


@dataclass
class HarmonicCNNConfig:
    n_harmonic: int = 6
    # Pitch grid: C1 (MIDI 24) up to, not including, MIDI 88 = librosa's hz_to_note(16000 / 12)
    # ('E6'), in half-semitone steps -> 128 pitches.
    low_midi: int = 24
    high_midi: int = 88
    semitone_scale: int = 2
    bw_Q: float = 1.0  # initial quality factor; learned, the checkpoint value replaces it
    channels: tuple[int, ...] = (128, 128, 128, 128, 256, 256, 256)
    # Blocks 2-4, 6, 7 are residual (Res_2d_mp); 1 and 5 change the width (Conv_2d).
    residual: tuple[bool, ...] = (False, True, True, True, False, True, True)
    pools: tuple[int | tuple[int, int], ...] = (2, 2, 2, 2, 2, (2, 3), (2, 3))
    n_hidden: int = 256
    n_tags: int = 50


def harmonic_centres(c: HarmonicCNNConfig) -> torch.Tensor:
    """(n_harmonic * n_pitch,) centre frequencies in Hz, harmonic-major, float32.

    Computed in float64 and cast once, as the reference builds them with numpy.
    """
    n_pitch = (c.high_midi - c.low_midi) * c.semitone_scale
    midi = c.low_midi + torch.arange(n_pitch, dtype=torch.float64) / c.semitone_scale
    f0 = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
    return torch.cat([f0 * h for h in range(1, c.n_harmonic + 1)]).float()


class HarmonicSTFT(nn.Module):
    """Waveform (B, n) -> harmonic dB (B, n_harmonic, n_pitch, T). Keys ``bw_Q``, ``spec.window``.

    Each output band is a triangle of peak 1 centred on a harmonic of a pitch, with the ERB-like
    bandwidth (0.1079 f + 24.7) / Q. Q is learnable, so the filterbank is rebuilt every forward.
    """

    BW_ALPHA = 0.1079
    BW_BETA = 24.7

    def __init__(self, c: HarmonicCNNConfig, n_fft: int = N_FFT, sr: int = SAMPLE_RATE) -> None:
        super().__init__()
        self.n_harmonic = c.n_harmonic
        self.n_pitch = (c.high_midi - c.low_midi) * c.semitone_scale
        # Parameter registered before the submodule so the state-dict order is bw_Q, spec.window.
        self.bw_Q = nn.Parameter(torch.tensor([c.bw_Q], dtype=torch.float32))
        self.spec = _Spectrogram(n_fft)
        # Constants derived from the config; the checkpoint does not store them.
        self.register_buffer("f0", harmonic_centres(c), persistent=False)  # (768,)
        self.register_buffer("fft_bins", torch.linspace(0, sr // 2, n_fft // 2 + 1), persistent=False)  # (257,)

    def filterbank(self) -> torch.Tensor:
        """(n_bins, n_bands) triangular weights max(0, 1 - 2|f - f_c| / BW)."""
        bw = ((self.BW_ALPHA * self.f0 + self.BW_BETA) / self.bw_Q).unsqueeze(0)  # (1, 768)
        f0 = self.f0.unsqueeze(0)  # (1, 768)
        f = self.fft_bins.unsqueeze(1)  # (257, 1)
        # Rising and falling edges written as the reference does (not via |f - f_c|): the
        # narrow low filters touch a bin with tiny weights, whose float32 rounding shows in dB.
        up = f * (2 / bw) + 1 - 2 * f0 / bw
        down = f * (-2 / bw) + 1 + 2 * f0 / bw
        return torch.clamp(torch.minimum(up, down), min=0.0)  # (257, 768)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        power = self.spec(x)  # (B, 257, T)
        bands = torch.matmul(power.transpose(1, 2), self.filterbank()).transpose(1, 2)  # (B, 768, T)
        # Harmonic-major band order -> (harmonic, pitch) axes, harmonics become channels.
        bands = bands.reshape(bands.shape[0], self.n_harmonic, self.n_pitch, bands.shape[-1])  # (B, 6, 128, T)
        return power_to_db(bands)


class Res2dMaxPool(nn.Module):
    """Res_2d_mp: conv3x3-BN-ReLU-conv3x3-BN + identity -> ReLU -> MaxPool2d(pool).

    Keys ``conv_1 bn_1 conv_2 bn_2``; channels are kept, so the shortcut needs no projection.
    """

    def __init__(self, channels: int, pool: int | tuple[int, int] = 2) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn_1 = nn.BatchNorm2d(channels)
        self.conv_2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn_2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.mp = nn.MaxPool2d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn_2(self.conv_2(self.relu(self.bn_1(self.conv_1(x)))))
        return self.mp(self.relu(x + out))


class HarmonicCNN(Tagger):
    """Won et al. 2020 Harmonic CNN. Input (B, 80000) at 16 kHz; embedding (B, 256)."""

    info = TaggerSpec("hcnn", SAMPLE_RATE, 5 * SAMPLE_RATE, 256, "Won et al. 2020 (Harmonic CNN)")

    def __init__(self, config: HarmonicCNNConfig | None = None) -> None:
        super().__init__()
        c = config or HarmonicCNNConfig()
        self.hstft = HarmonicSTFT(c)
        self.hstft_bn = nn.BatchNorm2d(c.n_harmonic)  # one scalar normalization per harmonic
        blocks, cin = [], c.n_harmonic
        for i, (cout, res, pool) in enumerate(zip(c.channels, c.residual, c.pools), start=1):
            if res and cin != cout:
                raise ValueError(f"residual block {i} cannot change width ({cin} -> {cout})")
            blocks.append(Res2dMaxPool(cout, pool) if res else Conv2dBlock(cin, cout, pool))
            cin = cout
        self.add_layers(blocks)
        self.dense1 = nn.Linear(cin, c.n_hidden)
        self.bn = nn.BatchNorm1d(c.n_hidden)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.dense2 = nn.Linear(c.n_hidden, c.n_tags)

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        return self.hstft(x)  # (B, 6, 128, 313) dB

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        return self.forward_from_frontend(self.frontend(x))

    def forward_from_frontend(self, db: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.hstft_bn(db)  # (B, 6, 128, 313)
        h = self.run_layers(h)  # (B, 256, 1, 1)
        # The reference global-max-pools over time here; time is already 1 for 5 s windows.
        trunk = h.amax(dim=(2, 3))  # (B, 256)
        emb = self.relu(self.bn(self.dense1(trunk)))  # (B, 256)
        tags = torch.sigmoid(self.dense2(self.dropout(emb)))  # (B, 50)
        return {"embedding": emb, "trunk": trunk, "tags": tags}
