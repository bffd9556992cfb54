"""Where the modules of the flat layout went (issue 18): an old name fails in one sentence naming the new one.

Installed by ``lab/__init__.py`` at the end of :data:`sys.meta_path`, so it is asked only about
names no real module answers to. ``python -m lab.shift_check`` then stops with "... is now
lab.studies.transforms.check: run python -m lab.studies.transforms.check (same options)", and
``import lab.embed`` with "lab.embed moved to lab.extract.embed".
"""

from __future__ import annotations

import importlib.abc

COMMANDS = {"lab.shift_check": "lab.studies.transforms.check", "lab.dreambench": "lab.studies.dream.bench"}
MOVED = COMMANDS | {
    "lab.errors": "lab.core.errors", "lab.registry": "lab.core.registry", "lab.compose": "lab.core.compose",
    "lab.storage": "lab.core.storage", "lab.hashing": "lab.core.storage", "lab.filelock": "lab.core.storage",
    "lab.audio": "lab.datasets.audio", "lab.embed": "lab.extract.embed", "lab.inference": "lab.extract.inference",
    "lab.backends": "lab.extract.backends", "lab.sharding": "lab.extract.sharding", "lab.pipeline": "lab.extract.pipeline",
    "lab.callbacks": "lab.tracking.callbacks", "lab.clusterers": "lab.stats.clusterers", "lab.metrics": "lab.stats.metrics",
    "lab.uncertainty": "lab.stats.uncertainty", "lab.projection": "lab.stats.projection", "lab.plots": "lab.stats.plots",
    "lab.analysis": "lab.stats.genres", "lab.listen_map": "lab.studies.clustering.listen_map",
    "lab.transforms": "lab.studies.transforms.maps", "lab.shift": "lab.studies.transforms.shift",
    "lab.table2": "lab.studies.transforms.report", "lab.dream": "lab.studies.dream.dreaming",
    "lab.placement": "lab.studies.out_of_domain.placement", "lab.similarity": "lab.studies.similarity.cka",
    "lab.config": "lab.app.config", "lab.experiments": "lab.studies",
    **{f"lab.experiments.{s}": f"lab.studies.{s}.experiment" for s in
       ("clustering", "tags", "extract", "transforms", "dream", "out_of_domain", "similarity", "probe")},
    "lab.experiments.cluster_scores": "lab.studies.clustering.cluster_scores",
}


class MovedFinder(importlib.abc.MetaPathFinder):
    """Answers an old module name with :class:`ModuleNotFoundError` naming its new home."""

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 - importlib's signature
        new = MOVED.get(fullname)
        if new is None:
            return None
        if fullname in COMMANDS:
            raise ModuleNotFoundError(f"{fullname} is now {new}: run python -m {new} (same options)", name=fullname)
        raise ModuleNotFoundError(f"{fullname} moved to {new}; import it from there (docs/code-map.md)", name=fullname)
