"""CRNN: the convolutional recurrent tagger of Choi et al. 2017, "Convolutional recurrent neural
networks for music classification" (ICASSP 2017, arXiv:1609.04243), as trained on MTG-Jamendo by
Won et al. 2020 (minzwon/sota-music-tagging-models, ``training/model.py: CRNN``).

29 s window -> log-mel (96, 1813) -> four Conv-BN-ReLU-MaxPool blocks -> 18 steps x 128 ->
2-layer GRU(32) -> last step = 32-d embedding -> 50 tags.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lab.models.base import TaggerSpec
from lab.models.frontend import SAMPLE_RATE, Conv2dBlock, MelTagger


@dataclass
class CRNNConfig:
    n_mels: int = 96
    channels: tuple[int, ...] = (64, 128, 128, 128)
    # Square pools; 2*3*4*4 = 96 collapses the mel axis to 1, time 1813 -> 18 steps.
    pools: tuple[int, ...] = (2, 3, 4, 4)
    gru_hidden: int = 32  # small on purpose: the paper's budget-matched CRNN
    gru_layers: int = 2
    n_tags: int = 50


class CRNN(MelTagger):
    """Choi et al. 2017 CRNN. Input (B, 464000) at 16 kHz; embedding (B, 32)."""

    info = TaggerSpec("crnn", SAMPLE_RATE, 29 * SAMPLE_RATE, 32, "Choi et al. 2017 (CRNN)")

    def __init__(self, config: CRNNConfig | None = None) -> None:
        super().__init__()
        c = config or CRNNConfig()
        self.init_mel_frontend(c.n_mels)
        widths = (1, *c.channels)
        self.add_layers([Conv2dBlock(cin, cout, pool) for cin, cout, pool in zip(widths, c.channels, c.pools)])
        # The GRU is "layer5" in the checkpoint (after the four convs, outside run_layers);
        # PyTorch's GRU gate order (r, z, n) matches it too.
        self.layer5 = nn.GRU(c.channels[-1], c.gru_hidden, c.gru_layers, batch_first=True)
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(c.gru_hidden, c.n_tags)

    def forward_from_frontend(self, db: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.spec_bn(db.unsqueeze(1))  # (B, 1, 96, 1813)
        h = self.run_layers(h)  # (B, 128, 1, 18)
        seq = h.squeeze(2).transpose(1, 2)  # (B, 18, 128): time-major for the GRU
        out, _ = self.layer5(seq)  # (B, 18, 32), top layer only
        emb = out[:, -1]  # (B, 32): last step = final hidden state of the top layer
        return {"embedding": emb, "tags": torch.sigmoid(self.dense(self.dropout(emb)))}
