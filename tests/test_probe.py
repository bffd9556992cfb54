"""Linear probe: known answers on constructed embeddings, option checks, and real jobs on gtzan_mini."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from lab.core.errors import LabError
from lab.datasets.gtzan import fault_filtered_split, split_of
from lab.studies.probe.experiment import fixed_split, kfold, validate

from conftest import GTZAN_MINI, REFERENCE, WEIGHTS, need

CS = [0.01, 1.0, 100.0]


def _blobs(separation: float, seed: int = 0, n_per: int = 12, k: int = 4, d: int = 20):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * separation
    y = np.repeat([f"g{i}" for i in range(k)], n_per)
    return centres[np.repeat(np.arange(k), n_per)] + rng.standard_normal((k * n_per, d)), y


def test_kfold_separable_blobs_are_read_perfectly():
    X, y = _blobs(10.0, n_per=6)
    sel, pred, folds, grid, _ = kfold(X, y, CS, folds=3, inner_folds=2, max_iter=500, seed=0)
    assert sel.all() and np.mean(pred == y) == 1.0
    assert len(folds) == 3 and len(grid) == 3 * len(CS) and all(f["C"] in CS for f in folds)


def test_kfold_labels_unrelated_to_the_embedding_sit_near_chance():
    X, _ = _blobs(0.0, n_per=20, d=5)
    y = np.random.default_rng(1).permutation(np.repeat(["a", "b", "c", "d"], 20))
    _, pred, _, _, _ = kfold(X, y, [0.01, 1.0], folds=4, inner_folds=2, max_iter=500, seed=0)
    assert np.mean(pred == y) < 0.45  # chance 0.25; the probe must not find structure that is not there


def test_fixed_split_chooses_C_on_valid_and_scores_test():
    X, y = _blobs(3.0, n_per=30, d=5)
    part = np.tile(np.array(["train"] * 18 + ["valid"] * 6 + ["test"] * 6), 4)  # per label block of 30
    te, pred, folds, grid = fixed_split(X, y, part, CS, max_iter=2000, seed=0)
    assert te.sum() == (part == "test").sum() and len(pred) == len(y)
    best = max(grid, key=lambda g: (g["valid_accuracy"], -g["C"]))
    assert folds[0]["C"] == best["C"] and folds[0]["test_accuracy"] == np.mean(pred[te] == y[te])


def test_probe_options_and_small_classes_are_one_sentence():
    ok = OmegaConf.create({"Cs": [0.1, 1], "folds": 5, "inner_folds": 3, "max_iter": 100})
    assert validate(ok) == ([0.1, 1.0], 5, 3, 100)
    for key, bad, msg in (("Cs", [0, 1], "positive numbers"), ("folds", 1, "integer >= 2"), ("max_iter", "many", "integer >= 1")):
        with pytest.raises(LabError, match=msg):
            validate(OmegaConf.merge(ok, {key: bad}))
    X, y = _blobs(3.0, n_per=3)
    with pytest.raises(LabError, match=r"experiment.folds=5 needs at least 5 songs of every label, but 'g0' has 3"):
        kfold(X, y, CS, folds=5, inner_folds=2, max_iter=100, seed=0)


def test_fault_filtered_membership_of_gtzan_mini():
    parts = fault_filtered_split(need(REFERENCE / "gtzan_fault_filtered"))
    assert len(parts) == 930 and set(parts.values()) == {"train", "valid", "test"}
    assert split_of("blues/blues.00000.wav", parts) == "valid" and split_of("blues/blues.00029.au", parts) == "train"
    assert split_of("gtzan:blues/blues.00029.wav@30.0s", parts) == "train"  # excerpts and composites by their song


@pytest.mark.slow
@pytest.mark.parametrize("split", ["all", "fault_filtered"])
def test_probe_job_on_gtzan_mini(compose_cfg, split):
    from mlflow.tracking import MlflowClient

    from lab.app.task import run
    from lab.tracking import resolve_tracking_uri

    need(WEIGHTS / "mtat" / "fcn" / "best_model.pth")
    cfg = compose_cfg("experiment=probe", "model=fcn", "model.corpus=mtat", "dataset=gtzan", f"dataset.root={need(GTZAN_MINI)}",
                      f"dataset.split={split}", "experiment.folds=5", "experiment.inner_folds=2")
    scores = run(cfg)
    client = MlflowClient(resolve_tracking_uri(cfg))
    (r,) = client.search_runs([client.get_experiment_by_name("probe").experiment_id])
    assert r.info.status == "FINISHED" and r.data.tags["corpus"] == "mtat"
    assert r.data.metrics["probe_accuracy"] == pytest.approx(scores["probe_accuracy"])
    if split == "all":  # 50 songs in 5 folds: well above the 10 % chance; 4 test songs prove nothing either way
        assert scores["probe_accuracy"] > 2 * scores["chance_accuracy"]
    else:
        folds = open(client.download_artifacts(r.info.run_id, "probe_folds.csv")).read().splitlines()
        assert folds[0].startswith("fold,C,n_train,n_valid,n_test") and ",19,24,4," in folds[1]
    names = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"probe_folds.csv", "probe_grid.csv", "probe_predictions.csv", "probe_hyperparameters.json", "probe_confusion_matrix.png"} <= names
    assert scores["n_test"] == (4 if split == "fault_filtered" else 50)  # gtzan_mini holds 4 of the 290 test songs
