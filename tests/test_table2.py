"""Table 2 rendering from run records: layout with intervals, the verdict in parts that can fail, the
pool-size test, the PCA-rank table, and the amount figure (zero-shift point, marked clipping, axes, ticks)."""

from __future__ import annotations

import numpy as np
import pytest

from lab.stats import plots
from lab.studies.transforms import maps as T
from lab.studies.transforms import report as table2
from lab.studies.transforms.experiment import statistics

N, D = 30, 40  # fewer songs than dimensions: the unpenalised affine map interpolates its training folds


def _record(name: str, spec: T.MapSpec, kind: str, amount: float, X: np.ndarray, Y: np.ndarray, *, new: bool) -> dict:
    """Real metrics from lab.studies.transforms on synthetic pairs, wrapped as an MLflow-like run record.

    ``new=False`` is a run as the lab logged it before penalties, intervals and PCA ranks (no such tags
    or metrics): the report must still read it as the unpenalised full-space fit it was.
    """
    fit = T.cross_fit(spec, X, Y, k=5, seed=0)
    m = T.scores_of(fit, Y) | T.shift_direction(X, Y, n_perm=99 if new else 1)
    if not new:  # the old logger: one shuffled-pair null, no p-values
        m = {k: v for k, v in m.items() if not k.startswith(("direction_p_", "direction_n_perm", "direction_cos_signflip"))
             and k != "direction_cos_null_q95"}
    else:
        m |= statistics(spec, X, Y, fit, np.arange(N), k=5, seed=0, n_boot=300, level=0.95,
                        pool_sizes=[2, 10, N, 1000], pca_ranks=[2, 8])
    m |= {"n_pairs": float(N), "dim": float(D), "n_params": float(T.n_parameters(name, D)),
          "achieved_tempo_ratio_median": 1.0, "achieved_tempo_ratio_p10": 0.99, "achieved_tempo_ratio_p90": 1.01,
          "achieved_pitch_ratio_median": amount, "achieved_pitch_ratio_p10": amount, "achieved_pitch_ratio_p90": amount}
    tags = {"model": "fcn", "dataset": "synth", "transform": name, "shift_kind": kind, "shift_amount": f"{amount:g}",
            "shift_backend": "rubberband-x", "shift_length": "loop"}
    if new:
        tags |= {"ridge": spec.label, "shrink_to": spec.shrink_to if spec.penalised else "none", "pca_rank": "full"}
    return {"status": "FINISHED", "metrics": m, "tags": tags}


def _pairs(amount: float, rng) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(N, D))
    Y = X * amount + 0.5 + 0.4 * rng.normal(size=X.shape)
    if amount < 1:
        Y = 3 * Y - 6  # far from the originals: the do-nothing map's R^2 falls below -1
    return X, Y


def _runs(*, new: bool, amounts=(1.5,), transforms=tuple(T.FITTERS)) -> list[dict]:
    rng = np.random.default_rng(0)
    runs = []
    for kind in ("pitch", "tempo"):
        for amount in amounts:
            X, Y = _pairs(amount, rng)
            for name in transforms:
                ridges = ("cv", 0.0) if new and name in T.PENALISED else (0.0,)
                runs += [_record(name, T.MapSpec(name, ridge=r), kind, amount, X, Y, new=new) for r in ridges]
    runs.append({"status": "FAILED", "metrics": {}, "tags": {"transform": "affine"}})
    return runs


def test_old_runs_still_render_and_the_verdict_no_longer_counts_a_theorem(tmp_path):
    df = table2.runs_frame(_runs(new=False))
    assert len(df) == 2 * 6 and set(df.ridge) == {"0", "none"} and set(df.pca_rank) == {"full"}  # failed run left out
    t = table2.table2(df)
    assert len(t) == 2 * 6 and list(t.Transform[:2]) == ["Identity", "Translation"]
    assert t.Transform.iloc[5] == "Affine (no ridge)"
    vs, sentence = table2.versus_study(df)
    assert vs.loc[vs.Transform == "Affine (no ridge)", "MSE (study)"].iloc[0] == "8.7669"
    # The in-sample half is stated as a theorem checked as an invariant, not counted as evidence.
    assert "theorem" in sentence and "fails in 0 of 2" in sentence
    paths = table2.write(df, tmp_path)
    assert {"table2.md", "table2.csv", "table2.tex", "table2_vs_study.md", "shift_direction.md", "shift_check.md"} <= set(paths)
    assert "one shuffle" in (tmp_path / "shift_direction.md").read_text()  # old runs: no p-value to show


