"""CNNSA: the self-attention music tagger of Won, Chun & Serra 2019, "Toward interpretable music
tagging with self-attention" (arXiv:1906.04972), as trained on MTG-Jamendo by Won et al. 2020
(minzwon/sota-music-tagging-models, ``training/model.py: CNNSA``, ``training/attention_modules.py``).

15 s window -> log-mel (128, 938) -> seven Res_2d blocks -> 118 time tokens of 256 -> fixed CLS
token prepended -> 2-layer post-LN BERT encoder -> pooler tanh (256-d embedding) -> 50 tags.

The BERT part is written in plain torch; module and parameter names mirror the original
(``encoder.layer.{i}.attention.self.query`` ...) so the official checkpoint loads as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lab.models.base import TaggerSpec
from lab.models.frontend import SAMPLE_RATE, MelTagger


@dataclass
class CNNSAConfig:
    n_mels: int = 128
    channels: tuple[int, ...] = (128, 128, 256, 256, 256, 256, 256)
    # (freq, time) strides: the last four halve only frequency, keeping 118 time steps as tokens.
    strides: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 2), (2, 1), (2, 1), (2, 1), (2, 1))
    n_layer: int = 2
    n_head: int = 8
    n_embd: int = 256  # = channels[-1]: the CNN feature at each time step is the token
    n_inner: int = 1024
    ln_eps: float = 1e-12  # TF-style BERT LayerNorm
    attn_dropout: float = 0.5  # on attention probabilities (training only)
    hidden_dropout: float = 0.4
    cls_seed: int = 0  # the reference draws its CLS vector from np.random.seed(0)
    n_tags: int = 50


class Res2d(nn.Module):
    """Residual 3x3 block of the reference (``Res_2d``). Keys ``conv_1 bn_1 conv_2 bn_2 [conv_3 bn_3]``.

    The shortcut, when needed, is a strided *3x3* conv + BN (not the usual 1x1 projection).
    """

    def __init__(self, cin: int, cout: int, stride: int | tuple[int, int] = 2) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.bn_1 = nn.BatchNorm2d(cout)
        self.conv_2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn_2 = nn.BatchNorm2d(cout)
        self.diff = stride not in (1, (1, 1)) or cin != cout
        if self.diff:
            self.conv_3 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
            self.bn_3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn_2(self.conv_2(self.relu(self.bn_1(self.conv_1(x)))))
        shortcut = self.bn_3(self.conv_3(x)) if self.diff else x
        return self.relu(out + shortcut)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention, no mask. Keys ``query key value``."""

    def __init__(self, c: CNNSAConfig) -> None:
        super().__init__()
        assert c.n_embd % c.n_head == 0
        self.n_head = c.n_head
        self.query = nn.Linear(c.n_embd, c.n_embd)
        self.key = nn.Linear(c.n_embd, c.n_embd)
        self.value = nn.Linear(c.n_embd, c.n_embd)
        self.dropout_p = c.attn_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # (B, T, C) -> (B, nh, T, hs)
        q, k, v = (
            proj(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            for proj in (self.query, self.key, self.value)
        )
        # softmax(q k^T / sqrt(hs)) v; every token sees every token (the reference passes no mask)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p if self.training else 0.0)
        return y.transpose(1, 2).reshape(B, T, C)  # heads concatenated back: (B, T, C)


class AddNorm(nn.Module):
    """Post-LN residual: LayerNorm(dropout(dense(h)) + residual). Keys ``dense LayerNorm``.

    BERT's ``BertSelfOutput`` (256 -> 256) and ``BertOutput`` (1024 -> 256) are both this.
    """

    def __init__(self, d_in: int, c: CNNSAConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, c.n_embd)
        self.dropout = nn.Dropout(c.hidden_dropout)
        self.LayerNorm = nn.LayerNorm(c.n_embd, eps=c.ln_eps)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class Attention(nn.Module):
    """Self-attention sublayer with its residual + LayerNorm. Keys ``self``, ``output``."""

    def __init__(self, c: CNNSAConfig) -> None:
        super().__init__()
        self.self = SelfAttention(c)  # the attribute name ``self`` is the checkpoint's key
        self.output = AddNorm(c.n_embd, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x), x)


class Intermediate(nn.Module):
    """Feed-forward expansion 256 -> 1024 with exact (erf) GELU, as the original ``gelu``."""

    def __init__(self, c: CNNSAConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.n_embd, c.n_inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x), approximate="none")  # (B, T, n_inner)


class BertLayer(nn.Module):
    """One post-LN transformer layer: a = LN(x + attn(x)); out = LN(a + ffn(a))."""

    def __init__(self, c: CNNSAConfig) -> None:
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = AddNorm(c.n_inner, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    """Stack of BERT layers. Key ``layer.{i}``."""

    def __init__(self, c: CNNSAConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.n_layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layer:
            x = block(x)
        return x


class Pooler(nn.Module):
    """BERT pooler: tanh(W h_CLS + b). Key ``dense``."""

    def __init__(self, c: CNNSAConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.n_embd, c.n_embd)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(cls))


class CNNSA(MelTagger):
    """Won et al. 2019 self-attention CNN. Input (B, 240000) at 16 kHz; embedding (B, 256)."""

    info = TaggerSpec("attention", SAMPLE_RATE, 15 * SAMPLE_RATE, 256, "Won et al. 2019 (self-attention CNN)")

    def __init__(self, config: CNNSAConfig | None = None) -> None:
        super().__init__()
        c = config or CNNSAConfig()
        assert c.channels[-1] == c.n_embd
        self.init_mel_frontend(c.n_mels)
        widths = (1, *c.channels)
        self.add_layers([Res2d(cin, cout, stride) for cin, cout, stride in zip(widths, c.channels, c.strides)])
        # The CLS token is a fixed uniform [0, 1) draw, not a learned parameter: the reference
        # makes it with np.random.seed(0); np.random.rand(256). Non-persistent, so it is not in the
        # state dict (nor in the checkpoint); the reference tiles it 64x, we expand to any batch.
        cls = np.random.RandomState(c.cls_seed).random_sample(c.n_embd).astype(np.float32)
        self.register_buffer("cls_token", torch.from_numpy(cls), persistent=False)
        self.encoder = Encoder(c)
        self.pooler = Pooler(c)
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(c.n_embd, c.n_tags)

    def forward_from_frontend(self, db: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.spec_bn(db.unsqueeze(1))  # (B, 1, 128, 938)
        h = self.run_layers(h)  # (B, 256, 1, 118)
        tokens = h.squeeze(2).transpose(1, 2)  # one token per time step: (B, 118, 256)
        cls = self.cls_token.to(tokens.dtype).expand(tokens.shape[0], 1, -1)  # (B, 1, 256)
        # No positional encoding: the reference defines one but never uses it.
        h = self.encoder(torch.cat([cls, tokens], dim=1))  # (B, 119, 256)
        trunk = h[:, 0]  # CLS token of the last layer, (B, 256)
        emb = self.pooler(trunk)  # (B, 256)
        return {"embedding": emb, "trunk": trunk, "tags": torch.sigmoid(self.dense(self.dropout(emb)))}
