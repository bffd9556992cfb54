"""FCN: the fully convolutional tagger of Choi et al. 2016, "Automatic tagging using deep
convolutional neural networks" (arXiv:1606.00298), as trained on MTG-Jamendo by Won et al. 2020
(minzwon/sota-music-tagging-models, ``training/model.py: FCN``).

29 s window -> log-mel (96, 1813) -> five Conv-BN-ReLU-MaxPool blocks -> 64-d embedding -> 50 tags.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lab.models.base import Tagger, TaggerSpec
from lab.models.frontend import SAMPLE_RATE, Conv2dBlock, MelSpectrogram, power_to_db


@dataclass
class FCNConfig:
    n_mels: int = 96
    channels: tuple[int, ...] = (64, 128, 128, 128, 64)
    # (freq, time) pools as in the checkpoint; (4, 4) at the end leaves (1, 1): the last time
    # column is dropped by floor pooling.
    pools: tuple[tuple[int, int], ...] = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))
    n_tags: int = 50


class FCN(Tagger):
    """Choi et al. 2016 FCN. Input (B, 464000) at 16 kHz; embedding (B, 64)."""

    info = TaggerSpec("fcn", SAMPLE_RATE, 29 * SAMPLE_RATE, 64, "Choi et al. 2016 (FCN)")

    def __init__(self, config: FCNConfig | None = None) -> None:
        super().__init__()
        c = config or FCNConfig()
        self.spec = MelSpectrogram(c.n_mels)
        self.spec_bn = nn.BatchNorm2d(1)
        cin = 1
        for i, (cout, pool) in enumerate(zip(c.channels, c.pools), start=1):
            setattr(self, f"layer{i}", Conv2dBlock(cin, cout, pool))
            cin = cout
        self.n_layers = len(c.channels)
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(cin, c.n_tags)

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        return power_to_db(self.spec(x))  # (B, 96, 1813) dB

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        h = self.spec_bn(self.frontend(x).unsqueeze(1))  # (B, 1, 96, 1813)
        for i in range(1, self.n_layers + 1):
            h = getattr(self, f"layer{i}")(h)  # -> (B, 64, 1, 1)
        emb = h.flatten(1)  # (B, 64)
        return {"embedding": emb, "tags": torch.sigmoid(self.dense(self.dropout(emb)))}
