"""Report tables from hand-made runs: intervals, seed counts, numeric CSV, and the study's ordering."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from lab.stats.metrics import evaluate
from lab.studies.clustering import report


def _ctx(acc_by_model: dict[str, float], *, seeds=(0, 1), n_songs=60, n_boot=200) -> report.ReportContext:
    """Runs of each model (k=7, K-Means) whose clusters are right for a given share of 60 songs."""
    genres = np.repeat([f"g{i}" for i in range(6)], n_songs // 6)
    ids = [f"{g}/{i:03d}.wav" for i, g in enumerate(genres)]
    truth = np.repeat(np.arange(6), n_songs // 6)
    rows, assignments = [], {}
    for m, acc in acc_by_model.items():
        for s in seeds:
            rng = np.random.default_rng(zlib.crc32(f"{m}-{s}".encode()))  # stable across processes, unlike hash()
            pred = truth.copy()
            wrong = rng.choice(n_songs, int(round(n_songs * (1 - acc))), replace=False)
            pred[wrong] = (pred[wrong] + 1 + rng.integers(0, 5, wrong.size)) % 6
            rid = f"{m}-{s}"
            rows.append({"run_id": rid, "status": "FINISHED", "model": m, "clusterer": "kmeans", "k": 7, "seed": s,
                         "dataset": "gtzan", **evaluate(genres, pred)})
            assignments[rid] = pd.DataFrame({"id": ids, "genre": genres, "cluster": pred.astype(str), "source": ids}).set_index("id")
    ctx = report.ReportContext(pd.DataFrame(rows), n_boot=n_boot)
    report.add_redraws(ctx, assignments)
    return ctx


def test_study_ordering_supported_when_clear_and_unresolved_when_close():
    ctx = _ctx({"fcn": 0.9, "crnn": 0.5, "musicnn": 0.88})
    cmp = report.comparisons(ctx).set_index(["A", "B"])
    # the study ranks FCN (0.611) over CRNN (0.500): here 0.9 vs 0.5 on 60 songs -> supported
    fc = cmp.loc[("FCN", "CRNN")]
    assert fc["verdict"] == "supported" and fc["study A vs B"] == "0.611 vs 0.500" and fc["P(A > B)"] > 0.99
    # FCN 0.9 vs Musicnn 0.88 cannot be told apart by 60 songs
    assert cmp.loc[("FCN", "Musicnn")]["verdict"] == "not resolved"
    # the study ranks Musicnn over CRNN; here too
    assert cmp.loc[("Musicnn", "CRNN")]["verdict"] == "supported"


def test_reversed_ordering_is_called_reversed():
    cmp = report.comparisons(_ctx({"fcn": 0.4, "crnn": 0.9}))
    (row,) = cmp.itertuples(index=False)
    assert (row.A, row.B, cmp.iloc[0]["verdict"]) == ("FCN", "CRNN", "reversed")
    assert cmp.iloc[0]["A - B"] < 0 and cmp.iloc[0]["P(A > B)"] < 0.01


def test_one_seed_has_no_std_but_has_an_interval_and_numbers_stay_numbers():
    ctx = _ctx({"fcn": 0.8}, seeds=(0,))
    t = report.table1(ctx)
    assert t.iloc[0]["K-Means"].endswith("(n=1)") and t.iloc[0]["seeds"] == "1"
    assert t.iloc[0]["K-Means 95 % CI"].startswith("[")
    nums = report.table1_numbers(ctx)
    r = nums.iloc[0]
    assert r["n"] == 1 and np.isnan(r["std"]) and r["ci_lo"] < r["mean"] < r["ci_hi"]
    assert report.fmt_mean_std(0.68, float("nan"), 1) == "0.680 (n=1)"
    assert report.fmt_mean_std(0.624, 0.0137, 3) == "0.624 (0.0137)"
    s = report.scores_numbers(ctx)
    assert set(s.score) == {"accuracy", "nmi", "ami", "ari", "v_measure"} and s.ci_lo.notna().all()


def test_k_caps_accuracy_at_the_share_of_the_k_largest_genres():
    assert report.accuracy_cap(np.full(10, 5), 7) == 0.7  # 10 balanced genres, k = 7: at most 0.70
    assert report.accuracy_cap(np.full(10, 100), 10) == 1.0
    assert report.accuracy_cap(np.array([50, 30, 20]), 2) == 0.8


def test_table1_shows_held_out_beside_in_sample_and_resamples_artists():
    ctx = _ctx({"fcn": 0.8, "crnn": 0.6})
    # give every run an artist column (pairs of songs) and a held-out share; re-derive the redraws by artist
    rows = ctx.df.copy()
    rows["accuracy_heldout"], rows["accuracy_heldout_ceiling"] = 0.5, 0.7
    assignments = {}
    for r in rows.run_id:
        genres = np.repeat([f"g{i}" for i in range(6)], 10)
        ids = [f"{g}/{i:03d}.wav" for i, g in enumerate(genres)]
        a = pd.DataFrame({"id": ids, "genre": genres, "cluster": np.repeat(np.arange(6), 10).astype(str), "source": ids,
                          "group": [f"artist:{i // 2}" for i in range(60)], "heldout": np.tile([1.0, 0.0], 30)})
        assignments[r] = a.set_index("id")
    by_artist = report.ReportContext(rows, n_boot=300, group="artist")
    report.add_redraws(by_artist, assignments)
    report.add_caps(by_artist, assignments)
    t = report.table1(by_artist)
    assert list(t.columns[:6]) == ["# Clusters", "Model", "K-Means", "K-Means 95 % CI", "K-Means held-out", "K-Means held-out 95 % CI"]
    assert t.iloc[0]["K-Means held-out"] == "0.500 (0.0000)"
    # each artist is one right and one wrong song: redrawing artists keeps the held-out share at exactly 0.5
    assert t.iloc[0]["K-Means held-out 95 % CI"] == "[0.500, 0.500]"
    nums = report.table1_numbers(by_artist)
    assert (nums.cap == 1.0).all() and (nums.heldout_ceiling == 0.7).all()  # k = 7 of 6 genres: no cap
    assert any("held-out ceiling" in n and "k = 7 -> 0.70" in n for n in by_artist.notes)
    by_song = report.ReportContext(rows, n_boot=300, group="recording")
    report.add_redraws(by_song, assignments)
    lo, hi = report.table1_numbers(by_song).iloc[0][["heldout_ci_lo", "heldout_ci_hi"]]
    assert lo < 0.45 and hi > 0.55  # redrawing songs: the share moves
