"""Reading a sweep back: its runs, their artifacts, and the one summary run a report logs per sweep."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from lab.core.errors import LabError
from lab.tracking.runs import Tracker
from lab.tracking.store import client_for

log = logging.getLogger(__name__)


def _as_dict(r: Any) -> dict[str, Any]:
    """An MLflow run as the plain dict reports read: ids, status, tags, metrics, where its artifacts and data are."""
    inputs = getattr(r, "inputs", None)
    digests = [d.dataset.digest for d in (inputs.dataset_inputs if inputs else [])]
    return {"run_id": r.info.run_id, "status": r.info.status, "tags": dict(r.data.tags), "metrics": dict(r.data.metrics),
            "artifact_uri": r.info.artifact_uri, "run_name": r.info.run_name, "start_time": r.info.start_time,
            "dataset_digest": digests[0] if digests else None}


def sweep_runs(uri: str, experiment: str, sweep_id: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """All runs of one sweep (default: the latest sweep) as plain dicts (:func:`_as_dict`)."""
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
        runs += [_as_dict(r) for r in page]
        token = page.token
        if not token:
            return sweep_id, runs


def run_artifact_bytes(uri: str, run_id: str, path: str, *, artifact_uri: str | None = None) -> bytes | None:
    """Bytes of artifact ``path`` of run ``run_id`` (e.g. ``assignments.csv``), or None when it is absent.

    With the run's ``artifact_uri`` (from :func:`sweep_runs`) and a local artifact store, the file is
    read in place; otherwise MLflow downloads it (a report reads one file from each of 60+ runs).
    """
    local = local_artifact(artifact_uri, path)
    if local is not None or (artifact_uri and artifact_uri.startswith("file://")):
        return local.read_bytes() if local is not None else None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per small CSV is noise
    client = client_for(uri)
    with tempfile.TemporaryDirectory() as d:
        try:
            got = Path(client.download_artifacts(run_id, path, d))
        except Exception:  # noqa: BLE001 - MLflow raises different types per store for a missing file
            return None
        return got.read_bytes() if got.is_file() else None


def run_artifact_text(uri: str, run_id: str, path: str, *, artifact_uri: str | None = None) -> str | None:
    """Text of artifact ``path`` of run ``run_id``, or None when it is absent (see :func:`run_artifact_bytes`)."""
    data = run_artifact_bytes(uri, run_id, path, artifact_uri=artifact_uri)
    return None if data is None else data.decode()


def local_artifact(artifact_uri: str | None, path: str) -> Path | None:
    """The file or folder ``path`` of a run whose artifacts are on this machine (``file://``), if it exists."""
    if not artifact_uri or not artifact_uri.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    p = Path(unquote(urlparse(artifact_uri).path)) / path
    return p if p.exists() else None


class SweepReader:
    """One sweep of a tracking store read back across experiments, for documents built from it.

    ``runs(experiment)`` are the sweep's FINISHED runs of that experiment ([] when there are none or
    the experiment does not exist), fetched once; artifacts are read in place from a local store.
    """

    def __init__(self, uri: str, sweep: str) -> None:
        self.uri, self.sweep = uri, sweep
        self._runs: dict[str, list[dict[str, Any]]] = {}
        self._memo: dict[Any, Any] = {}

    def memo(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per reader for ``key`` (e.g. a study's tables, used by two sections)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def all_runs(self, experiment: str) -> list[dict[str, Any]]:
        """Every run of ``experiment`` in the sweep, whatever its status."""
        if experiment not in self._runs:
            try:
                self._runs[experiment] = sweep_runs(self.uri, experiment, self.sweep)[1]
            except LabError:  # no such experiment in this store: nothing run yet
                self._runs[experiment] = []
        return self._runs[experiment]

    def runs(self, experiment: str) -> list[dict[str, Any]]:
        """The sweep's FINISHED runs of ``experiment``, oldest first."""
        done = [r for r in self.all_runs(experiment) if r["status"] == "FINISHED"]
        return sorted(done, key=lambda r: (r.get("start_time") or 0, r["run_id"]))

    def children(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        """FINISHED nested runs of ``run`` (e.g. one per dream), oldest first."""
        client = client_for(self.uri)
        exp = client.get_run(run["run_id"]).info.experiment_id
        found = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{run['run_id']}'",
                                   order_by=["attributes.start_time ASC"], max_results=1000)
        return [_as_dict(r) for r in found if r.info.status == "FINISHED"]

    def bytes(self, run: dict[str, Any], path: str) -> bytes | None:
        return run_artifact_bytes(self.uri, run["run_id"], path, artifact_uri=run.get("artifact_uri"))

    def text(self, run: dict[str, Any], path: str) -> str | None:
        data = self.bytes(run, path)
        return None if data is None else data.decode()

    def local(self, run: dict[str, Any], path: str) -> Path | None:
        """``path`` of the run on this machine (a local store), else None."""
        return local_artifact(run.get("artifact_uri"), path)

    def history(self, run: dict[str, Any], key: str) -> list[tuple[int, float]]:
        """(step, value) of metric ``key`` over the run, by step."""
        return sorted((m.step, m.value) for m in client_for(self.uri).get_metric_history(run["run_id"], key))


def latest_sweep(uri: str, experiments: list[str]) -> str:
    """The sweep id of the newest run carrying one among ``experiments``; raises :class:`LabError` when none does."""
    client = client_for(uri)
    ids = [e.experiment_id for name in experiments if (e := client.get_experiment_by_name(name)) is not None]
    latest = client.search_runs(ids, filter_string="tags.sweep_id LIKE '%'", order_by=["attributes.start_time DESC"],
                                max_results=1) if ids else []
    if not latest:
        raise LabError(f"no run of {', '.join(experiments)} in {uri} carries a sweep id; run the study first "
                       f"(bash multirun.sh BUDGET=quick dataset=gtzan dataset.root=../shared/music/gtzan_mini)")
    return latest[0].data.tags["sweep_id"]


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
