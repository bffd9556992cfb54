"""The model zoo: seven MTG-Jamendo taggers, registered by name.

``build(name, ...)`` returns an eval-mode :class:`~lab.models.base.Tagger` with the official
checkpoint loaded strictly, or random weights when ``pretrained=False`` (a baseline, always
tagged as such in MLflow).
"""

from __future__ import annotations

import importlib
import logging
import os
from importlib import resources
from pathlib import Path

import torch

from lab.errors import LabError
from lab.models.base import Tagger, TaggerSpec
from lab.hashing import file_sha256
from lab.models.weights import checkpoint_path, load_strict, read_state_dict

log = logging.getLogger(__name__)

# name -> "module:Class"; one module per architecture family.
REGISTRY: dict[str, str] = {
    "fcn": "lab.models.fcn:FCN",
    "musicnn": "lab.models.musicnn:Musicnn",
    "crnn": "lab.models.crnn:CRNN",
    "attention": "lab.models.attention:CNNSA",
    "hcnn": "lab.models.hcnn:HarmonicCNN",
    "sample": "lab.models.samplecnn:SampleCNN",
    "se": "lab.models.samplecnn:SampleCNNSE",
}


def model_class(name: str) -> type[Tagger]:
    """The Tagger class registered under ``name``."""
    if name not in REGISTRY:
        raise LabError(f"model={name!r} is unknown; choose one of {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def model_info(name: str) -> TaggerSpec:
    """Sample rate, window length, embedding width and paper of model ``name``."""
    return model_class(name).info


def tag_names(corpus: str = "jamendo") -> list[str]:
    """Tag names in model-output order. Jamendo's are alphabetical (sklearn's LabelBinarizer sorted them)."""
    if corpus != "jamendo":
        raise LabError(f"model.corpus={corpus!r} is unknown; only jamendo tag names are known")
    text = resources.files("lab").joinpath("data/jamendo_tags.txt").read_text()
    return [t.strip() for t in text.splitlines() if t.strip()]


def build(
    name: str,
    *,
    pretrained: bool = True,
    weights_dir: str | os.PathLike | None = None,
    subpath: str | None = None,
    seed: int = 0,
) -> tuple[Tagger, str]:
    """Instantiate model ``name`` in eval mode.

    Returns the model and a weights identifier for cache keys: the checkpoint's SHA-256, or
    ``random-<seed>`` when ``pretrained`` is false.
    """
    cls = model_class(name)
    if not pretrained:
        torch.manual_seed(seed)
        model = cls().eval()
        log.warning("model=%s runs with RANDOM weights (model.pretrained=false)", name)
        return model, f"random-{seed}"
    path = checkpoint_path(name, subpath or f"jamendo/{name}/best_model.pth", weights_dir)
    state = read_state_dict(Path(path), name)
    model = cls()
    load_strict(model, state, str(path))
    return model.eval(), file_sha256(path)
