"""The model protocol: what any model needs to run through the lab, and the checks on what it returns.

Every study reads song embeddings through one path (audio -> windows -> model -> cache -> mean
per song). A model takes part when it satisfies :class:`EmbeddingModel`:

* ``info`` — a :class:`~lab.models.base.TaggerSpec`: ``name`` (its folder in the embedding cache),
  ``sample_rate`` (Hz), ``input_length`` (samples per window, or ``None`` = each clip whole),
  ``embedding_dim``;
* ``embed_and_tag(x)`` — a batch of windows ``x`` [shape=(B, input_length)] float32 ->
  ``(embedding [shape=(B, d)], tags [shape=(B, T)] or None)``;
* ``differentiable`` — whether gradients reach the waveform (``experiment=dream`` needs them).

The seven taggers (:class:`~lab.models.base.Tagger`) satisfy it as they are. The other kinds wrap
what a user brings in an adapter that does (each a module here and a ``conf/model/<name>.yaml``
whose ``_target_`` names its builder): ``custom`` (any PyTorch network or function,
:mod:`lab.models.custom`), ``hear`` (a HEAR-API module, :mod:`lab.models.hear`), ``handcrafted``
(librosa statistics, :mod:`lab.models.handcrafted`) and ``embeddings`` (vectors computed elsewhere,
:mod:`lab.models.precomputed`). A builder returns a :class:`Built`: the model, its *identity* (the
embedding cache's key for its weights: a checkpoint SHA-256, ``random-<seed>``, or a digest of the
target, its config, its code and its weights) and its tag names.

Outputs a user's model returns are checked batch by batch (:func:`outputs`): a wrong shape, NaN or
infinity stops the job with one sentence naming what it returned.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np
import torch

from lab.core.errors import LabError
from lab.core.storage import text_sha256
from lab.models.base import TaggerSpec

# conf/model/<name>.yaml of the kinds that are not one of the seven taggers (each names its builder with _target_)
KINDS = ("custom", "hear", "handcrafted", "embeddings")


@runtime_checkable
class EmbeddingModel(Protocol):
    """What the lab needs from a model (see the module docstring)."""

    info: TaggerSpec
    differentiable: bool

    def embed_and_tag(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, input_length) float32 windows -> ((B, d) embedding, (B, T) tags or None)."""
        ...


@dataclass
class Built:
    """A model ready for the lab, as a ``conf/model`` builder returns it."""

    model: Any  # an EmbeddingModel (an nn.Module for every kind here)
    identity: str  # cache key of its weights / config / code (checkpoint SHA-256, random-<seed>, or a digest)
    tag_names: list[str] = field(default_factory=list)  # output order of its tags; [] when it has none
    label: str = ""  # how runs and tables name it (the MLflow ``model`` tag)
    standardize: bool = False  # z-score each dimension across the study's songs (handcrafted features)


def model_label(m: Mapping[str, Any]) -> str:
    """How runs and tables name the model of config section ``m`` (the MLflow ``model`` tag).

    ``model.id`` when set; else the tagger's name, ``handcrafted``, the custom target
    (``my_pkg.my_module:build``), ``hear-<module>``, or the embeddings file's name without extension.
    """
    if m.get("id"):
        return str(m["id"])
    name = str(m.get("name"))
    if name == "custom" and m.get("target"):
        return str(m["target"])
    if name == "hear" and m.get("module"):
        return f"hear-{m['module']}"
    if name == "embeddings" and m.get("path"):
        return Path(str(m["path"])).name.split(".")[0]
    return name


def items_name(m: Mapping[str, Any]) -> str | None:
    """The dataset name of a model that brings its own items (an embeddings file), else None."""
    if m.get("name") != "embeddings":
        return None
    return str(m.get("dataset") or model_label({"name": "embeddings", "path": m.get("path")}))


def safe_name(text: str) -> str:
    """``text`` as a folder name (the cache folder of a model): letters, digits, ``._-`` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"


def source_digest(*objects: Any) -> str:
    """SHA-256 over the source of the modules defining ``objects`` (best effort: '' where unreadable).

    Part of a user model's identity, so editing its code invalidates its cache entries.
    """
    parts = []
    for obj in objects:
        mod = sys.modules.get(getattr(obj, "__module__", None) or "") if not inspect.ismodule(obj) else obj
        if mod is None:
            continue
        try:
            parts += [mod.__name__, inspect.getsource(mod)]
        except (OSError, TypeError):
            parts.append(mod.__name__)
    return text_sha256(*parts)


def state_digest(module: Any) -> str:
    """SHA-256 over a torch module's state dict (names, shapes, values); '' for a non-module."""
    if not isinstance(module, torch.nn.Module):
        return ""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def _describe(value: Any) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"a {type(value).__name__} of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _as_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
        return torch.from_numpy(np.ascontiguousarray(value))
    return None


