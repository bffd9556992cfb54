"""One MLflow run per Hydra job: its lifecycle (open, tag, log, FINISHED / FAILED), resumable child runs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from omegaconf import DictConfig, OmegaConf

from lab.core.compose import REPO_ROOT
from lab.core.errors import LabError
from lab.tracking.store import client_for, resolve_tracking_uri, ui_links

log = logging.getLogger(__name__)


PARAM_LIMIT = 6000  # MLflow's param value length limit (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH)


def flatten(d: Any, prefix: str = "") -> dict[str, str]:
    """Nested dict/list -> {"a.b.c": "value"} with string values (MLflow params)."""
    out: dict[str, str] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(d, (list, tuple)) and any(isinstance(v, (dict, list)) for v in d):
        for i, v in enumerate(d):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = str(d)
    return out


def git_commit() -> str:
    """The lab's git commit (with ``-dirty`` when the work tree has changes), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _hydra_context() -> tuple[str | None, Path | None, bool]:
    """(sweep id, job output dir, is multirun) from Hydra's runtime, when running under Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
    except (ImportError, ValueError):
        return None, None, False
    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    out = Path(hc.runtime.output_dir) if hc.runtime.output_dir else None
    sweep = Path(hc.sweep.dir).as_posix().replace("/", "_") if multirun else None
    return sweep, out, multirun


class Tracker:
    """Logging handle of one active MLflow run (thin, typed wrapper over ``MlflowClient``)."""

    def __init__(self, client: Any, run_id: str, experiment_id: str, *, dpi: int = 200) -> None:
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id
        self.dpi = dpi  # figures are saved at this resolution (plots.dpi)
        self.warnings: list[str] = []  # repeated in the job's closing summary

    @property
    def url(self) -> str:
        """The MLflow UI link of this run."""
        return ui_links(self.client.uri, self.experiment_id, self.run_id)

    @property
    def artifact_uri(self) -> str:
        """Where this run's artifacts are stored (a folder or a server URI)."""
        return self.client.get_run(self.run_id).info.artifact_uri

    def warn(self, message: str) -> None:
        """Log a warning now and repeat it when the job ends (e.g. skipped files)."""
        log.warning("%s", message)
        self.warnings.append(message)

    def log_params(self, params: dict[str, Any]) -> list[str]:
        """Log params; values longer than MLflow's limit are cut there. Returns the names of the cut ones."""
        from mlflow.entities import Param

        items = [Param(k, str(v)[:PARAM_LIMIT]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=items[i : i + 100])
        return [k for k, v in params.items() if len(str(v)) > PARAM_LIMIT]

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        bad = {k: float(v) for k, v in metrics.items() if v is not None and not np.isfinite(float(v))}
        if bad:
            # A NaN/inf score means something upstream broke; hiding it would make the run look clean.
            at = "" if step is None else f" at step {step}"
            self.warn(f"metric {', '.join(f'{k}={v}' for k, v in bad.items())}{at} is not a finite number; "
                      f"not logged as a metric, recorded as tag nonfinite.<name>")
            self.set_tags({f"nonfinite.{k}": f"{v}{at}" for k, v in bad.items()})
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items() if v is not None and k not in bad]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(self.run_id, str(p), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(p), artifact_path)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def log_dict(self, d: dict, name: str) -> None:
        self.client.log_dict(self.run_id, d, name)

    def log_figure(self, fig: Any, name: str, *, tight: bool = True) -> None:
        """Save a matplotlib figure as artifact ``name`` (e.g. ``plots/tsne.png``) and close it.

        Drawn here, not inside a locked client call; ``tight`` as in :func:`lab.stats.plots.figure_bytes`.
        """
        from lab.stats.plots import figure_bytes

        self.log_bytes(figure_bytes(fig, dpi=self.dpi, fmt=Path(name).suffix.lstrip(".") or "png", tight=tight), name)

    def log_bytes(self, data: bytes, name: str) -> None:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / Path(name).name
            p.write_bytes(data)
            parent = str(Path(name).parent)
            self.log_artifact(p, None if parent == "." else parent)

    def log_csv(self, rows: list[dict[str, Any]], name: str, columns: Any = None) -> None:
        """Rows of dicts (same keys) as a CSV artifact; ``columns`` gives the header of an empty table."""
        import csv

        buf = io.StringIO()
        fields = list(columns or (rows[0] if rows else []))
        if fields:
            w = csv.DictWriter(buf, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        self.log_text(buf.getvalue(), name)

    def log_dataset(self, name: str, *, digest: str, source: str, n_rows: int, context: str = "eval") -> None:
        """Record the dataset as an MLflow dataset input (the UI's Datasets column and filter).

        ``digest`` is the dataset's fingerprint (12 hex characters, as short as MLflow's own; the whole one
        goes into the input's ``fingerprint`` tag); ``source`` its root folder or generator URI.
        """
        from mlflow.entities import Dataset as MlflowDataset
        from mlflow.entities import DatasetInput, InputTag

        src_type = "local" if "://" not in source else source.split("://", 1)[0]
        ds = MlflowDataset(name=name, digest=digest[:12], source_type=src_type, source=json.dumps({"uri": source}),
                           profile=json.dumps({"num_rows": int(n_rows)}))
        tags = [InputTag("mlflow.data.context", context), InputTag("fingerprint", digest)]
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(ds, tags)])

    def log_npz(self, name: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        self.log_bytes(buf.getvalue(), name)


def config_hash(cfg: DictConfig) -> str:
    """SHA-256 of the resolved config minus what does not change results (sweep id, progress bars)."""
    import hashlib

    d = OmegaConf.to_container(cfg, resolve=True)
    d.pop("sweep_id", None)
    d.get("embed", {}).pop("progress", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def finished_run(cfg: DictConfig) -> tuple[str, dict[str, float]] | None:
    """(run id, metrics) of a FINISHED run of this exact config in the same named sweep, if any.

    Only for an explicit ``sweep_id``: re-running an interrupted sweep with the same id skips the
    jobs that completed (time-stamped automatic sweep ids never repeat).
    """
    if not cfg.get("sweep_id"):
        return None
    client = client_for(resolve_tracking_uri(cfg))
    exp = client.get_experiment_by_name(cfg.experiment.name)
    if exp is None:
        return None
    flt = f"tags.sweep_id = '{cfg.sweep_id}' and tags.config_hash = '{config_hash(cfg)}' and attributes.status = 'FINISHED'"
    runs = client.search_runs([exp.experiment_id], filter_string=flt, max_results=1)
    return (runs[0].info.run_id, dict(runs[0].data.metrics)) if runs else None


def figure_dpi(cfg: DictConfig) -> int:
    """``plots.dpi`` (default 200: sharp in print), checked: a whole number in [50, 1200]."""
    dpi = (cfg.get("plots") or {}).get("dpi", 200)
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 50 <= dpi <= 1200:
        raise LabError(f"plots.dpi={dpi!r} must be a whole number of dots per inch in [50, 1200], e.g. plots.dpi=300")
    return dpi


def ensure_experiment(cfg: DictConfig) -> str:
    """Create (if new) the MLflow experiment of ``cfg`` and return its id; checks the store is reachable.

    Called before a multirun's jobs launch, so parallel jobs find it instead of racing to create it.
    """
    return client_for(resolve_tracking_uri(cfg)).experiment_id(cfg.experiment.name)


def run_tags(cfg: DictConfig) -> dict[str, str]:
    """The comparison tags of a run: the choice of every config group the experiment declares.

    ``experiment.groups`` in ``conf/experiment/<name>.yaml`` lists them; a group is tagged with its
    ``name`` (``cluster_count`` with its ``k``), and the model adds the facts runs are compared by:
    ``model`` is :func:`lab.models.protocol.model_label` (the tagger's name, or a user model's id),
    ``pretrained`` (``none`` for the handcrafted features), ``embedding_dim`` (set again from the
    embeddings once they exist), ``corpus``, and ``model_kind`` for the non-tagger kinds.
    """
    tags: dict[str, object] = {"experiment": cfg.experiment.name, "seed": cfg.seed}
    for group in cfg.experiment.get("groups") or []:
        section = cfg.get(group)
        if section is None:
            continue
        if group == "cluster_count":
            tags["k"] = section.get("k")
        else:
            tags[group] = section.get("name")
    own_items = None
    if "model" in tags:
        from lab.models.protocol import items_name, model_label

        m = cfg.model
        pretrained = m.get("pretrained", True)
        # a user model is tagged by its id (model.id, else its target / module / file name) and its kind
        tags |= {"model": model_label(m), "pretrained": "none" if pretrained is None else str(bool(pretrained)).lower(),
                 "embedding_dim": m.get("embedding_dim"), "corpus": m.get("corpus")}
        if m.get("_target_"):
            tags["model_kind"] = m.get("name")
        own_items = items_name(m)  # an embeddings file is the dataset too
        if own_items and "dataset" in tags:
            tags["dataset"] = own_items
    if not own_items and cfg.get("dataset") is not None and cfg.dataset.get("_target_", "").endswith("SynthDataset"):
        tags["data_note"] = "synthetic audio, not real music"
    return {k: str(v) for k, v in tags.items() if v is not None}


@contextlib.contextmanager
def start_run(cfg: DictConfig) -> Iterator[Tracker]:
    """Open the MLflow run of one job; mark it FINISHED, or FAILED with the error, on exit."""
    dpi = figure_dpi(cfg)  # a bad value stops here, before a run is opened
    uri = resolve_tracking_uri(cfg)
    client = client_for(uri)
    name = cfg.experiment.name
    exp_id = client.experiment_id(name)

    sweep, out_dir, multirun = _hydra_context()
    sweep_id = cfg.get("sweep_id") or sweep
    tags = run_tags(cfg) | {"git_commit": git_commit(), "multirun": str(multirun).lower(), "config_hash": config_hash(cfg)}
    if sweep_id:
        tags["sweep_id"] = str(sweep_id)
    run_name = "-".join([name] + [f"k{v}" if k == "k" else v for k, v in tags.items()
                                  if k in set(cfg.experiment.get("groups") or []) | {"k"}] + [f"s{cfg.seed}"])
    run = client.create_run(exp_id, run_name=run_name, tags=tags)
    tracker = Tracker(client, run.info.run_id, exp_id, dpi=dpi)
    log.info("MLflow run %s (%s) in experiment %r at %s", run.info.run_id, run_name, name, uri)
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        cut = tracker.log_params(flatten(resolved))
        # The whole resolved config, always: params over MLflow's length limit are cut, this is not.
        tracker.log_text(OmegaConf.to_yaml(OmegaConf.create(resolved)), "config.yaml")
        if cut:
            tracker.set_tags({"params_truncated": ", ".join(cut)[:5000]})
            log.info("params longer than %d characters (%s) are cut in MLflow's params; whole in config.yaml",
                     PARAM_LIMIT, ", ".join(cut))
        if out_dir is not None and (out_dir / ".hydra").is_dir():
            tracker.log_artifact(out_dir / ".hydra", ".hydra")
        yield tracker
    except BaseException as err:
        msg = f"{type(err).__name__}: {err}"
        with contextlib.suppress(Exception):
            tracker.set_tags({"error": msg[:5000]})
            tracker.log_text("".join(traceback.format_exception(err)), "error.txt")
        client.set_terminated(run.info.run_id, "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        log.info("MLflow UI of this run: %s", tracker.url)
        raise
    else:
        client.set_terminated(run.info.run_id, "FINISHED")
        log.info("MLflow UI of this run: %s", tracker.url)


def find_run_by_tag(client: Any, experiment_id: str, key: str, value: str) -> Any | None:
    """The newest run of ``experiment_id`` whose tag ``key`` equals ``value``, or None."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.{key} = '{value}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def last_metric_step(tracker: Tracker, key: str) -> int:
    """The highest ``step`` at which metric ``key`` was logged in the tracker's run (0 if never)."""
    return max((m.step for m in tracker.client.get_metric_history(tracker.run_id, key)), default=0)


@contextlib.contextmanager
def resumable_run(parent: Tracker, *, key: str, run_name: str, tags: dict[str, Any],
                  params: dict[str, Any]) -> Iterator[tuple[Tracker, bool]]:
    """A child run of ``parent`` identified by tag ``resume_key=key``; reopened if it exists.

    Long jobs that resume from a checkpoint (dreams) keep logging into the run they started in:
    the run carrying ``resume_key=key`` in the parent's experiment is set back to RUNNING, else
    a new run is created with ``mlflow.parentRunId`` = the parent (the UI nests it). Yields the
    tracker and whether the run was reopened; marks it FINISHED, or FAILED / KILLED, on exit.
    """
    client = parent.client
    found = find_run_by_tag(client, parent.experiment_id, "resume_key", key)
    if found is not None:
        run_id = found.info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        all_tags = {k: str(v) for k, v in tags.items()} | {"resume_key": key, "mlflow.parentRunId": parent.run_id}
        run_id = client.create_run(parent.experiment_id, run_name=run_name, tags=all_tags).info.run_id
    tracker = Tracker(client, run_id, parent.experiment_id)
    tracker.set_tags({"last_parent_run": parent.run_id})
    if found is None:
        tracker.log_params(params)
    try:
        yield tracker, found is not None
    except BaseException as err:
        with contextlib.suppress(Exception):
            tracker.set_tags({"error": f"{type(err).__name__}: {err}"[:5000]})
        client.set_terminated(run_id, "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    else:
        parent.warnings.extend(tracker.warnings)
        client.set_terminated(run_id, "FINISHED")
