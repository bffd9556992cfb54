"""One real job end to end: Hydra compose -> embeddings -> clustering -> MLflow run in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from lab.app.task import run
from lab.core.errors import LabError
from lab.tracking import resolve_tracking_uri

from conftest import GTZAN_MINI, ROOT, WEIGHTS, need


def _runs(cfg):
    client = MlflowClient(resolve_tracking_uri(cfg))
    exp = client.get_experiment_by_name(cfg.experiment.name)
    return client, client.search_runs([exp.experiment_id])


def test_clustering_job_logs_metrics_tags_and_artifacts(compose_cfg):
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    cfg = compose_cfg("dataset.n_per_class=2", "cluster_count=seven", "seed=3")
    scores = run(cfg)
    # 6 synthetic styles x 2 clips in 7 clusters: the styles separate, so every style is matched and
    # exactly the songs of the one spare cluster are wrong (1 or 2 of 12).
    assert scores["accuracy"] in (pytest.approx(10 / 12), pytest.approx(11 / 12))
    client, runs = _runs(cfg)
    (r,) = runs
    assert r.info.status == "FINISHED"
    assert {"accuracy", "nmi", "ami", "ari", "v_measure", "cache_misses"} <= set(r.data.metrics)
    assert r.data.metrics["accuracy"] == pytest.approx(scores["accuracy"])
    for s in ("accuracy", "nmi", "ami", "ari", "v_measure"):  # 95 % song-bootstrap interval of each score
        assert -1 <= r.data.metrics[f"{s}_ci_lo"] <= r.data.metrics[f"{s}_ci_hi"] <= 1
    assert r.data.metrics["n_songs"] == 12
    t = r.data.tags
    assert (t["model"], t["dataset"], t["clusterer"], t["k"], t["seed"], t["pretrained"]) == ("fcn", "synth", "kmeans", "7", "3", "true")
    assert t["git_commit"] and t["embedding_dim"] == "64"
    assert r.data.params["model.input_length"] == "464000"
    names = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"confusion_matrix.png", "confusion_matrix.csv", "tsne.png", "assignments.csv", "embeddings.npz", "listen_map"} <= names
    listen = {a.path for a in client.list_artifacts(r.info.run_id, "listen_map")}
    assert listen == {"listen_map/tsne.html", "listen_map/previews"}
    assert len(client.list_artifacts(r.info.run_id, "listen_map/previews")) == 12
    path = client.download_artifacts(r.info.run_id, "embeddings.npz")
    with np.load(path, allow_pickle=False) as z:
        assert z["X"].shape == (12, 64) and len(z["paths"]) == len(z["labels"]) == 12


def test_missing_weights_stop_the_job_before_a_run_opens(compose_cfg, tmp_path):
    # hcnn: no checkpoint anywhere on the search path (fcn's would be found in ../shared/weights)
    cfg = compose_cfg(f"paths.weights={tmp_path / 'empty'}", "model=hcnn", "dataset.n_per_class=2")
    with pytest.raises(LabError, match=r"no checkpoint for model=hcnn at .*empty/jamendo/hcnn/best_model.pth"):
        run(cfg)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # no FAILED run left behind


def test_error_after_the_run_opened_marks_it_failed(compose_cfg, monkeypatch):
    import lab.studies.clustering.experiment as clustering

    def broken(*a, **k):
        raise LabError("the clusterer fell over")

    monkeypatch.setattr(clustering, "load_embeddings", broken)
    cfg = compose_cfg("dataset.n_per_class=1", "model.pretrained=false")
    with pytest.raises(LabError):
        run(cfg)
    _, (r,) = _runs(cfg)
    assert r.info.status == "FAILED" and r.data.tags["error"] == "LabError: the clusterer fell over"


def _lab(*args, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LAB_CACHE_DIR")}
    env.update({"LAB_WEIGHTS_DIR": str(WEIGHTS), **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_bad_value_prints_one_sentence_without_traceback(tmp_path):
    p = _lab("cluster_count.k=1", f"paths.mlruns={tmp_path}/mlruns", cwd=ROOT)
    assert p.returncode == 2
    assert "error: cluster_count.k=1 must be at least 2" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


@pytest.mark.slow
def test_cli_multirun_on_real_gtzan_clips_extracts_once(tmp_path):
    need(GTZAN_MINI)
    p = _lab("dataset=gtzan", f"dataset.root={GTZAN_MINI}", "clusterer=kmeans,gmm", "seed=0,1",
             f"paths.mlruns={tmp_path}/mlruns", f"paths.cache={tmp_path}/cache", f"hydra.sweep.dir={tmp_path}/multirun",
             "embed.progress=false", "-m", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    exp = client.get_experiment_by_name("clustering")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.tags["sweep_id"] for r in runs}) == 1
    assert sorted(r.data.metrics["cache_misses"] for r in runs) == [0, 0, 0, 50]  # one extraction
    assert all(r.data.metrics["n_songs"] == 50 for r in runs)
    assert all(".hydra" in {a.path for a in client.list_artifacts(r.info.run_id)} for r in runs)


def test_bad_files_in_a_folder_dataset_are_skipped_counted_and_listed(compose_cfg, tmp_path, caplog):
    import soundfile as sf

    root = tmp_path / "music"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            sf.write(root / label / f"{label}{i}.flac", 0.1 * rng.standard_normal(16000 * 4), 16000)
    (root / "a" / "empty.wav").write_bytes(b"")
    sf.write(root / "b" / "silent.wav", np.zeros(16000 * 4), 16000)
    sf.write(root / "b" / "short.ogg", 0.1 * rng.standard_normal(8000), 16000)
    cfg = compose_cfg("dataset=folder", f"dataset.root={root}", "model=sample", "model.pretrained=false", "cluster_count.k=2")
    with caplog.at_level("WARNING"):
        run(cfg)
    client, (r,) = _runs(cfg)
    assert r.info.status == "FINISHED"
    assert (r.data.metrics["n_songs"], r.data.metrics["n_skipped"]) == (4, 3)
    rows = open(client.download_artifacts(r.info.run_id, "skipped_files.csv")).read().splitlines()
    assert rows[0] == "path,id,reason,detail"
    assert sorted(line.split(",")[2] for line in rows[1:]) == ["empty", "silent", "too_short"]
    assert "note: 3 of 7 files of folder skipped as unusable audio" in caplog.text  # repeated at the end of the job


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_multirun(tmp_path):
    """fcn's checkpoint missing (empty weights folder): the pretrained job fails with the sentence, the
    random-weight job after it still runs, and the sweep ends with a one-line summary and exit code 1."""
    p = _lab("model.pretrained=true,false", f"paths.weights={tmp_path}/empty", "dataset.n_per_class=1",
             "dataset.seconds=5", f"paths.mlruns={tmp_path}/mlruns", f"paths.cache={tmp_path}/cache",
             f"hydra.sweep.dir={tmp_path}/multirun", "embed.progress=false", "-m", cwd=ROOT,
             env_extra={"LAB_WEIGHTS_DIR": ""})
    assert p.returncode == 1, p.stderr[-2000:]
    assert "error: 1 job of this multirun failed" in p.stderr
    assert "job 0 (model.pretrained=True): no checkpoint for model=fcn" in p.stderr  # named by what the sweep varies
    assert "Traceback" not in p.stderr
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("clustering").experiment_id])
    assert [(r.data.tags["pretrained"], r.info.status) for r in runs] == [("false", "FINISHED")]
