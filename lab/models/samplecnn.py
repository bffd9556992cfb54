"""Sample-level CNNs on the raw waveform, as trained on MTG-Jamendo by Won et al. 2020
(minzwon/sota-music-tagging-models, ``training/model.py: SampleCNN, SampleCNNSE``):

* :class:`SampleCNN` — Lee et al. 2017, "Sample-level deep convolutional neural networks for
  music auto-tagging using raw waveforms" (arXiv:1703.01789).
* :class:`SampleCNNSE` — Kim, Lee & Nam 2018, "Sample-level CNN architectures for music
  auto-tagging using raw waveforms" (arXiv:1710.10451), the ResSE variant: every block is a
  residual block with squeeze-and-excitation.

59049 = 3^10 samples -> (stride 3, then nine pool-3 blocks) a single time step of 512 channels
-> 512-d embedding -> 50 tags. No spectrogram and no input normalization.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from lab.models.base import Tagger, TaggerSpec
from lab.models.frontend import SAMPLE_RATE, Conv1dBlock

INPUT_LENGTH = 3**10  # 59049: each of the ten factors of 3 is consumed by one stride/pool


@dataclass
class SampleCNNConfig:
    """Layer schedule shared by both models; entry i describes ``layer{i+1}``."""

    channels: tuple[int, ...] = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512)
    # layer11 is a 1x1 conv: the time axis is already 1 long, it only mixes channels.
    kernels: tuple[int, ...] = (3,) * 10 + (1,)
    # layer1 downsamples by its stride (a strided "frame" conv) instead of by pooling.
    strides: tuple[int, ...] = (3,) + (1,) * 10
    pools: tuple[int, ...] = (1,) + (3,) * 9 + (1,)
    n_tags: int = 50

    def layers(self) -> list[tuple[int, int, int, int, int]]:
        """[(cin, cout, kernel, stride, pool)] for layer1..layer11; the input has 1 channel."""
        cins = (1,) + self.channels[:-1]
        return list(zip(cins, self.channels, self.kernels, self.strides, self.pools))


class ResSE1d(nn.Module):
    """Residual block with squeeze-excitation (ResSE_1d of the reference).

    conv(k, stride) -> BN -> ReLU -> conv(k) -> BN -> squeeze-excitation, plus the shortcut (a
    strided conv -> BN when the shape changes, else identity) -> ReLU -> MaxPool1d(pool).
    Keys: ``conv_1 bn_1 conv_2 bn_2 dense1 dense2 [conv_3 bn_3]`` in that order.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, pool: int = 3) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv_1 = nn.Conv1d(cin, cout, kernel, stride=stride, padding=pad)
        self.bn_1 = nn.BatchNorm1d(cout)
        self.conv_2 = nn.Conv1d(cout, cout, kernel, padding=pad)
        self.bn_2 = nn.BatchNorm1d(cout)
        # Squeeze-excitation Linears. Kim et al.'s SE has no bottleneck here (both cout x cout).
        # Registered on the block itself, not a submodule, so the keys are layerN.dense1/dense2.
        self.dense1 = nn.Linear(cout, cout)
        self.dense2 = nn.Linear(cout, cout)
        # Projection shortcut only when the identity cannot be added (shape change).
        self.project = stride != 1 or cin != cout
        if self.project:
            # Same kernel and stride as conv_1 (not a 1x1 conv), so the lengths match.
            self.conv_3 = nn.Conv1d(cin, cout, kernel, stride=stride, padding=pad)
            self.bn_3 = nn.BatchNorm1d(cout)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.2)  # inside the main path; identity in eval
        self.mp = nn.MaxPool1d(pool)

    def excite(self, x: torch.Tensor) -> torch.Tensor:
        """Channel gates (B, C, 1) in (0, 1) from the time-averaged activations of x (B, C, T)."""
        # Mean over time, taken with avg_pool1d as the reference does: x.mean() sums in another
        # order and drifts by ~4e-7 from the goldens, avg_pool1d reproduces them bit for bit.
        w = self.relu(self.dense1(F.avg_pool1d(x, x.size(-1)).squeeze(-1)))  # (B, C)
        return torch.sigmoid(self.dense2(w)).unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, cin, T) -> (B, cout, T // stride) -> after pooling (B, cout, T // stride // pool)
        out = self.bn_2(self.conv_2(self.dropout(self.relu(self.bn_1(self.conv_1(x))))))
        out = out * self.excite(out)  # rescale channels before the residual sum
        shortcut = self.bn_3(self.conv_3(x)) if self.project else x
        return self.mp(self.relu(out + shortcut))


class _SampleLevelTrunk(Tagger):
    """Eleven blocks ``layer1``..``layer11`` built from a :class:`SampleCNNConfig`."""

    def _build_trunk(self, c: SampleCNNConfig, block: type[nn.Module]) -> int:
        """Register layer1..layer11 as ``block(cin, cout, kernel, stride, pool)``; return the width."""
        specs = c.layers()
        self.add_layers([block(cin, cout, k, s, p) for cin, cout, k, s, p in specs])
        return specs[-1][1]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 59049) waveform -> (B, 512) layer11 output."""
        h = x.unsqueeze(1)  # (B, 1, 59049): a single input channel
        h = self.run_layers(h)  # layer1 -> (B, 128, 19683) ... layer10 -> (B, 512, 1)
        return h.squeeze(-1)  # (B, 512); squeeze(-1) keeps the batch axis when B = 1


class SampleCNN(_SampleLevelTrunk):
    """Lee et al. 2017 sample-level CNN. Input (B, 59049) at 16 kHz; embedding (B, 512)."""

    info = TaggerSpec("sample", SAMPLE_RATE, INPUT_LENGTH, 512, "Lee et al. 2017 (sample-level CNN)")

    def __init__(self, config: SampleCNNConfig | None = None) -> None:
        super().__init__()
        c = config or SampleCNNConfig()
        width = self._build_trunk(c, Conv1dBlock)
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(width, c.n_tags)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        emb = self.trunk(x)  # (B, 512): the head is a single Linear, so trunk = embedding
        return {"embedding": emb, "tags": torch.sigmoid(self.dense(self.dropout(emb)))}


class SampleCNNSE(_SampleLevelTrunk):
    """Kim et al. 2018 sample-level CNN with ResSE blocks. Input (B, 59049); embedding (B, 512)."""

    info = TaggerSpec("se", SAMPLE_RATE, INPUT_LENGTH, 512, "Kim et al. 2018 (sample-level CNN + SE)")

    def __init__(self, config: SampleCNNConfig | None = None) -> None:
        super().__init__()
        c = config or SampleCNNConfig()
        width = self._build_trunk(c, ResSE1d)
        # Head with one hidden layer: dense1 -> BN -> ReLU is the embedding.
        self.dense1 = nn.Linear(width, width)
        self.bn = nn.BatchNorm1d(width)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.dense2 = nn.Linear(width, c.n_tags)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        trunk = self.trunk(x)  # (B, 512), the vector entering dense1
        emb = self.relu(self.bn(self.dense1(trunk)))  # (B, 512), after the ReLU
        tags = torch.sigmoid(self.dense2(self.dropout(emb)))
        return {"embedding": emb, "trunk": trunk, "tags": tags}
