"""The study's Table 2 from a sweep of ``experiment=transforms`` runs, beside the published values.

    python -m lab.report --experiment transforms [--sweep-id ID]

Writes ``table2.{md,csv,tex}`` (rows: shift, model, transform; MSE, R^2 and NN accuracy held out
and in sample), ``table2_vs_study.md`` (the nominal-amount rows beside the study's numbers, with
the sentence on affine vs translation MSE), ``shift_check.md`` (achieved vs nominal ratios),
``shift_direction.md`` (the Word2Vec question) and, when the sweep covers several amounts,
``transform_vs_amount_<model>.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lab.core.errors import LabError
from lab.stats.tables import MODEL_NAMES, StudyReport, Table, model_name, write_report

# The study's Table 2 (Harmonic CNN, full GTZAN; the text does not say which shift the table is for):
# transform -> (MSE, NN accuracy). Identity is not in the study.
STUDY_TABLE2 = {"translation": (6.9039, 0.048), "uniform_scaling": (5.1168, 0.022), "nonuniform_scaling": (5.0356, 0.028),
                "scaled_orthogonal": (6.3111, 0.048), "affine": (8.7669, 0.022)}
TRANSFORMS = {"identity": ("Identity", "A = I, b = 0"), "translation": ("Translation", "A = I"),
              "uniform_scaling": ("Uniform scaling", "A = rI"), "nonuniform_scaling": ("Non-uniform scaling", "A = diag(r)"),
              "scaled_orthogonal": ("Scaled orthogonal", "A = sQ, b = 0"), "affine": ("Affine", "none")}
NOMINAL = 1.5


def runs_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per FINISHED transforms run: model, shift kind / amount / backend, transform, metrics."""
    rows = []
    for r in runs:
        t = r["tags"]
        if r["status"] != "FINISHED" or "transform" not in t:
            continue
        rows.append({"model": t.get("model"), "dataset": t.get("dataset"), "shift": t.get("shift_kind"),
                     "amount": float(t.get("shift_amount", "nan")), "backend": t.get("shift_backend"),
                     "length": t.get("shift_length"), "transform": t["transform"], **r["metrics"]})
    return pd.DataFrame(rows)