def outputs(what: str, out: Any, batch: int, *, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A model's raw output for ``batch`` windows -> ``(embedding (batch, d), tags (batch, T) or None)``.

    Accepted: an embedding tensor or array; a pair ``(embedding, tags)`` (tags may be None); a dict
    with ``"embedding"`` (and optionally ``"tags"``). Raises :class:`LabError` naming what ``what``
    (e.g. ``model.target=pkg.mod:build``) returned when it is anything else, has the wrong shape or
    width (``dim``), or holds NaN or infinite values.
    """
    if isinstance(out, Mapping):
        emb, tags = out.get("embedding"), out.get("tags")
        if emb is None:
            raise LabError(f"{what} returned a dict without an 'embedding' entry (keys: {', '.join(map(str, out))}); "
                           f"return an embedding tensor of shape ({batch}, d), a pair (embedding, tags) or {{'embedding': ...}}")
    elif isinstance(out, (tuple, list)) and len(out) == 2:
        emb, tags = out
    else:
        emb, tags = out, None
    e = _as_tensor(emb)
    if e is None:
        raise LabError(f"{what} returned {_describe(out)}; expected an embedding tensor of shape ({batch}, d), "
                       f"a pair (embedding, tags) or a dict with 'embedding'")
    if e.ndim != 2 or e.shape[0] != batch:
        raise LabError(f"{what} returned an embedding of shape {tuple(e.shape)} for a batch of {batch} window(s) "
                       f"of audio; expected shape ({batch}, d): one vector per window")
    if dim is not None and e.shape[1] != dim:
        raise LabError(f"{what} returned embeddings of width {e.shape[1]}, but model.embedding_dim={dim}; "
                       f"set model.embedding_dim={e.shape[1]} or null")
    if not torch.isfinite(e.detach()).all():
        bad = int((~torch.isfinite(e.detach())).any(1).sum())
        raise LabError(f"{what} returned NaN or infinite values in the embedding of {bad} of {batch} window(s); "
                       f"a model must give finite numbers for every window of audio")
    t = None
    if tags is not None:
        t = _as_tensor(tags)
        if t is None or t.ndim != 2 or t.shape[0] != batch:
            raise LabError(f"{what} returned tags as {_describe(tags)} for a batch of {batch} window(s); "
                           f"expected shape ({batch}, n_tags) or None")
        if not torch.isfinite(t.detach()).all():
            raise LabError(f"{what} returned NaN or infinite tag values for a batch of {batch} window(s)")
    return e.float() if e.dtype != torch.float32 else e, (t.float() if t is not None and t.dtype != torch.float32 else t)


def probe_batch(sample_rate: int, window: int | None, *, seconds: float = 5.0, n: int = 2) -> torch.Tensor:
    """Deterministic noise at -20 dBFS RMS: ``n`` windows, or one ``seconds``-long clip for whole-clip models."""
    rng = np.random.default_rng(0)
    shape = (n, window) if window else (1, int(seconds * sample_rate))
    return torch.from_numpy((0.1 * rng.standard_normal(shape)).astype(np.float32))


def check_rate(what: str, configured: Any, model_rate: Any) -> int:
    """The sample rate to use: the model's own where it states one, else ``model.sample_rate``; one sentence if they disagree."""
    if model_rate is not None and not isinstance(model_rate, bool) and isinstance(model_rate, (int, float, np.integer)):
        if configured is not None and int(configured) != int(model_rate):
            raise LabError(f"{what} builds a model whose sample_rate is {int(model_rate)} Hz, but model.sample_rate={configured}; "
                           f"set model.sample_rate={int(model_rate)} (audio is decoded at the model's rate)")
        return int(model_rate)
    if model_rate is not None:
        raise LabError(f"{what} builds a model whose sample_rate is {model_rate!r}; it must be a whole number of Hz")
    if isinstance(configured, bool) or not isinstance(configured, int) or configured < 1000:
        raise LabError(f"model.sample_rate={configured!r} must be the model's sample rate in Hz (e.g. 16000)")
    return configured


def check_window(window: Any, sample_rate: int) -> int | None:
    """``model.window``: samples per window (an integer >= 1), or null = each clip whole."""
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise LabError(f"model.window={window!r} must be a number of samples per window (e.g. {3 * sample_rate} = 3 s "
                       f"at {sample_rate} Hz) or null for whole clips")
    return window
