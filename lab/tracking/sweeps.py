"""Reading a sweep back: its runs, their artifacts, and the one summary run a report logs per sweep."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from lab.core.errors import LabError
from lab.tracking.runs import Tracker
from lab.tracking.store import client_for

log = logging.getLogger(__name__)


def sweep_runs(uri: str, experiment: str, sweep_id: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """All runs of one sweep (default: the latest sweep) as plain dicts: run_id, status, tags, metrics."""
    client = client_for(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LabError(f"no MLflow experiment {experiment!r} in {uri}; run a sweep first (bash multirun.sh)")
    if sweep_id is None:
        latest = client.search_runs([exp.experiment_id], filter_string="tags.sweep_id LIKE '%'",
                                    order_by=["attributes.start_time DESC"], max_results=1)
        if not latest:
            raise LabError(f"no run in {experiment!r} carries a sweep_id tag; run a multirun first")
        sweep_id = latest[0].data.tags["sweep_id"]
    runs, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], filter_string=f"tags.sweep_id = '{sweep_id}'", max_results=1000, page_token=token)
        runs += [{"run_id": r.info.run_id, "status": r.info.status, "tags": dict(r.data.tags), "metrics": dict(r.data.metrics),
                  "artifact_uri": r.info.artifact_uri} for r in page]
        token = page.token
        if not token:
            return sweep_id, runs


def run_artifact_text(uri: str, run_id: str, path: str, *, artifact_uri: str | None = None) -> str | None:
    """Text of artifact ``path`` of run ``run_id`` (e.g. ``assignments.csv``), or None when it is absent.

    With the run's ``artifact_uri`` (from :func:`sweep_runs`) and a local artifact store, the file is
    read in place; otherwise MLflow downloads it (a report reads one file from each of 60+ runs).
    """
    if artifact_uri and artifact_uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        p = Path(unquote(urlparse(artifact_uri).path)) / path
        return p.read_text() if p.is_file() else None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per small CSV is noise
    client = client_for(uri)
    with tempfile.TemporaryDirectory() as d:
        try:
            local = client.download_artifacts(run_id, path, d)
        except Exception:  # noqa: BLE001 - MLflow raises different types per store for a missing file
            return None
        p = Path(local)
        return p.read_text() if p.is_file() else None


def _files_digest(files: list[Path]) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in sorted(files, key=lambda q: Path(q).name):
        h.update(Path(p).name.encode() + b"\0" + Path(p).read_bytes() + b"\0")
    return h.hexdigest()


def log_summary_run(uri: str, experiment: str, run_name: str, *, tags: dict[str, str], files: list[Path],
                    metrics: dict[str, float]) -> tuple[str, str]:
    """The one summary run named ``run_name`` holding ``files`` as artifacts (e.g. the report's tables).

    Re-logging the same summary must not pile up identical runs: when a run of that name exists
    in ``experiment`` and its files have the same content (SHA-256 in tag ``content_sha256``)
    nothing is logged; when they changed (new runs in the sweep), that run's files, metrics and
    tags are updated in place. Returns (run id, "created" | "updated" | "unchanged").
    """
    client = client_for(uri)
    exp_id = client.experiment_id(experiment)
    digest = _files_digest(files)
    found = client.search_runs([exp_id], filter_string=f"tags.summary_key = '{run_name}'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    if found and found[0].data.tags.get("content_sha256") == digest:
        return found[0].info.run_id, "unchanged"
    if found:
        run_id, action = found[0].info.run_id, "updated"
    else:
        run_id, action = client.create_run(exp_id, run_name=run_name).info.run_id, "created"
    tracker = Tracker(client, run_id, exp_id)
    for p in files:
        tracker.log_artifact(p)
    tracker.log_metrics(metrics)
    tracker.set_tags(tags | {"summary_key": run_name, "content_sha256": digest})
    if action == "created":
        client.set_terminated(run_id, "FINISHED")
    return run_id, action
