"""An example HEAR-API module (docs/bring-your-own-model.md): what ``model=hear`` loads.

    python -m lab model=hear model.module=examples.hear_logmel dataset=gtzan dataset.root=../shared/music/gtzan_mini

It follows the HEAR 2021 common API (Turian et al. 2022): ``load_model(model_file_path)`` ->
a model with ``sample_rate``, ``scene_embedding_size`` and ``timestamp_embedding_size``;
``get_timestamp_embeddings(audio, model)`` -> (frames [shape=(n, T, d)], centres in ms [shape=(n, T)]);
``get_scene_embeddings(audio, model)`` -> [shape=(n, d)]. The model here: the 64 log-mel bands of
each 32-ms frame (no learned weights; ``model_file_path`` is not needed) — a module you publish
for HEAR runs the same way, with ``model.path`` pointing at its weights.
"""

from __future__ import annotations

import librosa
import torch
from torch import nn

N_FFT, HOP = 512, 256


class LogMel(nn.Module):
    sample_rate = 16000
    scene_embedding_size = 128  # mean and std of 64 bands
    timestamp_embedding_size = 64

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT))
        self.register_buffer("mel", torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=N_FFT, n_mels=64)).float())

    def frames(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, N_FFT, hop_length=HOP, window=self.window, return_complex=True).abs() ** 2
        return torch.log1p(self.mel @ spec).transpose(1, 2)  # (n, T, 64)


def load_model(model_file_path: str = "") -> LogMel:
    model = LogMel()
    if model_file_path:
        model.load_state_dict(torch.load(model_file_path, map_location="cpu", weights_only=True))
    return model.eval()


def get_timestamp_embeddings(audio: torch.Tensor, model: LogMel) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        emb = model.frames(audio)
    centres = torch.arange(emb.shape[1], dtype=torch.float32) * HOP / model.sample_rate * 1000.0
    return emb, centres.expand(audio.shape[0], -1)


def get_scene_embeddings(audio: torch.Tensor, model: LogMel) -> torch.Tensor:
    emb, _ = get_timestamp_embeddings(audio, model)
    return torch.cat([emb.mean(1), emb.std(1)], dim=1)
