"""Studies by name. Each is ``run(cfg, tracker) -> dict[str, float]`` and never imports mlflow."""

from __future__ import annotations

import importlib
from typing import Callable

from lab.errors import LabError

EXPERIMENTS: dict[str, str] = {
    "clustering": "lab.experiments.clustering:run",
    "tags": "lab.experiments.tags:run",
    "cluster_scores": "lab.experiments.cluster_scores:run",
}


def get(name: str) -> Callable:
    """The ``run`` function of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise LabError(f"experiment={name!r} is unknown; choose one of {', '.join(EXPERIMENTS)}")
    module, fn = EXPERIMENTS[name].split(":")
    return getattr(importlib.import_module(module), fn)
