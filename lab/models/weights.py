"""Finding, verifying and strictly loading the official MTG-Jamendo checkpoints.

Checkpoints are plain state dicts in the legacy (pre-1.6) torch format, saved from CUDA tensors,
so they are read with ``map_location="cpu"`` and ``weights_only=True``. They are looked up under
``<weights_dir>/jamendo/<model>/best_model.pth`` (the original repository's layout); the
environment variable ``LAB_WEIGHTS_DIR`` overrides the configured folder.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from lab.errors import LabError
from lab.hashing import file_sha256

WEIGHTS_ENV = "LAB_WEIGHTS_DIR"
# Where real users can fetch them by hand (git-LFS files of the original repository, MIT licence).
UPSTREAM_URL = (
    "https://github.com/minzwon/sota-music-tagging-models/raw/master/models/jamendo/{model}/best_model.pth"
)
# SHA-256 of the upstream files we could verify (the others are checked by strict key/shape load).
KNOWN_SHA256 = {
    "fcn": "7bce08a66dbc70d096b0a330f44b4cacd9aa25519b83489fbb98f2164a194e2b",
    "musicnn": "66280f4859376377c47f64313c7ac889a3201fdb06a01bf6e94ac6e619081bb5",
    "crnn": "0a558989c0793f488cb677d188464c91f47c007f7c70473230e55537ca598215",
}


def weights_dir(configured: str | os.PathLike | None) -> Path:
    """The configured weights folder, else ``$LAB_WEIGHTS_DIR``, else ``weights/``.

    (``conf/config.yaml`` already defaults ``paths.weights`` to ``$LAB_WEIGHTS_DIR``, so a
    command-line ``paths.weights=...`` wins over the environment, which wins over the default.)
    """
    return Path(configured or os.environ.get(WEIGHTS_ENV) or "weights").expanduser()


def checkpoint_path(model: str, subpath: str, configured_dir: str | os.PathLike | None) -> Path:
    """``<weights_dir>/<subpath>`` (subpath e.g. ``jamendo/fcn/best_model.pth``)."""
    return weights_dir(configured_dir) / subpath


def missing_checkpoint_message(model: str, path: Path) -> str:
    return (
        f"no checkpoint for model={model} at {path}; download it from "
        f"{UPSTREAM_URL.format(model=model)} into that path (or set {WEIGHTS_ENV}), "
        f"or run with model.pretrained=false for random weights"
    )


def read_state_dict(path: Path, model: str) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a CPU state dict, with one clear error if it is unusable."""
    if not path.is_file():
        raise LabError(missing_checkpoint_message(model, path))
    expected = KNOWN_SHA256.get(model)
    if expected is not None and file_sha256(path) != expected:
        raise LabError(
            f"checkpoint {path} does not match the official {model} weights (SHA-256 differs); "
            f"re-download it from {UPSTREAM_URL.format(model=model)}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile, OSError) as err:
        raise LabError(f"checkpoint {path} cannot be read as a torch state dict ({err.__class__.__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LabError(f"checkpoint {path} is not a plain state dict of tensors")
    return state


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a one-sentence summary of any mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise LabError(f"checkpoint {source} does not fit {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
