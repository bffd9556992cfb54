"""The MLflow UI as a user opens it: a real ``mlflow server``, a small sweep, headless Chromium.

The sweep prints the UI link of its runs view; opened in the browser it must list the sweep's
runs (not MLflow 3's GenAI overview), show the Dataset column filled from the dataset input, and
show the headline metric once the ``accuracy`` column is added, as the README tells users to.
Screenshots go to ``tests/artifacts/``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from browser import artifact_dir, browser_page
from conftest import ROOT

FAST = ["model=sample", "model.pretrained=false", "dataset.n_per_class=2", "dataset.seconds=4", "embed.progress=false",
        "cluster_count=seven", "experiment.save_embeddings=false"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LAB_CACHE_DIR")}
    env.update(PYTHONPATH=str(ROOT), MLFLOW_DISABLE_TELEMETRY="true", **extra)
    return env


@pytest.mark.slow
def test_the_sweeps_ui_link_lists_its_runs_with_dataset_and_headline_metric(tmp_path, mlflow_server):
    server = mlflow_server
    p = subprocess.run([sys.executable, "-m", "lab", *FAST, "seed=0,1", f"paths.cache={tmp_path}/cache",
                        f"hydra.sweep.dir={tmp_path}/multirun", "-m"], cwd=tmp_path, env=_env(MLFLOW_TRACKING_URI=server),
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    link = re.search(r"MLflow UI of this sweep \(.*?\): (\S+)", out).group(1)
    client = MlflowClient(server)
    exp = client.get_experiment_by_name("clustering")
    assert link == f"{server}/#/experiments/{exp.experiment_id}/runs"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2 and all(f"{server}/#/experiments/{exp.experiment_id}/runs/{r.info.run_id}" in out for r in runs)
    assert all(r.inputs.dataset_inputs[0].dataset.name == "synth" for r in runs)
    names = sorted(r.info.run_name for r in runs)
    acc = {r.info.run_name: r.data.metrics["accuracy"] for r in runs}

    with browser_page(width=2200, height=900) as page:  # wide: the added column is on screen
        page.goto(link, timeout=120_000)
        for name in names:  # the runs view itself, not the GenAI overview
            page.get_by_text(name).first.wait_for(timeout=120_000)
        assert page.get_by_text("2 matching runs").count() == 1
        assert page.get_by_text("synth", exact=False).count() >= 2  # the Dataset column, from the dataset input
        page.get_by_role("button", name="Columns").click()
        page.get_by_role("dialog").get_by_text("accuracy", exact=True).click()
        page.keyboard.press("Escape")
        page.get_by_role("columnheader", name=re.compile("accuracy")).first.wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=artifact_dir() / "mlflow_ui_runs.png")
        table = page.inner_text("body")
        for value in acc.values():
            assert repr(value) in table or f"{value:.4g}" in table, (value, table[:2000])
        page.goto(f"{link}/{runs[0].info.run_id}", timeout=120_000)
        page.get_by_text("Metrics (").first.wait_for(timeout=60_000)
        page.screenshot(path=artifact_dir() / "mlflow_ui_run.png")
        assert "accuracy" in page.inner_text("body")
