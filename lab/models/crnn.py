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

from lab.models.base import Tagger, TaggerSpec
from lab.models.frontend import SAMPLE_RATE, Conv2dBlock, MelSpectrogram, power_to_db


@dataclass
class CRNNConfig:
    n_mels: int = 96
    channels: tuple[int, ...] = (64, 128, 128, 128)
    # Square pools; 2*3*4*4 = 96 collapses the mel axis to 1, time 1813 -> 18 steps.
    pools: tuple[int, ...] = (2, 3, 4, 4)
    gru_hidden: int = 32  # small on purpose: the paper's budget-matched CRNN
    gru_layers: int = 2
    n_tags: int = 50


class CRNN(Tagger):
    """Choi et al. 2017 CRNN. Input (B, 464000) at 16 kHz; embedding (B, 32)."""

    info = TaggerSpec("crnn", SAMPLE_RATE, 29 * SAMPLE_RATE, 32, "Choi et al. 2017 (CRNN)")

    def __init__(self, config: CRNNConfig | None = None) -> None:
        super().__init__()
        c = config or CRNNConfig()
        self.spec = MelSpectrogram(c.n_mels)
        self.spec_bn = nn.BatchNorm2d(1)
        cin = 1
        for i, (cout, pool) in enumerate(zip(c.channels, c.pools), start=1):
            setattr(self, f"layer{i}", Conv2dBlock(cin, cout, pool))
            cin = cout
        self.n_conv = len(c.channels)
        # "layer5" is the checkpoint's name; PyTorch's GRU gate order (r, z, n) matches it too.
        self.layer5 = nn.GRU(cin, c.gru_hidden, c.gru_layers, batch_first=True)
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(c.gru_hidden, c.n_tags)

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        return power_to_db(self.spec(x))  # (B, 96, 1813) dB

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        h = self.spec_bn(self.frontend(x).unsqueeze(1))  # (B, 1, 96, 1813)
        for i in range(1, self.n_conv + 1):
            h = getattr(self, f"layer{i}")(h)  # -> (B, 128, 1, 18)
        seq = h.squeeze(2).transpose(1, 2)  # (B, 18, 128): time-major for the GRU
        out, _ = self.layer5(seq)  # (B, 18, 32), top layer only
        emb = out[:, -1]  # (B, 32): last step = final hidden state of the top layer
        return {"embedding": emb, "tags": torch.sigmoid(self.dense(self.dropout(emb)))}