def _order(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(_m=df.model.map({m: i for i, m in enumerate(MODEL_NAMES)}).fillna(99),
                   _t=df["transform"].map({t: i for i, t in enumerate(TRANSFORMS)}).fillna(99))
    return df.sort_values(["shift", "_m", "model", "_t"]).drop(columns=["_m", "_t"])


def nominal(df: pd.DataFrame) -> pd.DataFrame:
    """Runs at the study's amount (1.5), one row per (shift, model, transform): the mean of repeats."""
    sel = df[np.isclose(df.amount, NOMINAL)]
    num = sel.select_dtypes("number").columns
    return _order(sel.groupby(["shift", "model", "transform"], as_index=False)[list(num)].mean())


def table2(df: pd.DataFrame) -> pd.DataFrame:
    """The study's layout: per shift and model, rows = transforms; held out (k-fold) and in sample."""
    n = nominal(df)
    f = lambda v, d=3: "–" if pd.isna(v) else f"{v:.{d}f}"  # noqa: E731
    rows = []
    for _, r in n.iterrows():
        name, constraint = TRANSFORMS.get(r["transform"], (r["transform"], ""))
        rows.append({"Shift": f"{r['shift']} x1.5", "Model": model_name(r["model"]), "Transform": name,
                     "Constraint": constraint, "Params": int(r.get("n_params", 0)),
                     "MSE held out": f(r.get("cv.mse")), "MSE in sample": f(r.get("in_sample.mse")),
                     "MSE/elem held out": f(r.get("cv.mse_element"), 4),
                     "R² held out": f(r.get("cv.r2")), "R² in sample": f(r.get("in_sample.r2")),
                     "NN acc held out": f(r.get("cv.nn_accuracy")), "NN acc in sample": f(r.get("in_sample.nn_accuracy")),
                     "chance": f(r.get("chance_nn_accuracy")), "songs": int(r.get("n_pairs", 0)),
                     "padded": int(r.get("shifted.n_padded", 0))})
    return pd.DataFrame(rows)


def versus_study(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Our held-out and in-sample MSE / NN accuracy beside the study's, and the verdict sentence."""
    n = nominal(df)
    rows = []
    for _, r in n.iterrows():
        s = STUDY_TABLE2.get(r["transform"])
        rows.append({"Shift": r["shift"], "Model": model_name(r["model"]),
                     "Transform": TRANSFORMS.get(r["transform"], (r["transform"],))[0],
                     "MSE held out": f"{r['cv.mse']:.3f}", "MSE in sample": f"{r['in_sample.mse']:.3f}",
                     "MSE (study)": f"{s[0]:.4f}" if s else "–",
                     "R² held out": f"{r['cv.r2']:.3f}", "R² in sample": f"{r['in_sample.r2']:.3f}",
                     "NN held out": f"{r['cv.nn_accuracy']:.1%}", "NN in sample": f"{r['in_sample.nn_accuracy']:.1%}",
                     "NN (study)": f"{s[1]:.1%}" if s else "–"})
    return pd.DataFrame(rows), verdict(n)


def verdict(n: pd.DataFrame) -> str:
    """Which reading of the study's affine MSE (8.77) > translation MSE (6.90) our numbers support."""
    cells = []
    for (shift, model), g in n.groupby(["shift", "model"]):
        g = g.set_index("transform")
        if {"affine", "translation"} <= set(g.index):
            cells.append((shift, model, g.loc["affine"], g.loc["translation"]))
    if not cells:
        return "The sweep has no affine and translation runs at amount 1.5 to compare."
    held = sum(a["cv.mse"] > t["cv.mse"] for _, _, a, t in cells)
    ins = sum(a["in_sample.mse"] > t["in_sample.mse"] + 1e-9 for _, _, a, t in cells)
    return (f"The study lists the affine map with a larger MSE (8.77) than translation (6.90). In sample that is "
            f"impossible, since least squares over all (A, b) includes A = I: here affine's in-sample MSE exceeds "
            f"translation's in {ins} of {len(cells)} (shift, model) cells. Held out (k-fold over songs) affine is worse "
            f"than translation in {held} of {len(cells)} cells. "
            + ("So the study's numbers are consistent only with held-out evaluation (or are wrong), "
               "and held out the extra freedom of the affine map over-fits." if held and not ins else
               "Our numbers do not reproduce the ordering, so the study's row cannot be matched by either reading here."
               if not held else ""))


def direction_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per shift and model: leave-one-out cosine of shift vectors to the mean one, and the shuffled-pair null."""
    n = nominal(df)
    g = n.groupby(["shift", "model"], as_index=False)[["direction_cos_mean", "direction_cos_std", "direction_cos_null",
                                                        "shift_norm_mean", "mean_shift_norm", "n_pairs"]].first()
    return pd.DataFrame({"Shift": g["shift"], "Model": g["model"].map(model_name),
                         "cos to mean shift (LOO), mean ± std": [f"{a:.3f} ± {b:.3f}" for a, b in zip(g.direction_cos_mean, g.direction_cos_std)],
                         "shuffled pairs": g.direction_cos_null.map(lambda v: f"{v:.3f}"),
                         "‖mean shift‖ / mean ‖shift‖": (g.mean_shift_norm / g.shift_norm_mean).map(lambda v: f"{v:.2f}"),
                         "songs": g.n_pairs.astype(int)})


def achieved_table(df: pd.DataFrame) -> pd.DataFrame:
    """Achieved ratios per shift, amount and backend (from the runs' medians and 10th-90th percentiles)."""
    cols = [c for c in ("achieved_tempo_ratio_median", "achieved_tempo_ratio_p10", "achieved_tempo_ratio_p90",
                        "achieved_pitch_ratio_median", "achieved_pitch_ratio_p10", "achieved_pitch_ratio_p90") if c in df]
    if not cols:
        return pd.DataFrame()
    g = df.groupby(["shift", "amount", "backend"], as_index=False)[cols].first()
    return pd.DataFrame({"shift": g["shift"], "nominal": g.amount.map(lambda v: f"{v:g}"), "backend": g.backend,
                         "tempo ratio median [p10, p90]": [f"{a:.3f} [{b:.3f}, {c:.3f}]" for a, b, c in
                                                           zip(g.achieved_tempo_ratio_median, g.achieved_tempo_ratio_p10, g.achieved_tempo_ratio_p90)],
                         "pitch ratio median [p10, p90]": [f"{a:.3f} [{b:.3f}, {c:.3f}]" for a, b, c in
                                                           zip(g.achieved_pitch_ratio_median, g.achieved_pitch_ratio_p10, g.achieved_pitch_ratio_p90)]})


def amount_curves(df: pd.DataFrame, model: str) -> dict:
    """``{kind: {transform: (amounts, cv.r2, cv.nn_accuracy)}}`` for one model (means over repeats)."""
    out: dict = {}
    sel = df[df["model"] == model]
    for (kind, t), g in sel.groupby(["shift", "transform"]):
        g = g.groupby("amount", as_index=False)[["cv.r2", "cv.nn_accuracy"]].mean()
        out.setdefault(kind, {})[TRANSFORMS.get(t, (t,))[0]] = (g.amount.to_numpy(), g["cv.r2"].to_numpy(), g["cv.nn_accuracy"].to_numpy())
    return out


def build(df: pd.DataFrame) -> StudyReport:
    """All Table 2 tables (and, for a sweep over amounts, one figure per model) of the runs in ``df``."""
    rep = StudyReport(key="table2", summary="", source_experiment="transforms",
                      shown=["table2_vs_study", "shift_direction", "shift_check"])
    if not nominal(df).empty:
        t2 = table2(df)
        vs, sentence = versus_study(df)
        rep.tables |= {"table2": Table(t2, latex=True), "table2_vs_study": Table(vs, footer=sentence, csv=False),
                       "shift_direction": Table(direction_table(df), csv=False)}
    ach = achieved_table(df)
    if not ach.empty:
        rep.tables["shift_check"] = Table(ach, csv=False)
    from lab.stats import plots

    for model, g in df.groupby("model"):
        if g.groupby("shift").amount.nunique().max() < 3:
            continue  # a curve needs a sweep over shift.amount
        chance = float(g.chance_nn_accuracy.mean()) if "chance_nn_accuracy" in g else None
        fig = plots.transform_vs_amount(amount_curves(df, model), chance=chance,
                                        title=f"{model_name(model)}: where does a simple map stop holding? (held out)")
        rep.files[f"transform_vs_amount_{model}.png"] = plots.figure_bytes(fig, dpi=120, tight=False)
    return rep


def write(df: pd.DataFrame, out: Path) -> dict[str, Path]:
    """All Table 2 files under ``out``; returns name -> path."""
    return write_report(build(df), out)


def report(runs: list[dict], *, cfg, uri: str, sweep: str) -> StudyReport:
    """``python -m lab.report --experiment transforms``: Table 2 and its companions from the sweep's runs."""
    df = runs_frame(runs)
    if df.empty:
        raise LabError(f"sweep {sweep!r} has no finished transforms runs")
    rep = build(df)
    rep.n_runs = len(df)
    rep.summary = (f"sweep {sweep}: {len(df)} finished transforms runs ({len(runs) - len(df)} not finished), "
                   f"dataset(s) {', '.join(sorted(df.dataset.dropna().unique()))}")
    return rep
