"""Spectrogram front ends and building blocks shared by the Jamendo taggers.

Written once here instead of pasted into every model (as the original code does). The
definitions follow ``../shared/reference/ARCHITECTURES.md`` ("Shared pieces"): torchaudio's
``MelSpectrogram(sr=16000, n_fft=512, f_min=0, f_max=8000)`` + ``AmplitudeToDB()`` re-done with
``torch.stft`` and librosa's HTK mel filterbank, so no torchaudio is needed.

State-dict names match the checkpoints: ``spec.spectrogram.window`` and ``spec.mel_scale.fb``
are registered buffers of the :class:`MelSpectrogram` module stored under ``spec``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import librosa
import numpy as np
import torch
from torch import nn

from lab.models.base import Tagger

SAMPLE_RATE = 16000
N_FFT = 512
HOP = N_FFT // 2  # torchaudio's default hop = win_length // 2
AMIN = 1e-10  # AmplitudeToDB floor: 10*log10(1e-10) = -100 dB


class _Spectrogram(nn.Module):
    """Power spectrogram |STFT|^2 with torchaudio's defaults; holds ``window`` as a buffer."""

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))  # periodic Hann
        self.float64 = False  # set by exact_stft()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, n) -> (B, n_fft//2+1, 1 + n//hop). Reflect padding as torchaudio does;
        # librosa's default 'constant' padding would move the edge frames by up to 23 dB.
        window = self.window
        if self.float64:
            x, window = x.double(), window.double()
        spec = torch.stft(
            x, self.n_fft, hop_length=self.hop, win_length=self.n_fft, window=window,
            center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        return power.float() if self.float64 else power


@contextlib.contextmanager
def exact_stft(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block every STFT of ``model`` runs in float64 (the power is cast back to float32).

    The reference for how far float32 FFT rounding alone (pocketfft/MKL on the CPU, cuFFT on a GPU)
    moves a tagger's outputs: through the dB of quiet bins it reaches 1e-4 to 1e-3 on fcn, musicnn
    and hcnn, the size of the golden tolerance (README, "GPU").
    """
    specs = [m for m in model.modules() if isinstance(m, _Spectrogram)]
    for m in specs:
        m.float64 = True
    try:
        yield model
    finally:
        for m in specs:
            m.float64 = False


class _MelScale(nn.Module):
    """Applies the (n_freqs, n_mels) filterbank ``fb``; the checkpoint's own copy replaces it on load."""

    def __init__(self, n_mels: int, sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> None:
        super().__init__()
        fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sr / 2,
                                 htk=True, norm=None).T
        self.register_buffer("fb", torch.from_numpy(np.ascontiguousarray(fb, dtype=np.float32)))

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        # (B, F, T) -> (B, n_mels, T)
        return torch.matmul(power.transpose(-1, -2), self.fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    """torchaudio-compatible mel power spectrogram: (B, n) waveform -> (B, n_mels, T)."""

    def __init__(self, n_mels: int = 96, sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> None:
        super().__init__()
        self.spectrogram = _Spectrogram(n_fft)
        self.mel_scale = _MelScale(n_mels, sr, n_fft)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mel_scale(self.spectrogram(x))


def power_to_db(power: torch.Tensor) -> torch.Tensor:
    """10*log10(max(power, 1e-10)): absolute dB, no ``top_db`` clipping, no reference scaling."""
    return 10.0 * torch.log10(torch.clamp(power, min=AMIN))


class MelTagger(Tagger):
    """A tagger whose input is the batch-normalised log-mel (fcn, musicnn, crnn, attention).

    Call :meth:`init_mel_frontend` first in ``__init__`` so ``spec.*`` and ``spec_bn.*`` lead the
    state dict, as in the checkpoints.
    """

    def init_mel_frontend(self, n_mels: int) -> None:
        self.spec = MelSpectrogram(n_mels)
        self.spec_bn = nn.BatchNorm2d(1)  # a learned scalar normalisation of the dB values

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        return power_to_db(self.spec(x))  # (B, n) -> (B, n_mels, 1 + n // 256) dB

    def normalized_logmel(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, 1, n_mels, T): checks the window length, then log-mel -> ``spec_bn``."""
        self.check_input(x)
        return self.spec_bn(self.frontend(x).unsqueeze(1))

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        return self.forward_from_frontend(self.frontend(x))


class Conv2dBlock(nn.Module):
    """Conv2d 3x3 (pad 1) -> BatchNorm2d -> ReLU -> MaxPool2d(pool). Keys ``conv``, ``bn``."""

    def __init__(self, cin: int, cout: int, pool: int | tuple[int, int] = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.mp = nn.MaxPool2d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ReLU after the pool: max and ReLU commute exactly (ReLU is monotone), and the pooled
        # tensor is 4-8x smaller (measured: part of fcn 0.10 -> 0.045 s/clip, see lab/extract/embed.py).
        return self.relu(self.mp(self.bn(self.conv(x))))


class Conv1dBlock(nn.Module):
    """Conv1d(k, stride, pad k//2) -> BatchNorm1d -> ReLU -> MaxPool1d(pool). Keys ``conv``, ``bn``."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, pool: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        self.bn = nn.BatchNorm1d(cout)
        self.relu = nn.ReLU()
        self.mp = nn.MaxPool1d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.mp(self.bn(self.conv(x))))  # ReLU after the pool, as in Conv2dBlock
