"""Song-level bootstrap against cases with a known answer, and the fast scores against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from lab.core.errors import LabError
from lab.stats.metrics import SCORES, contingency, contingency_scores, evaluate
from lab.stats.uncertainty import bootstrap_clustering, bootstrap_mean, paired_bootstrap, resample_weights


def test_contingency_scores_equal_sklearn_on_random_and_degenerate_labellings():
    rng = np.random.default_rng(0)
    for trial in range(150):
        n, g, k = int(rng.integers(2, 60)), int(rng.integers(1, 6)), int(rng.integers(1, 8))
        y = rng.integers(0, g, n)
        p = y.copy() if trial % 5 == 0 else rng.integers(0, k, n)
        want, got = evaluate(y, p), contingency_scores(contingency(y, p)[2])
        assert list(got) == list(SCORES)
        for s in SCORES:
            assert got[s] == pytest.approx(want[s], abs=1e-12), (trial, s)


def test_ami_is_one_for_a_perfect_and_near_zero_for_a_random_clustering():
    y = np.repeat(np.arange(5), 40)
    assert evaluate(y, (y + 2) % 5)["ami"] == pytest.approx(1.0)
    rand = np.random.default_rng(1).integers(0, 5, y.size)
    assert abs(evaluate(y, rand)["ami"]) < 0.03


def test_perfect_clustering_has_a_degenerate_interval_at_one():
    y = np.repeat(["a", "b", "c"], 10)
    ci = bootstrap_clustering(y, np.repeat([2, 0, 1], 10), n_boot=200)
    for s in SCORES:
        assert (ci[s].estimate, ci[s].lo, ci[s].hi) == pytest.approx((1.0, 1.0, 1.0)), s


def test_accuracy_interval_matches_the_binomial_normal_interval():
    # Two genres, two clusters, 80 % of songs on the diagonal: the Hungarian matching never flips,
    # so accuracy is a proportion and its bootstrap interval is p +- 1.96 sqrt(p (1 - p) / n).
    n, p = 400, 0.8
    y = np.repeat(["a", "b"], n // 2)
    pred = np.array([0] * (n // 2) + [1] * (n // 2))
    wrong = np.random.default_rng(2).choice(n, round(n * (1 - p)), replace=False)
    pred[wrong] = 1 - pred[wrong]
    ci = bootstrap_clustering(y, pred, n_boot=4000, seed=3, scores=("accuracy",))["accuracy"]
    half = 1.959964 * np.sqrt(p * (1 - p) / n)  # 0.0392
    assert ci.estimate == pytest.approx(p)
    assert ci.lo == pytest.approx(p - half, abs=0.006)
    assert ci.hi == pytest.approx(p + half, abs=0.006)


def test_excerpts_of_one_song_are_drawn_together():
    # Each song cut into three identical excerpts: same songs drawn -> the same interval as one
    # clip per song (a clip-level bootstrap would shrink it by about sqrt(3)).
    rng = np.random.default_rng(4)
    y = np.repeat(["a", "b", "c"], 20)
    pred = np.where(rng.random(60) < 0.7, np.repeat([0, 1, 2], 20), rng.integers(0, 3, 60))
    one = bootstrap_clustering(y, pred, n_boot=300, seed=5)
    three = bootstrap_clustering(np.repeat(y, 3), np.repeat(pred, 3), groups=np.repeat(np.arange(60), 3), n_boot=300, seed=5)
    for s in ("accuracy", "nmi", "v_measure"):  # invariant to scaling the table (ARI/AMI count pairs; they are not)
        assert (three[s].lo, three[s].hi) == pytest.approx((one[s].lo, one[s].hi)), s
    W = resample_weights(np.repeat(np.arange(60), 3), n_boot=50, seed=0)
    assert W.shape == (50, 180) and (W.sum(1) == 180).all()
    assert (W[:, 0::3] == W[:, 1::3]).all()


def test_paired_bootstrap_matches_the_mcnemar_standard_error():
    # Same songs, A right where B is wrong on b songs and vice versa on c: the difference in
    # accuracy is (b - c) / n with standard error sqrt(b + c - (b - c)^2 / n) / n.
    n, b, c = 300, 45, 15
    y = np.repeat(["x", "y"], n // 2)
    truth = np.array([0] * (n // 2) + [1] * (n // 2))
    a_pred, b_pred = truth.copy(), truth.copy()
    idx = np.random.default_rng(6).permutation(n)
    b_pred[idx[:b]] = 1 - b_pred[idx[:b]]  # only A right
    a_pred[idx[b:b + c]] = 1 - a_pred[idx[b:b + c]]  # only B right
    res = paired_bootstrap(y, a_pred, b_pred, n_boot=4000, seed=7)
    se = np.sqrt(b + c - (b - c) ** 2 / n) / n
    assert res.diff.estimate == pytest.approx((b - c) / n)
    assert (res.diff.hi - res.diff.lo) / (2 * 1.959964) == pytest.approx(se, rel=0.08)
    assert res.verdict == "A > B" and res.p_a_better > 0.99
    same = paired_bootstrap(y, a_pred, a_pred.copy(), n_boot=200)
    assert (same.diff.lo, same.diff.hi, same.p_a_better, same.p_tie, same.verdict) == (0, 0, 0, 1, "undecided")


def test_seed_mean_interval_averages_runs_within_each_redraw():
    y = np.repeat(["a", "b"], 30)
    p1 = np.repeat([0, 1], 30)
    p2 = p1.copy()
    p2[:6] = 1
    both = bootstrap_clustering(y, [p1, p2], n_boot=200, seed=1)["accuracy"]
    assert both.estimate == pytest.approx((1.0 + 0.9) / 2)
    assert both.lo < both.estimate < both.hi <= 1.0


def test_bad_bootstrap_options_are_one_sentence():
    with pytest.raises(LabError, match="n_boot=0 must be a positive"):
        bootstrap_clustering(np.array(["a", "b"]), np.array([0, 1]), n_boot=0)
    with pytest.raises(LabError, match="level=95 must be in"):
        bootstrap_clustering(np.array(["a", "b"]), np.array([0, 1]), level=95)


def test_bca_interval_agrees_with_scipy_bootstrap():
    # NMI of a noisy 4-genre clustering of 80 songs: scipy.stats.bootstrap(method="BCa") on song
    # indices is the reference; with 3000 redraws each, two scipy seeds differ by ~0.01 at the ends.
    # NMI is biased upwards on redrawn songs (duplicates add mutual information): the plain
    # percentile interval here is [0.42, 0.72] around 0.53, BCa about [0.35, 0.63].
    from scipy.stats import bootstrap

    rng = np.random.default_rng(8)
    y = np.repeat(np.arange(4), 20)
    pred = np.where(rng.random(80) < 0.6, y, rng.integers(0, 4, 80))
    ours = bootstrap_clustering(y, pred, n_boot=3000, seed=9, scores=("nmi",), method="bca")["nmi"]
    nmi = lambda i: contingency_scores(contingency(y[i], pred[i])[2], scores=("nmi",))["nmi"]  # noqa: E731 (== sklearn, tested above)
    ref = bootstrap((np.arange(80),), nmi, vectorized=False, paired=True,
                    n_resamples=3000, method="BCa", confidence_level=0.95, random_state=10).confidence_interval
    assert ours.lo == pytest.approx(ref.low, abs=0.025)
    assert ours.hi == pytest.approx(ref.high, abs=0.025)
    plain = bootstrap_clustering(y, pred, n_boot=3000, seed=9, scores=("nmi",), method="percentile")["nmi"]
    assert plain.lo > ours.lo + 0.04  # the bias correction matters at this size


def test_jackknife_interval_of_a_proportion_is_the_known_closed_form():
    # leave-one-out values of a proportion p = c / n are (c - 1) / (n - 1) or c / (n - 1): the
    # jackknife standard error is exactly sqrt(p (1 - p) / (n - 1)).
    n, c = 90, 63
    y = np.repeat(["a", "b"], n // 2)
    pred = np.array([0] * (n // 2) + [1] * (n // 2))
    pred[np.random.default_rng(11).choice(n, n - c, replace=False)] ^= 1
    ci = bootstrap_clustering(y, pred, n_boot=10, method="jackknife", scores=("accuracy",))["accuracy"]
    p = c / n
    assert (ci.hi - ci.lo) / 2 == pytest.approx(1.959964 * np.sqrt(p * (1 - p) / (n - 1)), rel=1e-6)


def test_auto_uses_the_bootstrap_for_accuracy_and_the_jackknife_for_agreement_indices():
    rng = np.random.default_rng(12)
    y = np.repeat(np.arange(10), 5)  # gtzan_mini's shape: 10 genres x 5 songs
    pred = np.where(rng.random(50) < 0.6, y % 7, rng.integers(0, 7, 50))
    auto = bootstrap_clustering(y, pred, n_boot=300, seed=1)
    jack = bootstrap_clustering(y, pred, n_boot=300, seed=1, method="jackknife")
    bca = bootstrap_clustering(y, pred, n_boot=300, seed=1, method="bca")
    assert auto["accuracy"] == bca["accuracy"]
    for s in ("nmi", "ami", "ari", "v_measure"):
        assert auto[s] == jack[s]
        assert auto[s].lo < auto[s].estimate < auto[s].hi


@pytest.mark.parametrize("override, message", [
    ("experiment.bootstrap.n_boot=-1", "bootstrap n_boot=-1 must be a positive number of resamples"),
    ("experiment.bootstrap.level=95", "bootstrap level=95 must be in (0, 1)"),
    ("experiment.bootstrap.method=fancy", "bootstrap method='fancy' must be one of auto, bca, percentile, jackknife"),
    ("experiment.listen_map=maybe", "experiment.listen_map='maybe' must be true, false or a seed"),
    ("experiment.listen_map=-1", "experiment.listen_map=-1 must be true, false or a seed"),
])
def test_bad_clustering_options_stop_the_job_before_any_run_opens(compose_cfg, override, message):
    from pathlib import Path

    from lab.app.task import run

    cfg = compose_cfg("model.pretrained=false", "dataset.n_per_class=1", "dataset.seconds=2", override)
    with pytest.raises(LabError) as err:
        run(cfg)
    assert str(err.value).startswith(message)
    assert not Path(cfg.paths.mlruns, "mlflow.db").exists()


def test_an_artist_level_bootstrap_widens_the_interval_when_one_artist_is_duplicated():
    # 40 songs by 40 artists, 70 % right, plus one artist with 20 songs, all right (a genre filled
    # by one artist, as blues is in gtzan_mini). Resampling recordings treats those 20 as independent
    # evidence; resampling artists draws them together, so a redraw holds 0, 20 or 40 of them.
    rng = np.random.default_rng(13)
    y = np.repeat(["a", "b"], 30)
    truth = np.repeat([0, 1], 30)
    dup = np.zeros(60, bool)
    dup[30:50] = True  # 20 songs of genre b by one artist
    pred = truth.copy()
    others = np.flatnonzero(~dup)
    pred[rng.choice(others, 12, replace=False)] ^= 1  # 28 of the 40 other songs right
    recordings = np.array([f"r{i}" for i in range(60)])
    artists = np.where(dup, "the-artist", recordings)
    by_rec = bootstrap_clustering(y, pred, groups=recordings, n_boot=3000, seed=14, scores=("accuracy",))["accuracy"]
    by_art = bootstrap_clustering(y, pred, groups=artists, n_boot=3000, seed=14, scores=("accuracy",))["accuracy"]
    assert by_rec.estimate == by_art.estimate == pytest.approx(48 / 60)
    assert (by_art.hi - by_art.lo) > 1.4 * (by_rec.hi - by_rec.lo)
    # the same through bootstrap_mean (the probe's interval): per-song correctness, groups drawn whole
    right = (pred == truth).astype(float)
    m_rec, m_art = bootstrap_mean(right, recordings, n_boot=3000, seed=14), bootstrap_mean(right, artists, n_boot=3000, seed=14)
    assert m_rec.estimate == pytest.approx(0.8) and (m_art.hi - m_art.lo) > 1.4 * (m_rec.hi - m_rec.lo)
    # one clip per group: bootstrap_mean is the binomial interval
    assert (m_rec.hi - m_rec.lo) / 2 == pytest.approx(1.959964 * np.sqrt(0.8 * 0.2 / 60), abs=0.015)
