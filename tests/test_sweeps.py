"""Sweeps as a researcher runs them: cluster-count scores, the seed-variance report, parallel
jobs against SQLite, a real remote ``mlflow server``, and ``multirun.sh`` itself."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from lab import report
from lab.app.task import run
from lab.studies.clustering import report as report_mod
from lab.tracking import resolve_tracking_uri

from conftest import GTZAN_MINI, ROOT, WEIGHTS, need

# Random-weight sample-level CNN on short synthetic clips: real code paths, seconds per job.
FAST = ["model=sample", "model.pretrained=false", "dataset.n_per_class=3", "dataset.seconds=4", "embed.progress=false"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LAB_CACHE_DIR")}
    env.update(LAB_WEIGHTS_DIR=str(WEIGHTS), **extra)
    return env


def _lab(*args, cwd, **env):
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=900)


def test_cluster_scores_logs_curves_per_k_and_best_k(compose_cfg):
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    # real FCN weights: random-weight embeddings are too degenerate for a full-covariance GMM
    cfg = compose_cfg("experiment=cluster_scores", "dataset.n_per_class=3", "experiment.k_max=6")
    best = run(cfg)
    client = MlflowClient(resolve_tracking_uri(cfg))
    (r,) = client.search_runs([client.get_experiment_by_name("cluster_scores").experiment_id])
    hist = client.get_metric_history(r.info.run_id, "cluster_scores/silhouette")
    assert sorted(m.step for m in hist) == [2, 3, 4, 5, 6]
    assert len(client.get_metric_history(r.info.run_id, "cluster_scores/davies_bouldin")) == 5
    assert r.data.tags["clusterer"] == "gmm"  # the study's choice is the default here
    assert set(best) == {"best_k/silhouette", "best_k/calinski_harabasz", "best_k/davies_bouldin", "best_k/bic"}
    bic = {m.step: m.value for m in client.get_metric_history(r.info.run_id, "cluster_scores/bic")}
    assert sorted(bic) == [2, 3, 4, 5, 6] and best["best_k/bic"] == min(bic, key=bic.get)  # the GMM's own criterion
    # the reported best k is where the logged curves peak (silhouette, CH) or dip (DB)
    curve = {name: {m.step: m.value for m in client.get_metric_history(r.info.run_id, f"cluster_scores/{name}")}
             for name in ("silhouette", "calinski_harabasz", "davies_bouldin")}
    assert best["best_k/silhouette"] == max(curve["silhouette"], key=curve["silhouette"].get)
    assert best["best_k/calinski_harabasz"] == max(curve["calinski_harabasz"], key=curve["calinski_harabasz"].get)
    assert best["best_k/davies_bouldin"] == min(curve["davies_bouldin"], key=curve["davies_bouldin"].get)
    assert r.data.tags["best_k"] == ", ".join(f"{n}={int(best['best_k/' + n])}" for n in [*curve, "bic"])
    assert len(client.get_metric_history(r.info.run_id, "cluster_scores/silhouette_std")) == 5  # 3 seeds per k by default
    assert {"cluster_scores.png", "cluster_scores.csv"} <= {a.path for a in client.list_artifacts(r.info.run_id)}


@pytest.mark.slow
def test_report_builds_the_seed_variance_table(compose_cfg, tmp_path, capsys):
    for clusterer in ("kmeans", "gmm"):
        for seed in (0, 1):
            run(compose_cfg(*FAST, f"clusterer={clusterer}", "cluster_count=seven", f"seed={seed}", "sweep_id=t1",
                            "experiment.save_embeddings=false", "experiment.listen_map=false"))
    # a one-seed cell: its std is undefined and must not print as 0
    run(compose_cfg(*FAST, "clusterer=kmeans", "cluster_count=ten", "seed=0", "sweep_id=t1",
                    "experiment.save_embeddings=false", "experiment.listen_map=false"))
    cfg = compose_cfg()
    args = ["--out", str(tmp_path / "rep"), "--n-boot", "200", f"paths.mlruns={cfg.paths.mlruns}"]
    assert report.main(args) == 0
    out = capsys.readouterr().out
    assert "sweep t1: 5 finished runs" in out and "logged summary run" in out
    md = (tmp_path / "rep" / "table1.md").read_text().splitlines()
    assert md[0] == ("| # Clusters | Model | K-Means | K-Means 95 % CI | K-Means held-out | K-Means held-out 95 % CI | GMM | GMM 95 % CI"
                     " | GMM held-out | GMM held-out 95 % CI | seeds |")
    row = md[2].split(" | ")
    assert row[0] == "| 7" and row[1] == "Sample level (random)" and row[-1] == "2 |"  # random weights: a row of their own
    assert all("(" in row[i] and "n=1" not in row[i] for i in (2, 4, 6, 8))  # mean (std), in-sample and held-out
    assert all(row[i].startswith("[") for i in (3, 5, 7, 9))  # [lo, hi]
    one = md[3].split(" | ")
    # k = 10 on 18 songs: a half (9 songs) cannot hold 10 clusters, so no held-out number, and no GMM run
    assert one[0] == "| 10" and one[2].endswith("(n=1)") and one[4] == "–" and one[6] == "–" and one[-1] == "1 |"
    t1 = pd.read_csv(tmp_path / "rep" / "table1.csv")
    assert list(t1.columns) == report_mod.TABLE1_COLUMNS and list(t1.columns[:10]) == [
        "k", "model", "clusterer", "mean", "std", "n", "ci_lo", "ci_hi", "ci_level", "n_boot"]  # the earlier columns first
    assert t1.dtypes["mean"] == float and t1.dtypes["n"] == int
    single = t1[t1.k == 10].iloc[0]
    assert single.n == 1 and np.isnan(single["std"]) and single.ci_lo <= single.ci_hi
    assert (t1.ci_lo <= t1.ci_hi).all() and t1.n_boot.eq(200).all()
    scores = pd.read_csv(tmp_path / "rep" / "scores.csv")
    assert set(scores.score) == {"accuracy", "nmi", "ami", "ari", "v_measure"} and scores.ci_lo.notna().all()
    assert (tmp_path / "rep" / "table1.tex").read_text().startswith("\\begin{tabular}")
    assert "synth-disco" in (tmp_path / "rep" / "per_genre.csv").read_text()
    client = MlflowClient(resolve_tracking_uri(cfg))
    exp = client.get_experiment_by_name("report").experiment_id
    (rep,) = client.search_runs([exp])
    assert rep.data.tags["sweep_id"] == "t1"
    assert {"table1.md", "table1.csv", "scores.md"} <= {a.path for a in client.list_artifacts(rep.info.run_id)}
    # re-printing adds no run; a changed sweep updates the same run
    assert report.main(args) == 0
    assert "nothing logged" in capsys.readouterr().out
    run(compose_cfg(*FAST, "clusterer=gmm", "cluster_count=ten", "seed=0", "sweep_id=t1",
                    "experiment.save_embeddings=false", "experiment.listen_map=false"))
    assert report.main(args) == 0
    assert "updated summary run" in capsys.readouterr().out
    (again,) = client.search_runs([exp])
    assert again.info.run_id == rep.info.run_id
    t1 = pd.read_csv(client.download_artifacts(rep.info.run_id, "table1.csv", str(tmp_path / "dl")))
    assert len(t1) == 4  # (7, kmeans), (7, gmm), (10, kmeans), (10, gmm)


@pytest.mark.slow
def test_parallel_joblib_jobs_share_sqlite_and_one_extraction(tmp_path):
    # one seed: random weights are drawn from the seed, so each seed is a different model (and cache key)
    p = _lab(*FAST, "clusterer=kmeans,gmm", "cluster_count=seven,ten", f"paths.mlruns={tmp_path}/mlruns",
             f"paths.cache={tmp_path}/cache", f"hydra.sweep.dir={tmp_path}/multirun",
             "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "-m", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("clustering").experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.metrics["cache_misses"] for r in runs) == [0, 0, 0, 18]  # 18 clips embedded once
    assert all("tsne.png" in {a.path for a in client.list_artifacts(r.info.run_id)} for r in runs)


@pytest.mark.slow
def test_sweep_runs_unchanged_against_a_remote_tracking_server(tmp_path, mlflow_server):
    p = _lab(*FAST, "clusterer=kmeans,gmm", "cluster_count=seven", f"paths.cache={tmp_path}/cache",
             f"hydra.sweep.dir={tmp_path}/multirun", "-m", cwd=tmp_path, MLFLOW_TRACKING_URI=mlflow_server)
    assert p.returncode == 0, p.stderr[-3000:]
    assert not (tmp_path / "mlruns").exists()  # nothing went to the local default store
    client = MlflowClient(mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("clustering").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["sweep_id"] for r in runs}) == 1
    arts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"confusion_matrix.png", "tsne.png", "embeddings.npz", ".hydra"} <= arts
    rep = subprocess.run([sys.executable, "-m", "lab.report", "--out", str(tmp_path / "rep")], cwd=tmp_path,
                         env=_env(MLFLOW_TRACKING_URI=mlflow_server), capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert "| 7 | Sample level (random) |" in rep.stdout


@pytest.mark.slow
def test_multirun_script_skips_missing_checkpoints_and_prints_the_table(tmp_path):
    need(GTZAN_MINI)
    p = subprocess.run(["bash", str(ROOT / "multirun.sh"), "dataset=gtzan", f"dataset.root={GTZAN_MINI}",
                        f"paths.mlruns={tmp_path}/mlruns", f"paths.cache={tmp_path}/cache", f"hydra.sweep.dir={tmp_path}/multirun"],
                       env=_env(PYTHON=sys.executable, SEEDS="2", MODELS="crnn hcnn", SWEEP_ID="script-test", TRANSFORMS="0", BASELINES="0", JOBS="2"),
                       capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "skipping model=hcnn: no checkpoint" in p.stdout
    assert "| 7 | CRNN |" in p.stdout and "| 10 | CRNN |" in p.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("clustering").experiment_id], "tags.sweep_id = 'script-test'")
    assert len(runs) == 8 and {r.data.tags["model"] for r in runs} == {"crnn"}
    assert all(r.data.metrics["cache_misses"] == 0 for r in runs)  # cluster_scores extracted first
    (cs,) = client.search_runs([client.get_experiment_by_name("cluster_scores").experiment_id])
    assert cs.data.metrics["cache_misses"] == 50
    assert "8 clustering jobs, 2 at a time" in p.stdout  # JOBS: one per core (joblib workers)
    # one listening page per (clusterer, k) cell: the seed-0 runs (experiment.listen_map=0)
    pages = {r.data.tags["seed"]: [] for r in runs}
    for r in runs:
        pages[r.data.tags["seed"]].append("listen_map" in {a.path for a in client.list_artifacts(r.info.run_id)})
    assert pages == {"0": [True] * 4, "1": [False] * 4}


@pytest.mark.slow
def test_seed_sweep_draws_the_tsne_map_once_and_one_listening_page(compose_cfg):
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")  # real weights: the seed changes only the clustering
    for seed in (0, 1):
        run(compose_cfg("dataset.n_per_class=3", "dataset.seconds=4", "clusterer=kmeans", "cluster_count=seven", f"seed={seed}",
                        "experiment.listen_map=0", "experiment.save_embeddings=false"))
    client = MlflowClient(resolve_tracking_uri(compose_cfg()))
    runs = {r.data.tags["seed"]: r.info.run_id for r in client.search_runs([client.get_experiment_by_name("clustering").experiment_id])}
    arts = {s: {a.path for a in client.list_artifacts(rid)} for s, rid in runs.items()}
    assert "listen_map" in arts["0"] and "listen_map" not in arts["1"]
    assert {"tsne.png", "confusion_matrix.png"} <= arts["1"]
    # the map does not depend on the clustering seed: the second job logs the first one's drawing
    png = [open(client.download_artifacts(runs[s], "tsne.png"), "rb").read() for s in ("0", "1")]
    assert png[0] == png[1] and png[0][:8] == b"\x89PNG\r\n\x1a\n"


def test_rerunning_a_named_sweep_skips_finished_jobs(compose_cfg):
    cfg = compose_cfg(*FAST, "cluster_count=seven", "sweep_id=resume-me", "experiment.save_embeddings=false")
    first = run(cfg)
    again = run(compose_cfg(*FAST[:-1], "embed.progress=true", "cluster_count=seven", "sweep_id=resume-me",
                            "experiment.save_embeddings=false"))
    assert again["accuracy"] == pytest.approx(first["accuracy"])
    other_seed = compose_cfg(*FAST, "cluster_count=seven", "sweep_id=resume-me", "experiment.save_embeddings=false", "seed=1")
    run(other_seed)
    client = MlflowClient(resolve_tracking_uri(cfg))
    runs = client.search_runs([client.get_experiment_by_name("clustering").experiment_id])
    assert len(runs) == 2  # the repeated config was not run again; the new seed was
