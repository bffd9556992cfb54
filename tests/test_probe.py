"""Linear probe: known answers on constructed embeddings, option checks, and real jobs on gtzan_mini."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from lab.core.errors import LabError
from lab.datasets.gtzan import fault_filtered_split, split_of
from lab.studies.probe.experiment import fixed_split, kfold, single_group_labels, validate

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


def test_grouped_folds_never_split_a_group_and_a_single_group_genre_is_never_learned():
    # 4 genres x 15 songs in groups of 3 (an "artist" = 3 songs); genre g3 is one artist of 15 songs
    X, y = _blobs(6.0, n_per=15, d=8)
    groups = np.array([f"{lab}-{i // 3}" for lab, i in zip(y, np.tile(np.arange(15), 4))], dtype=object)
    groups[y == "g3"] = "solo"
    sel, pred, folds, _, fold_of = kfold(X, y, CS, folds=3, inner_folds=2, max_iter=500, seed=0, groups=groups)
    for g in set(groups):
        assert len(set(fold_of[groups == g])) == 1, g  # a group sits in exactly one test fold
    assert (fold_of >= 0).all() and sum(f["n_test"] for f in folds) == len(y)
    # separable blobs, yet the single-artist genre is never in training when tested: all wrong
    assert np.mean(pred[y == "g3"] == "g3") == 0.0 and np.mean(pred[y != "g3"] == y[y != "g3"]) == 1.0
    assert single_group_labels(y, groups) == ["g3"]
    # without groups: the earlier stratified folds, every song its own unit
    _, pred0, _, _, fold0 = kfold(X, y, CS, folds=3, inner_folds=2, max_iter=500, seed=0)
    assert np.mean(pred0 == y) == 1.0 and len(set(fold0[groups == "solo"])) == 3


def test_too_few_groups_for_the_folds_is_one_sentence():
    X, y = _blobs(3.0, n_per=6)
    with pytest.raises(LabError, match=r"experiment.folds=5 needs at least 5 groups \(artists or recordings\), but these songs have 4"):
        kfold(X, y, CS, folds=5, inner_folds=2, max_iter=100, seed=0, groups=y)
    with pytest.raises(LabError, match="experiment.group='album' must be one of artist, recording"):
        validate(OmegaConf.create({"Cs": [1], "folds": 5, "inner_folds": 3, "max_iter": 100, "group": "album"}))


@pytest.mark.slow
@pytest.mark.parametrize("split, group", [("all", "recording"), ("all", "artist"), ("fault_filtered", "artist")])
def test_probe_job_on_gtzan_mini(compose_cfg, split, group):
    from mlflow.tracking import MlflowClient

    from lab.app.task import run
    from lab.tracking import resolve_tracking_uri

    need(WEIGHTS / "mtat" / "fcn" / "best_model.pth")
    cfg = compose_cfg("experiment=probe", "model=fcn", "model.corpus=mtat", "dataset=gtzan", f"dataset.root={need(GTZAN_MINI)}",
                      f"dataset.split={split}", "experiment.folds=5", "experiment.inner_folds=2", f"experiment.group={group}")
    scores = run(cfg)
    client = MlflowClient(resolve_tracking_uri(cfg))
    (r,) = client.search_runs([client.get_experiment_by_name("probe").experiment_id])
    assert r.info.status == "FINISHED" and r.data.tags["corpus"] == "mtat"
    assert r.data.metrics["probe_accuracy"] == pytest.approx(scores["probe_accuracy"])
    assert scores["probe_accuracy_ci_lo"] <= scores["probe_accuracy"] <= scores["probe_accuracy_ci_hi"]
    if split == "all" and group == "recording":  # 50 songs in 5 folds: well above the 10 % chance; 4 test songs prove nothing either way
        assert scores["probe_accuracy"] > 2 * scores["chance_accuracy"]
    elif split == "all":  # artists never split: the four single-artist genres are never right, no artist spans two folds
        import pandas as pd

        pr = pd.read_csv(client.download_artifacts(r.info.run_id, "probe_predictions.csv"))
        assert not pr[pr.label.isin(["blues", "classical", "reggae", "rock"])].correct.any()
        assert (pr.groupby("group").fold.nunique() == 1).all() and pr.group.nunique() == 29
        assert scores["probe_accuracy"] <= 0.6 and "probe_accuracy_multi" in scores
    else:
        folds = open(client.download_artifacts(r.info.run_id, "probe_folds.csv")).read().splitlines()
        assert folds[0].startswith("fold,C,n_train,n_valid,n_test") and ",19,24,4," in folds[1]
    names = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"probe_folds.csv", "probe_grid.csv", "probe_predictions.csv", "probe_hyperparameters.json", "probe_confusion_matrix.png"} <= names
    assert scores["n_test"] == (4 if split == "fault_filtered" else 50)  # gtzan_mini holds 4 of the 290 test songs


def test_probe_report_averages_seeds_and_resamples_the_groups_the_folds_kept_apart():
    import pandas as pd

    from lab.studies.probe.report import probe_numbers, probe_table

    ids = [f"s{i}" for i in range(40)]
    artists = [f"a{i // 4}" for i in range(40)]  # 10 artists of 4 songs
    runs, preds = [], {}
    for seed, right in ((0, 0.5), (1, 0.7)):
        correct = np.arange(40) < int(40 * right)
        rid = f"r{seed}"
        runs.append({"run_id": rid, "status": "FINISHED", "tags": {"model": "fcn", "group": "artist", "seed": str(seed)},
                     "metrics": {"probe_accuracy": right, "probe_accuracy_std": 0.1, "chance_accuracy": 0.1, "n_test": 40,
                                 "probe_accuracy_multi": right + 0.1}})
        preds[rid] = pd.DataFrame({"id": ids, "correct": correct.astype(str), "group": artists}).set_index("id")
    nums = probe_numbers(runs, preds, n_boot=500)
    (r,) = nums.itertuples(index=False)
    assert (r.mean, round(r.std, 4), r.n) == (0.6, round(np.std([0.5, 0.7], ddof=1), 4), 2)
    assert r.ci_lo < 0.6 < r.ci_hi and r.multi == pytest.approx(0.7)
    # artists 0-4 always right, 5-6 right for one seed, 7-9 never: redrawing 10 artists gives a wide interval
    assert r.ci_hi - r.ci_lo > 0.4
    t = probe_table(nums)
    assert t.iloc[0]["probe accuracy"] == "0.600 (0.141)" and t.iloc[0]["folds keep apart"] == "artists"
