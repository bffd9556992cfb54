"""The only code that talks to MLflow.

One MLflow run per Hydra job, in the MLflow experiment named after the lab experiment. The run
gets the resolved config flattened as params; tags for model, dataset, clusterer, k, seed, git
commit and a sweep id shared by all jobs of one multirun; Hydra's ``.hydra/`` folder as an
artifact. An exception marks the run FAILED with the error as a tag and an artifact.

Default store: SQLite at ``mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts`` (MLflow 3
refuses the plain file store by default). ``paths.tracking_uri`` or ``MLFLOW_TRACKING_URI``
selects another store, e.g. a remote ``mlflow server``.

* :mod:`~lab.tracking.store` — where the store is, whether it answers, one locked client per process;
* :mod:`~lab.tracking.runs` — a job's run: open, tag, log, close (:class:`Tracker`), resumable child runs;
* :mod:`~lab.tracking.sweeps` — a sweep's runs and artifacts read back, one summary run per report;
* :mod:`~lab.tracking.callbacks` — Hydra callbacks of a multirun (experiment created first, UI link after).
"""

from lab.tracking.runs import (
                               PARAM_LIMIT,
                               Tracker,
                               config_hash,
                               ensure_experiment,
                               figure_dpi,
                               find_run_by_tag,
                               finished_run,
                               flatten,
                               git_commit,
                               last_metric_step,
                               resumable_run,
                               run_tags,
                               start_run,
)
from lab.tracking.store import check_reachable, client_for, resolve_tracking_uri, ui_base, ui_links
from lab.tracking.sweeps import SweepReader, latest_sweep, log_summary_run, run_artifact_bytes, run_artifact_text, sweep_runs

__all__ = ["PARAM_LIMIT", "SweepReader", "Tracker", "check_reachable", "client_for", "config_hash", "ensure_experiment", "figure_dpi",
           "find_run_by_tag", "finished_run", "flatten", "git_commit", "last_metric_step", "latest_sweep", "log_summary_run",
           "resolve_tracking_uri", "resumable_run", "run_artifact_bytes", "run_artifact_text", "run_tags", "start_run", "sweep_runs", "ui_base",
           "ui_links"]
