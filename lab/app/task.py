"""The lab's one task: check the config, open an MLflow run, run the experiment.

``main(cfg)`` is what ``python -m lab`` calls for every Hydra job:

1. :func:`lab.app.config.validate` checks every value, and :func:`preflight` checks what can be known
   before any work (the dataset's folder and files, the checkpoint or the user's model and what it
   returns, what the experiment needs from the model — ``experiment.needs`` —, k against the number
   of songs, the clusterer's options), so a mistake costs one sentence and no MLflow run;
2. with an explicit ``sweep_id``, a job whose exact config already FINISHED in that sweep is
   skipped (an interrupted sweep re-run with the same id resumes where it stopped);
3. the experiment named by ``experiment.run`` runs inside one MLflow run.

A :class:`LabError` is printed as one sentence. A single job exits with code 2; in a multirun the
failing job's run is left FAILED with the sentence, the other jobs go on, and the sweep ends with
one line per failed job and exit code 1 (:class:`FailureSummary`, a Hydra callback).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from hydra.utils import get_method
from omegaconf import DictConfig

from lab import tracking
from lab.app import config
from lab.core.errors import LabError

log = logging.getLogger("lab")

FAILURES = "failed_jobs.jsonl"  # in the sweep folder: one line per failed job (joblib workers are processes)


def preflight(cfg: DictConfig) -> None:
    """Raise :class:`LabError` for what is wrong before any audio is read or any run is opened."""
    from lab.extract.pipeline import build_dataset, build_model, check_needs, dataset_for
    from lab.stats.clusterers import build_clusterer, check_k

    groups = set(cfg.experiment.get("groups") or [])
    # an embeddings file brings its own items (the dataset group is not used): read it before the dataset
    own_items = "model" in groups and cfg.model.get("name") == "embeddings"
    dataset = build_dataset(cfg.dataset) if "dataset" in groups and not own_items else None
    if "model" in groups:
        loaded = build_model(cfg)  # checkpoint present, official and fitting; kept for the experiment (memoised)
        check_needs(cfg, loaded)  # audio, gradients, labels, tags the experiment needs and the model lacks: one sentence
        if own_items:
            dataset = dataset_for(cfg, loaded)
    if "clusterer" in groups:
        build_clusterer(cfg.clusterer)
    if "cluster_count" in groups and dataset is not None and cfg.cluster_count.get("k") is not None:
        check_k(int(cfg.cluster_count.k), len(dataset.clips))
    extra = cfg.experiment.get("check")
    if extra:
        get_method(extra)(cfg)


def run(cfg: DictConfig) -> dict[str, float]:
    """Run one job; raises :class:`LabError` on user errors."""
    config.validate(cfg)
    fn = get_method(cfg.experiment.run)
    done = tracking.finished_run(cfg)
    if done is not None:
        log.info("sweep %s already has a finished run of this config (%s); skipping", cfg.sweep_id, done[0])
        return done[1]
    preflight(cfg)
    with tracking.start_run(cfg) as tracker:
        scores = fn(cfg, tracker)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if k in ("accuracy", "nmi", "ari") or k.startswith("best_k"))
    log.info("finished MLflow run %s (experiment %r)%s", tracker.run_id, cfg.experiment.name, f": {shown}" if shown else "")
    for w in tracker.warnings:
        log.warning("note: %s", w)
    return scores


def _sweep_dir() -> Path | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
    except (ImportError, ValueError):
        return None
    return Path(hc.sweep.dir) if str(hc.mode) == "RunMode.MULTIRUN" else None


def main(cfg: DictConfig) -> dict[str, float] | None:
    """Entry point of a Hydra job: one sentence on user errors (exit 2 alone, go on in a multirun)."""
    try:
        return run(cfg)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        sweep = _sweep_dir()
        if sweep is None:
            sys.exit(2)
        from hydra.core.hydra_config import HydraConfig

        job = HydraConfig.get().job
        sweep.mkdir(parents=True, exist_ok=True)
        with open(sweep / FAILURES, "a") as f:  # one short line per job: appends do not interleave
            f.write(json.dumps({"job": job.num, "overrides": list(job.override_dirname.split(",")) if job.override_dirname else [],
                                "error": str(err)}) + "\n")
        return None


class FailureSummary(Callback):
    """At the end of a multirun: one line per failed job, and exit code 1 if any failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        path = Path(config.hydra.sweep.dir) / FAILURES
        if not path.is_file():
            return
        failed = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        # name each job by the values the sweep varies (the overrides given with commas), not all of them
        swept = {o.split("=", 1)[0] for o in config.hydra.overrides.task if "," in o.split("=", 1)[-1]}
        print(f"error: {len(failed)} job{'s' if len(failed) != 1 else ''} of this multirun failed:", file=sys.stderr)
        for f in failed:
            shown = [o for o in f["overrides"] if o.split("=", 1)[0] in swept] or f["overrides"]
            print(f"  job {f['job']} ({' '.join(shown) or 'defaults'}): {f['error']}", file=sys.stderr)
        sys.exit(1)
