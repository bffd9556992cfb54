"""HEAR-API modules as lab models: ``model=hear model.module=NAME model.path=FILE``.

Any importable module that follows the HEAR 2021 common API (Turian et al. 2022, "HEAR: Holistic
Evaluation of Audio Representations") runs through the lab:

* ``load_model(model_file_path)`` -> a model object with ``sample_rate`` (Hz) — called with
  ``model.path`` (resolved from the launch directory), or with no argument when it is null;
* ``get_scene_embeddings(audio, model)``: ``audio`` [shape=(n_sounds, n_samples)] float32 in [-1, 1]
  at ``model.sample_rate`` -> [shape=(n_sounds, d)] (preferred), or else
* ``get_timestamp_embeddings(audio, model)`` -> ([shape=(n_sounds, n_frames, d)], timestamps);
  the frames are averaged into one vector per sound (``model.mode=timestamp`` forces this one).

By default each clip is one sound (``model.window=null``: the HEAR scene-embedding convention);
``model.window=SAMPLES`` cuts clips into windows like the taggers' and averages those. The model's
``sample_rate`` decides the decoding rate (a ``model.sample_rate`` that disagrees is one sentence).
HEAR promises no gradients, so the dream does not run on it. Identity for the cache: the module's
name, version and source, the model file's SHA-256 and the loaded weights' digest.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from types import ModuleType

import torch
from hydra.utils import to_absolute_path
from torch import nn

from lab.core.errors import LabError
from lab.core.storage import file_sha256, text_sha256
from lab.models.base import TaggerSpec
from lab.models.custom import probe
from lab.models.protocol import Built, check_rate, check_window, model_label, outputs, safe_name, source_digest, state_digest

log = logging.getLogger(__name__)

MODES = ("auto", "scene", "timestamp")


def import_hear(module: str) -> ModuleType:
    """The HEAR module ``module``; one sentence when it is missing or lacks the API."""
    if not isinstance(module, str) or not module.strip():
        raise LabError(f"model.module={module!r} must name an importable HEAR module, e.g. model.module=hearbaseline")
    try:
        mod = importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - the user's module failed to import: one sentence
        raise LabError(f"model.module={module} cannot be imported ({type(err).__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else ''}); install it or put it on PYTHONPATH") from None
    if not callable(getattr(mod, "load_model", None)):
        raise LabError(f"model.module={module} has no load_model(model_file_path) function, so it does not follow the HEAR API")
    if not callable(getattr(mod, "get_scene_embeddings", None)) and not callable(getattr(mod, "get_timestamp_embeddings", None)):
        raise LabError(f"model.module={module} has neither get_scene_embeddings nor get_timestamp_embeddings, so it does not "
                       f"follow the HEAR API")
    return mod


class HearModel(nn.Module):
    """Adapter: a loaded HEAR model and its module's embedding function."""

    differentiable = False

    def __init__(self, module: ModuleType, hear_model: object, info: TaggerSpec, *, mode: str) -> None:
        super().__init__()
        self.module = module
        self.hear = hear_model  # a submodule when it is an nn.Module (moves with .to(device))
        self.info = info
        self.mode = mode
        self.what = f"model.module={module.__name__} ({mode} embeddings)"

    def embed_and_tag(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """(n_sounds, n_samples) -> ((n_sounds, d), None): HEAR models give no tags."""
        if self.mode == "scene":
            out = self.module.get_scene_embeddings(x, self.hear)
        else:
            out = self.module.get_timestamp_embeddings(x, self.hear)
            frames = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(frames, torch.Tensor) or frames.ndim != 3 or frames.shape[0] != x.shape[0]:
                shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
                raise LabError(f"{self.what} returned timestamp embeddings of shape {shape} for {x.shape[0]} sound(s); "
                               f"expected ({x.shape[0]}, n_frames, d)")
            out = frames.mean(1)
        e, _ = outputs(self.what, out, x.shape[0], dim=self.info.embedding_dim or None)
        return e, None

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        e, t = self.embed_and_tag(x)
        return {"embedding": e, "tags": t}


def build_hear(*, name: str = "hear", module: str, path: str | None = None, sample_rate: int | None = None,
               window: int | None = None, mode: str = "auto", embedding_dim: int | None = None, id: str | None = None,
               pretrained: bool = True, seed: int = 0) -> Built:
    """Load a HEAR module's model and wrap it (see the module docstring)."""
    mod = import_hear(module)
    if mode not in MODES:
        raise LabError(f"model.mode={mode!r} must be one of {', '.join(MODES)}")
    if mode == "auto":
        mode = "scene" if callable(getattr(mod, "get_scene_embeddings", None)) else "timestamp"
    if not callable(getattr(mod, f"get_{mode}_embeddings", None)):
        raise LabError(f"model.mode={mode} needs {module}.get_{mode}_embeddings, which the module does not define")
    file_digest = ""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        try:
            if path:
                p = Path(to_absolute_path(str(path)))
                if not p.exists():
                    raise LabError(f"model.path={path} does not exist ({p}); give the model file {module}.load_model expects")
                file_digest = file_sha256(p) if p.is_file() else text_sha256(p)
                hear_model = mod.load_model(str(p))
            else:
                hear_model = mod.load_model()
        except LabError:
            raise
        except Exception as err:  # noqa: BLE001 - the module's loader failed: one sentence
            raise LabError(f"{module}.load_model({'model.path' if path else ''}) raised {type(err).__name__} "
                           f"({str(err).splitlines()[0][:200] if str(err) else ''})") from None
    what = f"model.module={module}"
    if getattr(hear_model, "sample_rate", None) is None:
        raise LabError(f"{what}: the model load_model returned has no sample_rate attribute, which the HEAR API requires")
    sr = check_rate(what, sample_rate, hear_model.sample_rate)
    length = check_window(window, sr)
    if isinstance(hear_model, nn.Module):
        hear_model.eval()
    label = model_label({"name": name, "id": id, "module": module})
    info = TaggerSpec(safe_name(label), sr, length, int(embedding_dim or 0), paper=f"HEAR module {module}")
    model = HearModel(mod, hear_model, info, mode=mode)
    dim, _ = probe(model, what)
    stated = getattr(hear_model, f"{mode}_embedding_size", None)
    if isinstance(stated, int) and stated != dim:
        raise LabError(f"{what}: get_{mode}_embeddings returned width {dim}, but the model's {mode}_embedding_size is {stated}")
    model.info = TaggerSpec(info.name, sr, length, dim, info.paper)
    version = getattr(mod, "__version__", "")
    identity = text_sha256("hear", module, version, mode, sr, length, source_digest(mod), file_digest, state_digest(hear_model))
    log.info("model=hear %s: %d-d %s embeddings at %d Hz, %s", module, dim, mode, sr,
             f"windows of {length} samples" if length else "whole clips")
    return Built(model, identity, [], label=label)
