"""What a new user hit in the first hour (issue 11): each mistake answered in one sentence, the
lab's own help, UI links, NaN metrics, long config values and figure resolution."""

from __future__ import annotations

import http.server
import math
import os
import socket
import struct
import subprocess
import sys
import threading

import matplotlib.pyplot as plt
import pytest
from mlflow.tracking import MlflowClient

from lab import tracking
from lab.core.errors import LabError
from lab.tracking.callbacks import SweepLinks

from conftest import ROOT


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LAB_CACHE_DIR", "SEEDS", "MODELS", "SWEEP_ID")}
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


# --- multirun.sh: settings as arguments (item 2) ------------------------------------------------

def test_multirun_script_rejects_an_unknown_upper_case_word_in_one_sentence(tmp_path):
    p = subprocess.run(["bash", str(ROOT / "multirun.sh"), "SEED=2", "dataset=synth"], env=_env(PYTHON=sys.executable),
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    (line,) = p.stderr.strip().splitlines()  # one sentence, no Hydra traceback
    assert "SEED is not a setting of multirun.sh" in line and "SEED=2 bash multirun.sh" in line


@pytest.mark.parametrize("arg, expected", [("SEEDS=0", "SEEDS=0 must be a positive whole number"),
                                           ("MODELS=fcn,crnn", "MODELS has an unknown model 'fcn,crnn'"),
                                           ("JOBS=0", "JOBS=0 must be a positive whole number")])
def test_multirun_script_checks_its_settings(tmp_path, arg, expected):
    p = subprocess.run(["bash", str(ROOT / "multirun.sh"), arg], env=_env(PYTHON=sys.executable),
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and expected in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_multirun_script_takes_its_settings_as_arguments(tmp_path):
    # SWEEP_ID and MODELS given as arguments, not environment: the script uses them (the sweep id is
    # echoed, and the model without a checkpoint in the empty weights folder is the only one tried).
    p = subprocess.run(["bash", str(ROOT / "multirun.sh"), "SWEEP_ID=args-sweep", "MODELS=hcnn", "SEEDS=1",
                        f"paths.weights={tmp_path / 'no-weights'}"], env=_env(PYTHON=sys.executable),
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "sweep args-sweep" in p.stdout
    assert "skipping model=hcnn: no checkpoint" in p.stdout and "model=fcn" not in p.stdout
    assert p.returncode == 2 and "no model has a checkpoint" in p.stderr


# --- an unreachable tracking server (item 3) ----------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_tracking_server_is_one_sentence_naming_the_uri():
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(LabError, match=rf"the MLflow tracking server {uri} cannot be reached \(.*refused"):
        tracking.check_reachable(uri, timeout=2)


def test_silent_tracking_server_times_out_quickly():
    # A socket that accepts connections (kernel backlog) but never answers: MLflow would retry for minutes.
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        uri = f"http://127.0.0.1:{srv.getsockname()[1]}"
        with pytest.raises(LabError, match=rf"{uri} cannot be reached \(.*timed out"):
            tracking.check_reachable(uri, timeout=1)


class _Answer(http.server.BaseHTTPRequestHandler):
    code = 404

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(self.code)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("code, ok", [(200, True), (401, True), (404, False)])
def test_only_an_mlflow_like_answer_counts_as_reachable(code, ok):
    handler = type("H", (_Answer,), {"code": code})
    srv = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        if ok:
            tracking.check_reachable(uri, timeout=2)
        else:
            with pytest.raises(LabError, match=r"answers there but not as an MLflow server \(HTTP 404"):
                tracking.check_reachable(uri, timeout=2)
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_job_against_a_dead_server_fails_fast_with_one_sentence(tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"
    p = subprocess.run([sys.executable, "-m", "lab", "model=sample", "model.pretrained=false", "seed=0,1",
                        f"hydra.sweep.dir={tmp_path}/multirun", "-m"], env=_env(MLFLOW_TRACKING_URI=uri),
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2
    assert f"error: the MLflow tracking server {uri} cannot be reached" in p.stderr
    assert "Traceback" not in p.stderr and "#0 :" not in p.stdout + p.stderr  # stopped before any job launched


# --- help (item 11) -----------------------------------------------------------------------------

def test_lab_help_is_the_labs_own_with_common_commands(tmp_path):
    p = subprocess.run([sys.executable, "-m", "lab", "--help"], env=_env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0
    assert "powered by Hydra" not in p.stdout
    assert "Common commands:" in p.stdout and "bash multirun.sh dataset=gtzan dataset.root=PATH" in p.stdout
    # the groups are still listed: the seven taggers and the other kinds of model (lab/models/protocol.py)
    assert "model: attention, crnn, custom, embeddings, fcn, handcrafted, hcnn, hear, musicnn, musicnn_tf, sample, se" in p.stdout


def test_lab_models_help_and_unknown_flag(tmp_path):
    h = subprocess.run([sys.executable, "-m", "lab.models", "--help"], env=_env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert h.returncode == 0 and "--available" in h.stdout and "MISSING" not in h.stdout  # usage, not the table
    b = subprocess.run([sys.executable, "-m", "lab.models", "--bogus"], env=_env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert b.returncode == 2 and "unknown option --bogus" in b.stderr and b.stdout == ""


# --- the tracker: NaN metrics (item 12), long values, dpi, links -----------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the tracker tests below (a fresh store costs seconds of schema migration)."""
    return f"paths.mlruns={tmp_path_factory.mktemp('store') / 'mlruns'}"


def test_nonfinite_metric_is_warned_and_tagged_not_dropped_silently(compose_cfg, store):
    cfg = compose_cfg(store)
    with tracking.start_run(cfg) as tr:
        tr.log_metrics({"accuracy": float("nan"), "nmi": 0.5, "ari": float("inf")})
        tr.log_metrics({"silhouette": float("-inf")}, step=4)
    run = MlflowClient(tracking.resolve_tracking_uri(cfg)).get_run(tr.run_id)
    assert run.data.metrics["nmi"] == 0.5 and "accuracy" not in run.data.metrics
    assert run.data.tags["nonfinite.accuracy"] == "nan" and run.data.tags["nonfinite.ari"] == "inf"
    assert run.data.tags["nonfinite.silhouette"] == "-inf at step 4"
    assert any("accuracy=nan" in w and "not a finite number" in w for w in tr.warnings)


def test_long_config_values_are_stored_whole_as_an_artifact(compose_cfg, store):
    long = "x" * (tracking.PARAM_LIMIT + 500)
    cfg = compose_cfg(store, f"+note={long}")
    with tracking.start_run(cfg) as tr:
        pass
    client = MlflowClient(tracking.resolve_tracking_uri(cfg))
    run = client.get_run(tr.run_id)
    assert len(run.data.params["note"]) == tracking.PARAM_LIMIT  # MLflow's params cut it...
    assert run.data.tags["params_truncated"] == "note"
    text = open(client.download_artifacts(tr.run_id, "config.yaml")).read()
    assert f"note: {long}\n" in text  # ...the artifact holds it whole


def _png_width(path) -> int:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", head[16:20])[0]


@pytest.mark.parametrize("dpi", [100, 300])
def test_figures_are_saved_at_plots_dpi(compose_cfg, store, dpi):
    cfg = compose_cfg(store, f"plots.dpi={dpi}")
    with tracking.start_run(cfg) as tr:
        fig = plt.figure(figsize=(4, 3))
        fig.gca().plot([0, 1], [0, 1])
        tr.log_figure(fig, "f.png")
    path = MlflowClient(tracking.resolve_tracking_uri(cfg)).download_artifacts(tr.run_id, "f.png")
    assert math.isclose(_png_width(path), 4 * dpi, rel_tol=0.15)  # bbox_inches="tight" trims a little


@pytest.mark.parametrize("bad", ["0", "abc", "5000"])
def test_bad_plots_dpi_is_one_sentence(compose_cfg, bad):
    with pytest.raises(LabError, match=r"plots.dpi=.* must be a whole number of dots per inch in \[50, 1200\]"):
        tracking.figure_dpi(compose_cfg(f"plots.dpi={bad}"))


def test_experiment_exists_before_jobs_launch_and_links_point_at_it(compose_cfg):
    cfg = compose_cfg("experiment=cluster_scores")  # a store of its own: the experiment must be new
    cb = SweepLinks()
    cb.on_multirun_start(cfg)
    client = MlflowClient(tracking.resolve_tracking_uri(cfg))
    exp = client.get_experiment_by_name("cluster_scores")
    assert exp is not None and exp.experiment_id == cb.experiment_id and not client.search_runs([exp.experiment_id])
    assert tracking.ui_links("http://h:5000", "7", "abc") == "http://h:5000/#/experiments/7/runs/abc"
    assert tracking.ui_links(tracking.resolve_tracking_uri(cfg), "7").startswith("http://127.0.0.1:5000/#/experiments/7/runs (start the UI with: mlflow ui --backend-store-uri sqlite:///")


def test_a_job_groups_its_metrics_logs_its_dataset_and_prints_its_ui_link(compose_cfg, caplog):
    from lab.app.task import run

    cfg = compose_cfg("model=sample", "model.pretrained=false", "dataset.n_per_class=2", "dataset.seconds=4",
                      "cluster_count=seven", "experiment.save_embeddings=false")
    with caplog.at_level("INFO"):
        run(cfg)
    client = MlflowClient(tracking.resolve_tracking_uri(cfg))
    exp = client.get_experiment_by_name("clustering")
    (r,) = client.search_runs([exp.experiment_id])
    names = set(r.data.metrics)
    assert {"accuracy", "nmi", "ari", "v_measure"} <= names  # headline numbers at top level
    assert {n for n in names if n.startswith("genre/")} == {f"genre/synth-{s}" for s in ("ambient", "disco", "dnb", "folk", "metal", "waltz")}
    assert not any(n.startswith("acc_genre") for n in names)
    (ds,) = r.inputs.dataset_inputs
    assert ds.dataset.name == "synth" and len(ds.dataset.digest) == 12 and '"uri": "synth://' in ds.dataset.source
    assert {t.key: t.value for t in ds.tags}["fingerprint"].startswith(ds.dataset.digest)
    assert f"MLflow UI of this run: http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs/{r.info.run_id}" in caplog.text
