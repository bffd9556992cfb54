"""Deterministic synthetic weights, the rule of ``../shared/reference/golden/README.md``.

The checkpoints of attention, hcnn, sample and se are not available here, so their whole forward
pass is pinned down by goldens computed with these weights. The rule walks the reference
state-dict manifest in order and fills entry ``i`` from ``np.random.default_rng(i)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import torch

# Gain of the Conv/Linear weights: sqrt(2) keeps the ReLU-only sample-level CNN from vanishing.
_GAIN = {"sample": np.sqrt(2.0)}


def read_manifest(path: str | Path) -> list[tuple[str, tuple[int, ...], str]]:
    """``state_dicts/<model>.json`` -> ordered [(key, shape, dtype)]."""
    return [(k, tuple(s), d) for k, s, d in json.loads(Path(path).read_text())]


def synthetic_state_dict(model: str, manifest: list[tuple[str, tuple[int, ...], str]]) -> dict[str, torch.Tensor]:
    """Build the golden README's synthetic weights for ``model`` from its manifest."""
    gain = _GAIN.get(model, 1.0)
    out: dict[str, torch.Tensor] = {}
    for i, (k, shape, dtype) in enumerate(manifest):
        z = lambda: np.random.default_rng(i).standard_normal(shape)  # noqa: E731 - drawn only when used
        if k.endswith("num_batches_tracked"):
            out[k] = torch.zeros(shape, dtype=torch.int64)
            continue
        if k.endswith("window"):
            v = torch.hann_window(512).numpy().astype(np.float64)
        elif k == "spec.mel_scale.fb":
            v = librosa.filters.mel(sr=16000, n_fft=512, n_mels=128, fmin=0.0, fmax=8000.0, htk=True, norm=None).T
        elif k == "hstft.bw_Q":
            v = np.ones(shape)
        elif k.startswith(("spec_bn.", "hstft_bn.")):
            if k.endswith("running_mean"):
                v = -20 + z()
            elif k.endswith("running_var"):
                v = 400 * (1 + 0.25 * np.abs(z()))
            elif k.endswith("weight"):
                v = 1 + 0.1 * z()
            else:
                v = 0.1 * z()
        elif k.endswith("running_mean"):
            v = 0.01 * z()
        elif k.endswith("running_var"):
            v = 1 + 0.25 * np.abs(z())
        elif k.endswith("bias"):
            v = 0.01 * z()
        elif k.endswith("weight") and len(shape) == 1:
            v = 1 + 0.1 * z()
        elif k.endswith("weight"):
            v = gain * z() / np.sqrt(np.prod(shape[1:]))
        else:
            raise ValueError(f"no synthetic-weight rule for key {k!r}")
        out[k] = torch.from_numpy(np.asarray(v, dtype=np.float64).astype(np.float32).reshape(shape))
    return out