@pytest.fixture(scope="module")
def new_df():
    return table2.runs_frame(_runs(new=True, amounts=(0.75, 1.5, 2.0), transforms=("identity", "translation", "affine")))


def test_every_cell_has_an_interval_and_the_verdict_can_fail_both_ways(new_df, tmp_path):
    t = table2.table2(new_df)
    assert list(t.Transform[t.Shift == "pitch x1.5"]) == ["Identity", "Translation", "Affine (ridge: nested CV)", "Affine (no ridge)"]
    for col in ("MSE held out", "R² held out", "NN acc held out", "MSE in sample", "R² in sample", "NN acc in sample"):
        assert all("[" in v for v in t[col])  # estimate [lo, hi]: every cell
    numbers = table2.table2_numbers(new_df)
    assert (numbers["cv.r2_lo"] <= numbers["cv.r2"] + 1e-9).all() and (numbers["cv.r2"] <= numbers["cv.r2_hi"] + 1e-9).all()
    _, sentence = table2.versus_study(new_df)
    # p > n: unpenalised affine over-fits and loses to translation; the ridge chosen by nested CV does not.
    assert "the unpenalised affine map (the study's fit) minus translation in MSE (95 % interval, redrawing recording groups, paired): 2 worse" in sentence
    assert "Affine (ridge: nested CV) against no ridge, held-out R²: higher in 2" in sentence
    tests = table2.tests_table(new_df)
    row = tests[(tests.Shift == "pitch") & (tests.Transform == "Affine (no ridge)")].iloc[0]
    assert row["held out vs translation"] == "lower"
    pool, text = table2.pool_table(new_df)
    assert "NN at pool 1000 (model)" in pool and f"NN at pool {N}" in pool and "pool 1000" in text
    rank = table2.rank_table(new_df)
    assert {"k=2", "k=8", "full"} <= set(rank.columns) and "Identity" not in set(rank.Transform)
    paths = table2.write(new_df, tmp_path)
    assert {"table2_tests.md", "nn_pool.md", "pca_rank.md", "transform_vs_rank_fcn.png", "transform_vs_amount_fcn.png"} <= set(paths)
    direction = (tmp_path / "shift_direction.md").read_text()
    assert "p (sign flip)" in direction and "0.010" in direction  # 99 permutations: the smallest p is 1/100


def test_amount_figure_has_the_zero_point_marked_clipping_bounded_axes_and_sampled_ticks(new_df):
    curves, zero = table2.amount_curves(new_df, "fcn")
    assert set(zero["pitch"]) == set(curves["pitch"]) and zero["pitch"]["Identity"] == (1.0, 1.0)  # Y = X: identity is exact
    identity_r2 = curves["pitch"]["Identity"][1]
    assert identity_r2.min() < -1  # the 0.75 shift: so the figure must clip and say so
    fig = plots.transform_vs_amount(curves, zero=zero, chance=1 / N, title="t")
    r2_pitch, r2_tempo, nn_pitch, _ = fig.axes
    assert r2_pitch.get_ylim()[1] <= 1.0 and nn_pitch.get_ylim() == (0.0, 1.0)
    assert r2_pitch.get_ylim()[0] >= -1.2
    # pitch in semitones with the zero-shift point; tempo ticks at the sampled ratios, not powers of ten
    assert sorted(np.round(r2_pitch.get_xticks(), 2)) == sorted(np.round(12 * np.log2([0.75, 1.0, 1.5, 2.0]), 2))
    assert [t.get_text() for t in r2_tempo.get_xticklabels()] == ["0.75", "1", "1.5", "2"]
    xs = {round(float(x), 6) for line in r2_pitch.get_lines() for x in np.atleast_1d(line.get_xdata())}
    assert 0.0 in xs
    clipped = [line for line in r2_pitch.get_lines() if line.get_marker() == "v"]
    assert clipped and all(np.allclose(line.get_ydata(), -1.0) for line in clipped)
    labels = [t.get_text() for t in r2_pitch.texts]
    assert f"{identity_r2.min():.1f}" in labels  # the true value is printed beside the clipped point
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert "no shift (Y = X)" in legend and any("drawn at -1" in s for s in legend)
    plots.figure_bytes(fig, dpi=60)
