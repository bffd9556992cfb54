"""Bring your own network: ``model=custom model.target=my_pkg.my_module:build``.

``target`` names a function (``module:function`` or ``module.function``, importable from the
launch directory or the installed packages) that ``model.kwargs`` are passed to and that returns
the model: a ``torch.nn.Module`` or any callable mapping a batch of windows
[shape=(B, model.window)] float32 at ``model.sample_rate`` to an embedding [shape=(B, d)], a pair
``(embedding, tags)`` or a dict with ``"embedding"`` (and ``"tags"``). The lab averages the window
embeddings of each song as it does for its taggers (non-overlapping windows from sample 0, tail
dropped; ``model.window=null``: each clip whole).

* ``model.weights=FILE`` (optional): a state dict loaded strictly into the returned module.
* The network is built under ``torch.manual_seed(seed)``, so a randomly initialised one is the same
  in every process (``model.pretrained=false`` marks such a baseline in runs and tables).
* Identity (the embedding cache key): the target, its kwargs, rate and window, the source of the
  modules defining it and a digest of its weights — editing any of them recomputes the embeddings.
* A ``torch.nn.Module`` is differentiable (``experiment=dream`` runs on it) unless
  ``model.differentiable=false``; a plain function is not.
* It runs on PyTorch (the exported backends are measured for the taggers only); its first output
  is checked on a probe batch when it is built, and every batch after: a wrong shape, NaN, infinity
  or a ``sample_rate`` attribute that disagrees with ``model.sample_rate`` stops the job with one
  sentence naming what it returned.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Callable

import torch
from hydra.utils import to_absolute_path
from torch import nn

from lab.core.errors import LabError
from lab.core.storage import file_sha256, text_sha256
from lab.models.base import TaggerSpec
from lab.models.protocol import (
    Built,
    check_rate,
    check_window,
    model_label,
    outputs,
    probe_batch,
    safe_name,
    source_digest,
    state_digest,
)

log = logging.getLogger(__name__)


def resolve_target(target: str, *, key: str = "model.target") -> Callable:
    """The function named ``module:function`` (or ``module.function``); one sentence when it cannot be found."""
    if not isinstance(target, str) or not target.strip():
        raise LabError(f"{key}={target!r} must name a function, e.g. {key}=my_pkg.my_module:build")
    mod_name, sep, attr = target.partition(":")
    if not sep:
        mod_name, _, attr = target.rpartition(".")
    if not mod_name or not attr:
        raise LabError(f"{key}={target} must name a function as module:function, e.g. my_pkg.my_module:build")
    try:
        mod = importlib.import_module(mod_name)
    except Exception as err:  # noqa: BLE001 - any import failure is the user's module: one sentence
        raise LabError(f"{key}={target}: module {mod_name!r} cannot be imported ({type(err).__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else ''}); put it on PYTHONPATH or install it") from None
    fn = mod
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise LabError(f"{key}={target}: module {mod_name!r} has no {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise LabError(f"{key}={target} is a {type(fn).__name__}, not a function or class to call")
    return fn


class CustomModel(nn.Module):
    """Adapter: a user's network or function as an :class:`~lab.models.protocol.EmbeddingModel`."""

    def __init__(self, net: Callable, info: TaggerSpec, *, what: str, differentiable: bool, dim: int | None = None) -> None:
        super().__init__()
        self.net = net  # registered as a submodule when it is an nn.Module
        self.info = info
        self.what = what
        self.differentiable = differentiable
        self._dim = dim

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """(B, L) -> {"embedding": (B, d), "tags": (B, T) or None}, checked."""
        e, t = outputs(self.what, self.net(x), x.shape[0], dim=self._dim)
        return {"embedding": e, "tags": t}

    def embed_and_tag(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.forward_features(x)
        return out["embedding"], out["tags"]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["embedding"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["embedding"]


def probe(model: nn.Module, what: str) -> tuple[int, int]:
    """Run the model once on a noise batch; returns (embedding width, number of tags). One sentence on failure."""
    x = probe_batch(model.info.sample_rate, model.info.input_length)
    try:
        with torch.inference_mode():
            e, t = model.embed_and_tag(x)
    except LabError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's code failed: say where and on what
        raise LabError(f"{what} failed on a probe batch of shape {tuple(x.shape)} ({type(err).__name__}: "
                       f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
    return int(e.shape[1]), int(t.shape[1]) if t is not None else 0


def build_custom(*, name: str = "custom", target: str, sample_rate: int | None = None, window: int | None = None,
                 kwargs: dict | None = None, weights: str | None = None, embedding_dim: int | None = None,
                 id: str | None = None, pretrained: bool = True, differentiable: bool | None = None,
                 tag_names: list[str] | None = None, seed: int = 0) -> Built:
    """Build ``target(**kwargs)`` and wrap it (see the module docstring); ``seed`` seeds its initialisation."""
    what = f"model.target={target}"
    fn = resolve_target(target)
    kwargs = dict(kwargs or {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        try:
            net = fn(**kwargs)
        except LabError:
            raise
        except Exception as err:  # noqa: BLE001 - the user's builder failed: one sentence
            raise LabError(f"{what} raised {type(err).__name__} when called with model.kwargs={kwargs} "
                           f"({str(err).splitlines()[0][:200] if str(err) else ''})") from None
    if not callable(net):
        raise LabError(f"{what} returned {type(net).__name__}, not a torch.nn.Module or a function of a batch of windows")
    sr = check_rate(what, sample_rate, getattr(net, "sample_rate", None))
    length = check_window(window, sr)
    weights_digest = ""
    if weights:
        from lab.models.weights import load_strict, read_state_dict

        path = Path(to_absolute_path(str(weights)))
        if not isinstance(net, nn.Module):
            raise LabError(f"model.weights={weights} needs a torch.nn.Module, but {what} returned a {type(net).__name__}")
        if not path.is_file():
            raise LabError(f"model.weights={weights} does not exist ({path}); give a state-dict file saved with torch.save")
        state = read_state_dict(path, "custom")
        load_strict(net, state, str(path))
        weights_digest = file_sha256(path)
    if isinstance(net, nn.Module):
        net.eval()
    if differentiable is None:
        differentiable = isinstance(net, nn.Module)
    label = model_label({"name": name, "id": id, "target": target})
    info = TaggerSpec(safe_name(f"custom-{label}"), sr, length, int(embedding_dim or 0), paper=f"user model {target}")
    model = CustomModel(net, info, what=what, differentiable=bool(differentiable), dim=embedding_dim)
    dim, n_tags = probe(model, what)
    model.info = TaggerSpec(info.name, sr, length, dim, info.paper)
    names = list(tag_names) if tag_names else [f"tag{i:03d}" for i in range(n_tags)]
    if len(names) != n_tags:
        raise LabError(f"model.tag_names lists {len(names)} names, but {what} returns {n_tags} tags")
    identity = text_sha256("custom", target, json.dumps(kwargs, sort_keys=True, default=str), sr, length,
                           source_digest(fn, type(net)), state_digest(net), weights_digest,
                           "" if state_digest(net) or weights_digest else f"seed-{seed}")
    log.info("model=custom %s: %d-d embeddings%s at %d Hz, %s", target, dim, f" and {n_tags} tags" if n_tags else "", sr,
             f"windows of {length} samples" if length else "whole clips")
    return Built(model, identity, names, label=label)

