"""An example of bringing your own network to the lab (docs/bring-your-own-model.md).

    python -m lab model=custom model.target=examples.byo_model:build model.sample_rate=16000 \
        model.window=48000 dataset=gtzan dataset.root=../shared/music/gtzan_mini

``build(**model.kwargs)`` returns a ``torch.nn.Module`` that maps a batch of windows
[shape=(B, window)] of 16 kHz audio to embeddings [shape=(B, d)]; the lab cuts each song into
windows, averages their embeddings and runs every study on the averages. This one is a small,
untrained, fully differentiable log-mel network (so ``experiment=dream`` runs on it too): 64
log-mel bands -> two 1-D convolutions over time -> mean and max over time -> ``width`` numbers.
Replace it with your own; the only contract is the shapes.
"""

from __future__ import annotations

import librosa
import torch
from torch import nn


class LogMelConvNet(nn.Module):
    sample_rate = 16000  # optional: the lab checks it against model.sample_rate

    def __init__(self, width: int = 64, n_mels: int = 64) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(512))
        self.register_buffer("mel", torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=512, n_mels=n_mels)).float())
        self.conv = nn.Sequential(nn.Conv1d(n_mels, width, 5, padding=2), nn.ReLU(), nn.Conv1d(width, width // 2, 5, padding=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x, 512, hop_length=256, window=self.window, return_complex=True).abs() ** 2  # (B, 257, T)
        h = self.conv(torch.log1p(self.mel @ spec))  # (B, width // 2, T)
        return torch.cat([h.mean(-1), h.amax(-1)], dim=1)  # (B, width)


def build(width: int = 64) -> nn.Module:
    """The network the lab calls (``model.target=examples.byo_model:build``, ``'model.kwargs={width: 64}'``)."""
    return LogMelConvNet(width)
