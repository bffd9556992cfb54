"""FCN: the fully convolutional tagger of Choi et al. 2016, "Automatic tagging using deep
convolutional neural networks" (arXiv:1606.00298), as trained on MTG-Jamendo by Won et al. 2020
(minzwon/sota-music-tagging-models, ``training/model.py: FCN``).

29 s window -> log-mel (96, 1813) -> five Conv-BN-ReLU-MaxPool blocks -> 64-d embedding -> 50 tags.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lab.models.base import TaggerSpec
from lab.models.frontend import SAMPLE_RATE, Conv2dBlock, MelTagger


@dataclass
class FCNConfig:
    n_mels: int = 96
    channels: tuple[int, ...] = (64, 128, 128, 128, 64)
    # (freq, time) pools as in the checkpoint; (4, 4) at the end leaves (1, 1): the last time
    # column is dropped by floor pooling.
    pools: tuple[tuple[int, int], ...] = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))
    n_tags: int = 50


class FCN(MelTagger):
    """Choi et al. 2016 FCN. Input (B, 464000) at 16 kHz; embedding (B, 64)."""

    info = TaggerSpec("fcn", SAMPLE_RATE, 29 * SAMPLE_RATE, 64, "Choi et al. 2016 (FCN)")

    def __init__(self, config: FCNConfig | None = None) -> None:
        super().__init__()
        c = config or FCNConfig()
        self.init_mel_frontend(c.n_mels)
        widths = (1, *c.channels)
        self.add_layers([Conv2dBlock(cin, cout, pool) for cin, cout, pool in zip(widths, c.channels, c.pools)])
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(c.channels[-1], c.n_tags)

    def forward_from_frontend(self, db: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.spec_bn(db.unsqueeze(1))  # (B, 1, 96, 1813)
        h = self.run_layers(h)  # (B, 64, 1, 1)
        emb = h.flatten(1)  # (B, 64)
        return {"embedding": emb, "tags": torch.sigmoid(self.dense(self.dropout(emb)))}
