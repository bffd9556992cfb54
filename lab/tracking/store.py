"""The tracking store: where it is, whether it answers, one locked client per process, UI links."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lab.core.errors import LabError
from lab.core.storage import exclusive

log = logging.getLogger(__name__)


def resolve_tracking_uri(cfg: DictConfig) -> str:
    """``MLFLOW_TRACKING_URI`` > ``paths.tracking_uri`` > ``sqlite:///<paths.mlruns>/mlflow.db``."""
    from hydra.utils import to_absolute_path

    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.paths.get("tracking_uri")
    if uri:
        return str(uri)
    mlruns = Path(to_absolute_path(str(cfg.paths.mlruns)))
    mlruns.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{mlruns / 'mlflow.db'}"


REACH_TIMEOUT_S = 5.0  # one short check instead of MLflow's ~4 min of retries against a dead server
_reachable: set[str] = set()  # URIs already checked in this process


def check_reachable(uri: str, *, timeout: float = REACH_TIMEOUT_S) -> None:
    """Raise :class:`LabError` in one sentence if the ``http(s)://`` tracking server ``uri`` does not answer.

    ``GET /health`` must answer 200 (an MLflow server) or 401/403 (one behind authentication,
    which MLflow's own client handles); a refused connection, an unknown host, silence for
    ``timeout`` seconds or another answer (e.g. a proxy's 404 for an address that has no server)
    do not. Checked once per process and URI. Other stores (``sqlite:///``, ``file:``) are
    local and need no check.
    """
    if not uri.startswith(("http://", "https://")) or uri in _reachable:
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except urllib.error.HTTPError as err:
        if err.code not in (401, 403):
            raise LabError(f"the MLflow tracking server {uri} cannot be reached: something answers there but not as an "
                           f"MLflow server (HTTP {err.code} on /health); check MLFLOW_TRACKING_URI / paths.tracking_uri") from None
    except (OSError, ValueError) as err:
        why = getattr(err, "reason", None) or err
        raise LabError(f"the MLflow tracking server {uri} cannot be reached ({why}); start it, or fix or unset "
                       f"MLFLOW_TRACKING_URI / paths.tracking_uri to use the local store") from None
    _reachable.add(uri)


def ui_base(uri: str) -> str:
    """Where the MLflow UI for ``uri`` lives: the server itself, or a local ``mlflow ui`` (port 5000)."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"


def ui_links(uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """The UI link of an experiment's runs view (or of one run), plus how to start the UI for a local store.

    MLflow 3 opens on its GenAI overview; these links go straight to the runs table / the run.
    """
    link = f"{ui_base(uri)}/#/experiments/{experiment_id}/runs" + (f"/{run_id}" if run_id else "")
    if uri.startswith(("http://", "https://")):
        return link
    return f"{link} (start the UI with: mlflow ui --backend-store-uri {uri})"


def _local_artifact_root(uri: str) -> str | None:
    """For a local SQLite store, artifacts live beside the database in ``artifacts/``."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return None


# Calls that only copy files into the artifact store (and read the run's artifact location): they
# need no lock, and holding it while a parallel job copies a 3-MB listening map would stall the others.
_ARTIFACT_CALLS = frozenset({"log_artifact", "log_artifacts", "log_text", "log_dict", "download_artifacts", "list_artifacts"})


class _LockedClient:
    """An ``MlflowClient`` whose calls hold an exclusive file lock beside a local SQLite store.

    Parallel Hydra jobs (joblib launcher) share one SQLite file. SQLite serialises writers, but
    MLflow's first-use schema migration is not safe to race (seen here: alembic "expected to match
    one row" with 2 workers on a fresh store), and busy writers can time out. Holding an ``flock``
    per database call makes every job's logging atomic with respect to the others; calls are short,
    so the cost is negligible. File copies into the artifact store (:data:`_ARTIFACT_CALLS`) and
    figure drawing happen outside the lock. Remote stores (``http://``) need no lock and get none.
    """

    def __init__(self, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        check_reachable(uri)
        self.uri = uri
        self._lock_path = Path(uri[len("sqlite:///"):]).with_suffix(".lock") if uri.startswith("sqlite:///") else None
        with self._locked():
            self._client = MlflowClient(tracking_uri=uri)
            self._client.search_experiments(max_results=1)  # creates / migrates the schema under the lock

    def _locked(self) -> contextlib.AbstractContextManager:
        return exclusive(self._lock_path) if self._lock_path else contextlib.nullcontext()

    def experiment_id(self, name: str) -> str:
        """Id of the MLflow experiment ``name``, created (artifacts beside a local store) if new."""
        exp = self.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        root = _local_artifact_root(self.uri)
        try:
            return self.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
        except Exception:  # noqa: BLE001 - another parallel job created it first
            exp = self.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name in _ARTIFACT_CALLS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._locked():
                return attr(*args, **kwargs)

        return call


_CLIENTS: dict[str, _LockedClient] = {}


def client_for(uri: str) -> _LockedClient:
    """The process's one client of the store at ``uri`` (a sweep process opens it once, not per job)."""
    if uri not in _CLIENTS:
        _CLIENTS[uri] = _LockedClient(uri)
    return _CLIENTS[uri]
