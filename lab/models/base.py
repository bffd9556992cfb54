"""What every tagger in the zoo provides.

A tagger maps a batch of fixed-length 16 kHz windows to its embedding, the last hidden layer
(= the vector entering the final 50-way Linear; dropout before it is an identity in eval), and to
50 sigmoid tag probabilities in the alphabetical order of ``lab/models/jamendo_tags.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TaggerSpec:
    """Facts about one model; for the taggers mirrored by ``conf/model/<name>.yaml``.

    Every model of the lab (:class:`lab.models.protocol.EmbeddingModel`) carries one as ``info``;
    ``input_length=None`` means the model takes each clip whole (one variable-length window).
    """

    name: str  # also the model's folder in the embedding cache
    sample_rate: int  # Hz
    input_length: int | None  # samples per window; None = the whole clip
    embedding_dim: int
    paper: str = ""


class Tagger(nn.Module):
    """Base class. Subclasses set ``info`` and implement :meth:`forward_features`."""

    info: TaggerSpec
    differentiable = True  # gradients reach the waveform (the dream needs them)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, input_length) float32 -> {"embedding": (B, dim), "tags": (B, 50)}.

        Models whose head has a hidden layer also return "trunk", the vector entering that
        head (the tap some forks use instead; see ARCHITECTURES.md, "Alternative tap").
        """
        raise NotImplementedError

    def add_layers(self, blocks: list[nn.Module]) -> None:
        """Register ``blocks`` as ``layer1``, ``layer2``, ... (the checkpoints' key names)."""
        for i, block in enumerate(blocks, start=1):
            setattr(self, f"layer{i}", block)
        self.n_layers = len(blocks)

    def run_layers(self, h: torch.Tensor) -> torch.Tensor:
        """Apply ``layer1`` .. ``layerN`` in order."""
        for i in range(1, self.n_layers + 1):
            h = getattr(self, f"layer{i}")(h)
        return h

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        """(B, input_length) -> the time-frequency input in dB before its BatchNorm.

        (B, n_mels, T) for the mel models, (B, 6, 128, T) for HCNN's harmonic filterbank.
        Waveform models (sample, se) have none and raise ``NotImplementedError``.
        """
        raise NotImplementedError(f"{self.info.name} has no spectrogram front end")

    def forward_from_frontend(self, db: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`frontend`'s output -> the outputs of :meth:`forward_features`.

        The part after the spectrogram, which exports to ONNX (``torch.stft`` does not: complex
        tensors); ``forward_features(x) == forward_from_frontend(frontend(x))`` op for op.
        """
        raise NotImplementedError(f"{self.info.name} has no spectrogram front end")

    def embed_and_tag(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, input_length) -> ((B, dim) embedding, (B, 50) probabilities)."""
        out = self.forward_features(x)
        return out["embedding"], out["tags"]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, input_length) -> (B, dim): the last hidden layer."""
        return self.forward_features(x)["embedding"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, input_length) -> (B, 50) sigmoid tag probabilities."""
        return self.forward_features(x)["tags"]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise if ``x`` is not a (B, input_length) batch; models need exact window lengths."""
        if x.ndim != 2 or x.shape[1] != self.info.input_length:
            raise ValueError(
                f"{self.info.name} expects windows of shape (B, {self.info.input_length}), "
                f"got {tuple(x.shape)}"
            )
