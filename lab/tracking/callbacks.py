"""Hydra callbacks of a multirun: create the MLflow experiment before jobs launch, link the UI after.

Registered in ``conf/config.yaml`` under ``hydra.callbacks``. Before the first job starts, the
tracking store is checked (one sentence and exit code 2 if a server cannot be reached, instead
of every job failing after MLflow's retries) and the experiment is created once, so parallel
jobs never race to create it. After the last job, the sweep's runs view in the MLflow UI is
printed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lab.core.errors import LabError


def sweep_id_of(config: DictConfig) -> str:
    """The sweep id the jobs tag their runs with: ``sweep_id`` if set, else the sweep folder."""
    return str(config.get("sweep_id") or Path(str(config.hydra.sweep.dir)).as_posix().replace("/", "_"))


class SweepLinks(Callback):
    """Experiment first, links last (see the module docstring)."""

    def __init__(self) -> None:
        self.experiment_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from lab import tracking

        try:
            self.experiment_id = tracking.ensure_experiment(config)
        except LabError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lab import tracking

        if self.experiment_id is None:
            return
        uri = tracking.resolve_tracking_uri(config)
        sweep = sweep_id_of(config)
        print(f"MLflow UI of this sweep ({sweep}): {tracking.ui_links(uri, self.experiment_id)}"
              f" — filter with tags.sweep_id = '{sweep}'")
