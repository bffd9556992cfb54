"""Musicnn: the musically motivated CNN of Pons et al. 2018, "End-to-end learning for music audio
tagging at scale" (ISMIR 2018, arXiv:1711.02520), in the small-back-end variant trained on
MTG-Jamendo by Won et al. 2020 (minzwon/sota-music-tagging-models, ``training/model.py:
Musicnn(dataset='jamendo')``).

3 s window -> log-mel (96, 188) -> five parallel front-end branches (vertical "timbre" filters
and horizontal "temporal" filters) -> (561, 188) -> three Conv1d blocks with residuals ->
[max ‖ mean] over time = 1506-d trunk -> dense1 + BN + ReLU = 200-d embedding -> 50 tags.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lab.models.base import TaggerSpec
from lab.models.frontend import SAMPLE_RATE, Conv1dBlock, MelTagger


@dataclass
class MusicnnConfig:
    n_mels: int = 96
    # Vertical (timbre) filters span a fraction of the mel axis: int(0.7*96)=67, int(0.4*96)=38
    # rows, 7 frames (~0.1 s) wide; height as a fraction so the filters scale with n_mels.
    timbre_channels: int = 204
    timbre_heights: tuple[float, ...] = (0.7, 0.4)
    timbre_width: int = 7
    # Horizontal (temporal) filters run over the mel-averaged energy; at 16 ms per frame they
    # span ~2 s / 1 s / 0.5 s. Odd lengths so padding k//2 keeps all 188 frames.
    temporal_channels: int = 51
    temporal_lengths: tuple[int, ...] = (129, 65, 33)
    # The jamendo back end; dataset='msd' upstream would be 512 channels and dense 500.
    backend_channels: int = 64
    backend_kernel: int = 7
    n_backend_layers: int = 3
    dense_dim: int = 200
    n_tags: int = 50


class TimbreConv(nn.Module):
    """Conv2d (h, w) without freq padding -> BN -> ReLU -> max over the remaining freq rows.

    Upstream ``Conv_V``. (B, 1, F, T) -> (B, cout, T). Keys ``conv``, ``bn``.
    """

    def __init__(self, cout: int, height: int, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, cout, (height, width), padding=(0, width // 2))
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn(self.conv(x)))  # (B, cout, F - height + 1, T)
        return h.amax(dim=2)  # (B, cout, T): pitch-invariant max over frequency


class TemporalConv(nn.Module):
    """Mean over all mel bins -> Conv1d(k, pad k//2) -> BN -> ReLU.

    Upstream ``Conv_H``. (B, 1, F, T) -> (B, cout, T). Keys ``conv``, ``bn``.
    """

    def __init__(self, cout: int, length: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, cout, length, padding=length // 2)
        self.bn = nn.BatchNorm1d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.mean(dim=2)  # (B, 1, T): the energy envelope
        return self.relu(self.bn(self.conv(h)))  # (B, cout, T)


class Musicnn(MelTagger):
    """Pons et al. 2018 musicnn (jamendo). Input (B, 48000) at 16 kHz; embedding (B, 200)."""

    info = TaggerSpec("musicnn", SAMPLE_RATE, 3 * SAMPLE_RATE, 200, "Pons et al. 2018 (musicnn)")

    def __init__(self, config: MusicnnConfig | None = None) -> None:
        super().__init__()
        c = config or MusicnnConfig()
        self.init_mel_frontend(c.n_mels)
        # Front end: key order layers.0 .. layers.4 = timbre branches, then temporal branches.
        timbre = [TimbreConv(c.timbre_channels, int(f * c.n_mels), c.timbre_width)
                  for f in c.timbre_heights]
        temporal = [TemporalConv(c.temporal_channels, k) for k in c.temporal_lengths]
        self.layers = nn.ModuleList(timbre + temporal)
        front = (c.timbre_channels * len(c.timbre_heights)
                 + c.temporal_channels * len(c.temporal_lengths))  # 2*204 + 3*51 = 561
        # Back end: layer1 maps to backend_channels, the rest are residual (pool 1 = no pooling).
        cin = front
        for i in range(1, c.n_backend_layers + 1):
            block = Conv1dBlock(cin, c.backend_channels, c.backend_kernel, stride=1, pool=1)
            setattr(self, f"layer{i}", block)
            cin = c.backend_channels
        self.n_backend_layers = c.n_backend_layers
        # Trunk = [max ‖ mean] over time of [front, r1, r2, r3]: 2 * (561 + 3*64) = 1506.
        trunk_dim = 2 * (front + c.n_backend_layers * c.backend_channels)
        self.dense1 = nn.Linear(trunk_dim, c.dense_dim)
        self.bn = nn.BatchNorm1d(c.dense_dim)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.dense2 = nn.Linear(c.dense_dim, c.n_tags)

    def forward_from_frontend(self, db: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.spec_bn(db.unsqueeze(1))  # (B, 1, 96, 188)
        front = torch.cat([layer(h) for layer in self.layers], dim=1)  # (B, 561, 188)

        # Back end: every block after the first is residual; all three outputs are kept.
        feats = [front]
        r = self.layer1(front)  # (B, 64, 188)
        feats.append(r)
        for i in range(2, self.n_backend_layers + 1):
            r = getattr(self, f"layer{i}")(r) + r
            feats.append(r)
        h = torch.cat(feats, dim=1)  # (B, 753, 188)

        # Global pooling over time; max first, then mean (the order dense1 was trained on).
        trunk = torch.cat([h.amax(dim=2), h.mean(dim=2)], dim=1)  # (B, 1506)
        emb = self.relu(self.bn(self.dense1(trunk)))  # (B, 200)
        tags = torch.sigmoid(self.dense2(self.dropout(emb)))
        return {"embedding": emb, "tags": tags, "trunk": trunk}
