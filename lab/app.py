"""The lab's one task: validate the config, open an MLflow run, run the experiment.

``main(cfg)`` is what ``python -m lab`` calls for every Hydra job. With an explicit ``sweep_id``,
a job whose exact config already FINISHED in that sweep is skipped, so an interrupted sweep
re-run with the same id resumes where it stopped. A :class:`LabError` (bad
input, bad config, missing weights) is printed as one sentence and the process exits with code
2 — no traceback; the MLflow run, if one was opened, is left FAILED with the message.
"""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from lab import config, experiments, tracking
from lab.errors import LabError

log = logging.getLogger("lab")


def run(cfg: DictConfig) -> dict[str, float]:
    """Run one job; raises :class:`LabError` on user errors."""
    config.validate(cfg)
    fn = experiments.get(cfg.experiment.name)
    done = tracking.finished_run(cfg)
    if done is not None:
        log.info("sweep %s already has a finished run of this config (%s); skipping", cfg.sweep_id, done[0])
        return done[1]
    with tracking.start_run(cfg) as tracker:
        scores = fn(cfg, tracker)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if k in ("accuracy", "nmi", "ari") or k.startswith("best_k"))
    log.info("finished MLflow run %s (experiment %r)%s", tracker.run_id, cfg.experiment.name, f": {shown}" if shown else "")
    for w in tracker.warnings:
        log.warning("note: %s", w)
    return scores


def main(cfg: DictConfig) -> dict[str, float]:
    """Entry point of a Hydra job: one sentence and exit code 2 on user errors."""
    try:
        return run(cfg)
    except LabError as err:
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
