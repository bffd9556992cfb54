"""A HEAR-API module written for the test suite (no download): what ``model=hear model.module=hear_tiny`` loads.

It follows the HEAR 2021 common API: ``load_model(model_file_path)`` returns a model with
``sample_rate``, ``scene_embedding_size`` and ``timestamp_embedding_size``;
``get_timestamp_embeddings(audio, model)`` returns one vector per 64-ms frame and the frame
centres in milliseconds; ``get_scene_embeddings(audio, model)`` is their mean over frames.
The network: log power spectrum (64 bins, 1024-sample hops) -> one linear layer -> tanh.
"""

from __future__ import annotations

import torch
from torch import nn

N_FFT, HOP = 126, 1024  # 64 frequency bins


class TinyHear(nn.Module):
    sample_rate = 16000
    scene_embedding_size = 24
    timestamp_embedding_size = 24

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(N_FFT // 2 + 1, self.scene_embedding_size)
        self.register_buffer("window", torch.hann_window(N_FFT))

    def frames(self, audio: torch.Tensor) -> torch.Tensor:
        """(n_sounds, n_samples) -> (n_sounds, n_frames, 24)."""
        spec = torch.stft(audio, N_FFT, hop_length=HOP, window=self.window, return_complex=True).abs() ** 2
        return torch.tanh(self.proj(torch.log1p(spec).transpose(1, 2)))


def load_model(model_file_path: str = "") -> TinyHear:
    model = TinyHear()
    if model_file_path:
        model.load_state_dict(torch.load(model_file_path, map_location="cpu", weights_only=True))
    return model.eval()


def get_timestamp_embeddings(audio: torch.Tensor, model: TinyHear) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        emb = model.frames(audio)
    centres = torch.arange(emb.shape[1], dtype=torch.float32) * HOP / model.sample_rate * 1000.0
    return emb, centres.expand(audio.shape[0], -1)


def get_scene_embeddings(audio: torch.Tensor, model: TinyHear) -> torch.Tensor:
    emb, _ = get_timestamp_embeddings(audio, model)
    return emb.mean(dim=1)
