"""The model zoo: seven taggers, registered by name, each trained on one or more corpora — and any other model.

``build(name, corpus=..., ...)`` returns an eval-mode :class:`~lab.models.base.Tagger` with the
official checkpoint for that training corpus loaded strictly (see :mod:`lab.models.weights` for
the corpora and the checkpoint search path), or random weights when ``pretrained=False`` (a
baseline, always tagged as such in MLflow). ``tag_names(corpus)`` gives the output tag order.

``load(spec)`` builds whatever a ``conf/model`` section describes: a tagger, or one of the other
kinds of :mod:`lab.models.protocol` (a user's network, a HEAR module, the handcrafted baseline, an
embeddings file), whose YAML names its builder with ``_target_``.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

import torch

from lab.core.errors import LabError
from lab.core.storage import file_sha256
from lab.models.base import Tagger, TaggerSpec
from lab.models.protocol import KINDS, Built, EmbeddingModel, model_label
from lab.models.weights import CORPORA, DEFAULT_CORPUS, check_corpus, find_checkpoint, load_strict, read_state_dict, tag_names

log = logging.getLogger(__name__)

__all__ = ["CORPORA", "KINDS", "REGISTRY", "Built", "EmbeddingModel", "Tagger", "TaggerSpec", "build", "load", "model_class",
           "model_info", "model_label", "tag_names"]

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


def build(
    name: str,
    *,
    corpus: str = DEFAULT_CORPUS,
    pretrained: bool = True,
    weights_dir: str | os.PathLike | None = None,
    subpath: str | None = None,
    seed: int = 0,
) -> tuple[Tagger, str]:
    """Instantiate model ``name`` trained on ``corpus`` in eval mode.

    Parameters
    ----------
    name : str
        Registry key (``fcn``, ``musicnn``, ``crnn``, ...).
    corpus : str
        Training corpus of the checkpoint: ``jamendo`` (default), ``mtat`` or ``msd``.
    pretrained : bool
        False gives random weights (seeded by ``seed``), a baseline.
    weights_dir : path, optional
        First folder of the checkpoint search path (``paths.weights``).
    subpath : str, optional
        Checkpoint path relative to a search-path folder; default ``<corpus>/<name>/best_model.pth``.

    Returns
    -------
    model : Tagger
    weights_id : str
        The checkpoint's SHA-256 (so cache keys differ per corpus), or ``random-<seed>``.
    """
    cls = model_class(name)
    check_corpus(name, corpus)
    if not pretrained:
        torch.manual_seed(seed)
        model = cls().eval()
        log.warning("model=%s runs with RANDOM weights (model.pretrained=false)", name)
        return model, f"random-{seed}"
    path = find_checkpoint(name, corpus, weights_dir, subpath)
    log.info("model=%s corpus=%s: checkpoint %s", name, corpus, path)
    state = read_state_dict(Path(path), name, corpus)
    model = cls()
    load_strict(model, state, str(path))
    return model.eval(), file_sha256(path)


def load(spec: dict, *, seed: int = 0, weights_dir: str | os.PathLike | None = None) -> Built:
    """The model a resolved ``conf/model`` section describes, ready for the lab.

    A tagger (``name`` in :data:`REGISTRY`): its checkpoint (or random weights), identity = the
    checkpoint SHA-256 or ``random-<seed>``. Any other section names its builder with ``_target_``
    (``conf/model/{custom,hear,handcrafted,embeddings}.yaml``), called with the section's keys and ``seed``.
    """
    name = spec.get("name")
    if name in REGISTRY:
        corpus = spec.get("corpus", DEFAULT_CORPUS)
        model, weights_id = build(name, corpus=corpus, pretrained=bool(spec.get("pretrained", True)), weights_dir=weights_dir,
                                  subpath=spec.get("checkpoint"), seed=seed)
        return Built(model, weights_id, tag_names(corpus, weights_dir), label=name)
    target = spec.get("_target_")
    if not target:
        raise LabError(f"model={name!r} is unknown; choose one of {', '.join((*REGISTRY, *KINDS))}")
    from hydra.utils import get_method

    builder = get_method(target)
    return builder(**{k: v for k, v in spec.items() if k != "_target_"}, seed=seed)
