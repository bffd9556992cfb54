"""Load: a multirun of 40 jobs on 2 parallel workers, against the default SQLite store and against
a real local ``mlflow server``; every run must be present, FINISHED, with its metrics and artifacts
(issue 11, "Robustness with figures"). The counts are printed for the README's robustness table."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, WEIGHTS, need

pytestmark = [pytest.mark.robustness, pytest.mark.slow, pytest.mark.heavy]  # minutes per store: python -m pytest -m heavy

SEEDS, KS = 10, (2, 3, 4, 5)  # 40 jobs
# FCN with its checkpoint on 12 short synthetic clips: one extraction (the weights do not depend on
# the seed), then 40 clustering jobs that each log metrics, 6 artifacts and a dataset input.
JOB = ["model=fcn", "dataset.n_per_class=2", "dataset.seconds=4", "embed.progress=false", "sweep_id=load",
       f"seed={','.join(map(str, range(SEEDS)))}", f"cluster_count.k={','.join(map(str, KS))}",
       "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
ARTIFACTS = {"assignments.csv", "confusion_matrix.png", "confusion_matrix.csv", "tsne.png", "config.yaml", "embeddings.npz"}


def _sweep(tmp_path, uri_env: dict) -> tuple[float, subprocess.CompletedProcess]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LAB_CACHE_DIR")}
    env.update(PYTHONPATH=str(ROOT), MLFLOW_DISABLE_TELEMETRY="true", LAB_WEIGHTS_DIR=str(WEIGHTS), **uri_env)
    t = time.time()
    p = subprocess.run([sys.executable, "-m", "lab", *JOB, f"paths.mlruns={tmp_path}/mlruns", f"paths.cache={tmp_path}/cache",
                        f"hydra.sweep.dir={tmp_path}/multirun", "-m"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=3600)
    return time.time() - t, p


def _count(uri: str) -> dict[str, int]:
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("clustering").experiment_id], "tags.sweep_id = 'load'", max_results=1000)
    complete = [r for r in runs if r.info.status == "FINISHED" and {"accuracy", "nmi", "ari", "n_songs"} <= set(r.data.metrics)
                and ARTIFACTS <= {a.path for a in client.list_artifacts(r.info.run_id)} and r.inputs.dataset_inputs]
    return {"runs": len(runs), "finished": sum(r.info.status == "FINISHED" for r in runs), "complete": len(complete),
            "configs": len({r.data.tags["config_hash"] for r in runs}),
            "extractions": sum(r.data.metrics.get("cache_misses", 0) > 0 for r in runs)}


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_forty_parallel_jobs_lose_no_run(tmp_path, request, store):
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    if store == "server":
        uri = request.getfixturevalue("mlflow_server")
        wall, p = _sweep(tmp_path, {"MLFLOW_TRACKING_URI": uri})
    else:
        uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
        wall, p = _sweep(tmp_path, {})
    assert p.returncode == 0, p.stderr[-3000:]
    counts = _count(uri)
    print(f"\nload[{store}]: {len(KS) * SEEDS} jobs on 2 workers in {wall:.0f} s: {counts}")
    n = len(KS) * SEEDS
    assert counts == {"runs": n, "finished": n, "complete": n, "configs": n, "extractions": 1}
