"""Tables from a sweep's MLflow runs: the study's Table 1 with seed spread *and* song-sampling intervals.

    python -m lab.report                       # latest sweep in the default store
    python -m lab.report --sweep-id ID --tracking-uri http://127.0.0.1:5000
    python -m lab.report --sweep-id ID --n-boot 2000 paths.mlruns=/elsewhere

Reads the FINISHED ``clustering`` runs tagged with the sweep id (and each run's
``assignments.csv``) and writes, to ``--out``:

* ``table1.{md,tex}`` — rows (k, model), per clusterer ``mean (std)`` of the Hungarian accuracy
  over seeds (sample std, ddof=1; written ``n=1`` where one seed leaves it undefined) and its
  95 % song-bootstrap interval, and the number of seeds; ``table1.csv`` holds the same as numbers
  (k, model, clusterer, mean, std, n, ci_lo, ci_hi, ci_level, n_boot), one row per cell;
* ``scores.{md,csv}`` — accuracy, NMI, AMI, ARI and V-measure, each ``mean (std) [lo, hi]``;
* ``table1_vs_study.md`` — beside the study's published numbers, and whether the study's mean
  lies inside this sweep's interval;
* ``comparisons.{md,csv}`` — every pair of models at each (k, clusterer): paired bootstrap of the
  accuracy difference on the same songs, the share of resamples in which the first model wins,
  and whether the study's ordering of the two is supported by these songs;
* ``per_genre.{md,csv}`` — mean per-genre accuracy over seeds (with the seed count).

Intervals come from resampling groups (``experiment.group``: artists where known, else recordings;
``recording`` for the earlier protocol) with the assignments held fixed (:mod:`lab.stats.uncertainty`:
BCa bootstrap for accuracy and the paired differences, leave-one-group-out jackknife for the
agreement indices by default): they say how much the numbers would move with another draw of
artists, which the seed std does not, and they are conditional on the fitted clustering and
matching. Table 1 also shows the cross-fitted *held-out* accuracy (:mod:`lab.stats.heldout`: clusters
and matching fitted on one half of the groups, scored on the other), with its interval over the
same groups, and notes what k caps accuracy at and what the halves let any clustering reach. All tables are printed and logged as artifacts of one summary run
per sweep in the MLflow experiment ``report`` — re-printing updates that run, or leaves it alone
when nothing changed, instead of adding another.

To add a table: write ``def my_table(ctx: ReportContext) -> pd.DataFrame`` and list it in
:data:`TABLES` with its heading in :data:`HEADINGS`; :func:`report` hands it to ``python -m lab.report``,
which writes it as ``.md`` and ``.csv``.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from lab.core.errors import LabError
from lab.stats.genres import GTZAN_ORDER
from lab.stats.metrics import SCORES, contingency, contingency_scores
from lab.stats.tables import StudyReport, Table, model_name, model_order, row_key, write_report
from lab.stats.uncertainty import (
    compare,
    interval,
    jackknife_weights,
    resample_weights,
    resampled_scores,
    resolve_method,
    validate,
)

CLUSTERER_NAMES = {"kmeans": "K-Means", "gmm": "GMM"}
SCORE_NAMES = {"accuracy": "Accuracy", "nmi": "NMI", "ami": "AMI", "ari": "ARI", "v_measure": "V-measure"}

# The study's Table 1 (mean (std) over seeds, full GTZAN): {(k, model): (kmeans, gmm)}.
STUDY_TABLE1 = {
    (7, "fcn"): ("0.611 (0.0003)", "0.593 (0.0293)"), (7, "musicnn"): ("0.547 (0.0054)", "0.535 (0.0132)"),
    (7, "crnn"): ("0.500 (0.0029)", "0.505 (0.0163)"), (7, "attention"): ("0.612 (0.0008)", "0.601 (0.0199)"),
    (7, "hcnn"): ("0.598 (0.0022)", "0.596 (0.0182)"), (7, "sample"): ("0.587 (0.0021)", "0.588 (0.0020)"),
    (7, "se"): ("0.586 (0.0010)", "0.560 (0.0285)"),
    (10, "fcn"): ("0.624 (0.0137)", "0.612 (0.0242)"), (10, "musicnn"): ("0.589 (0.0034)", "0.570 (0.0216)"),
    (10, "crnn"): ("0.529 (0.0037)", "0.539 (0.0160)"), (10, "attention"): ("0.652 (0.0035)", "0.623 (0.0221)"),
    (10, "hcnn"): ("0.600 (0.0152)", "0.616 (0.0295)"), (10, "sample"): ("0.587 (0.0112)", "0.585 (0.0213)"),
    (10, "se"): ("0.620 (0.0064)", "0.594 (0.0344)"),
}


def study_mean(k: int, model: str, clusterer: str) -> float | None:
    """The study's mean accuracy for (k, model, clusterer), or None when it has no such cell."""
    cell = STUDY_TABLE1.get((int(k), model))
    if cell is None or clusterer not in CLUSTERER_NAMES:
        return None
    return float(cell[list(CLUSTERER_NAMES).index(clusterer)].split()[0])


# ---------------------------------------------------------------------------------------------
# Inputs: runs, assignments, bootstrap redraws


def runs_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per run (dicts from :func:`lab.tracking.sweep_runs`): model, clusterer, k, seed, status, metrics.

    ``model`` is the table row the run belongs to (:func:`lab.stats.tables.row_key`): the model tag,
    with the training corpus when it is not the default and ``random`` for random weights, so a
    random-weights FCN or an MTAT-trained FCN is a row of its own, never averaged with the trained one.
    """
    rows = []
    for r in runs:
        t = r["tags"]
        model = row_key(t.get("model"), corpus=t.get("corpus"), pretrained=t.get("pretrained"))
        rows.append({"run_id": r["run_id"], "status": r["status"], "model": model, "clusterer": t.get("clusterer"),
                     "k": int(t["k"]) if "k" in t else None, "seed": int(t.get("seed", 0)), "dataset": t.get("dataset"),
                     "pretrained": t.get("pretrained"), **r["metrics"]})
    return pd.DataFrame(rows)


@dataclass
class ReportContext:
    """Everything a table needs: the finished runs and, per run, its bootstrap redraws."""

    df: pd.DataFrame
    n_boot: int = 1000
    level: float = 0.95
    seed: int = 0
    method: str = "auto"
    group: str = "artist"  # the resampling unit: artist (assignments.csv "group") | recording ("source")
    redraws: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # run id -> score -> (n_boot,)
    jack: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # run id -> score -> (n_songs,) leave-one-song-out
    full: dict[str, dict[str, float]] = field(default_factory=dict)  # run id -> scores recomputed on all songs
    notes: list[str] = field(default_factory=list)
    caps: dict[int, float] = field(default_factory=dict)  # k -> accuracy cap from the genre sizes (accuracy_cap)
    covariance: str = ""  # the GMM runs' covariance_type(s), for the heading

    def runs(self, k: int, model: str, clusterer: str) -> pd.DataFrame:
        d = self.df
        return d[(d.k == k) & (d.model == model) & (d.clusterer == clusterer)]


def _read_assignments(text: str) -> pd.DataFrame | None:
    a = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    if not {"id", "genre", "cluster"} <= set(a.columns):
        return None
    a["source"] = a["source"].where(a["source"] != "", a["id"]) if "source" in a else a["id"]
    if "group" in a:  # runs before artists were known have no group column: they resample recordings
        a["group"] = a["group"].where(a["group"] != "", a["source"])
    return a.set_index("id")


def _units(ctx: ReportContext, a: pd.DataFrame) -> np.ndarray:
    """The resampling unit of each song: its artist group (``group=artist``) or its recording."""
    return (a["group"] if ctx.group == "artist" and "group" in a else a["source"]).to_numpy()


def add_redraws(ctx: ReportContext, assignments: dict[str, pd.DataFrame]) -> None:
    """Fill ``ctx.redraws``/``ctx.full`` from each run's per-song assignments.

    All runs of one dataset are aligned on the songs they share and redrawn with the *same*
    weights, which is what makes the seed mean and the paired comparisons consistent.
    """
    for dataset, runs in ctx.df.groupby("dataset", dropna=False):
        have = [r for r in runs.run_id if r in assignments]
        if len(have) < len(runs):
            ctx.notes.append(f"{len(runs) - len(have)} of {len(runs)} runs on {dataset} have no assignments.csv; "
                             f"their cells use the run's own logged interval (one seed) or none")
        if not have:
            continue
        common = sorted(set.intersection(*(set(assignments[r].index) for r in have)))
        if any(len(assignments[r]) != len(common) for r in have):
            ctx.notes.append(f"runs on {dataset} did not score the same songs; intervals and comparisons use the "
                             f"{len(common)} songs all of them scored")
        first = assignments[have[0]].loc[common]
        if ctx.group == "artist" and "group" not in first:
            ctx.notes.append(f"runs on {dataset} have no artist groups in assignments.csv (made before artists were known); "
                             f"their intervals resample recordings")
        W = resample_weights(_units(ctx, first), n_boot=ctx.n_boot, seed=ctx.seed)
        J = jackknife_weights(_units(ctx, first))
        drawn = tuple(s for s in SCORES if s == "accuracy" or resolve_method(ctx.method, s) != "jackknife")
        for r in have:
            a = assignments[r].loc[common]
            y, pred = a["genre"].to_numpy(), a["cluster"].astype(int).to_numpy()
            ctx.redraws[r] = resampled_scores(y, pred, W, scores=drawn)
            ctx.jack[r] = resampled_scores(y, pred, J)
            if "heldout" in a and (a["heldout"] != "").all():  # share of splits in which the song was right when held out
                c = a["heldout"].astype(float).to_numpy()
                ctx.redraws[r][HELDOUT] = (W @ c) / np.maximum(W.sum(1), 1)
                ctx.jack[r][HELDOUT] = (J @ c) / np.maximum(J.sum(1), 1)
                ctx.full.setdefault(r, {})[HELDOUT] = float(c.mean())
            ctx.full[r] = contingency_scores(contingency(y, pred)[2]) | ctx.full.get(r, {})


HELDOUT = "accuracy_heldout"  # cross-fitted accuracy (lab.stats.heldout), logged by experiment=clustering


def _cell_stats(ctx: ReportContext, sel: pd.DataFrame, score: str) -> dict[str, float]:
    """mean, std (NaN for one seed), n, and the interval of the seed mean for one table cell."""
    logged = sel[score] if score in sel else pd.Series(np.nan, index=sel.index)
    # older runs may lack a score (e.g. AMI): recompute it from their assignments when we have them
    vals = [float(x) if pd.notna(x) else ctx.full.get(r, {}).get(score, np.nan) for r, x in zip(sel.run_id, logged)]
    v = np.array([x for x in vals if np.isfinite(x)], dtype=float)
    out = {"mean": float(v.mean()) if v.size else np.nan, "std": float(np.std(v, ddof=1)) if v.size > 1 else np.nan,
           "n": int(v.size), "ci_lo": np.nan, "ci_hi": np.nan}
    if v.size and all(r in ctx.redraws and score in ctx.jack[r] for r in sel.run_id):
        boot = np.mean([ctx.redraws[r][score] for r in sel.run_id], axis=0) if score in ctx.redraws[sel.run_id.iloc[0]] else np.empty(0)
        jack = np.mean([ctx.jack[r][score] for r in sel.run_id], axis=0)
        iv = interval(out["mean"], boot, jack, level=ctx.level, method=ctx.method, score="accuracy" if score == HELDOUT else score)
        out["ci_lo"], out["ci_hi"] = iv.lo, iv.hi
    elif v.size == 1 and f"{score}_ci_lo" in sel and pd.notna(sel[f"{score}_ci_lo"].iloc[0]):  # the run's own interval
        out["ci_lo"], out["ci_hi"] = float(sel[f"{score}_ci_lo"].iloc[0]), float(sel[f"{score}_ci_hi"].iloc[0])
    return out


# ---------------------------------------------------------------------------------------------
# Formatting


def fmt_mean_std(mean: float, std: float, n: int) -> str:
    """``0.611 (0.0003)``; ``0.680 (n=1)`` when one seed leaves the std undefined; ``–`` when empty."""
    if n == 0 or not np.isfinite(mean):
        return "–"
    return f"{mean:.3f} (n=1)" if n == 1 or not np.isfinite(std) else f"{mean:.3f} ({std:.4f})"


def fmt_ci(lo: float, hi: float) -> str:
    return f"[{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) and np.isfinite(hi) else "–"


def _ci_label(level: float) -> str:
    return f"{level * 100:g} % CI"


# ---------------------------------------------------------------------------------------------
# Tables


TABLE1_COLUMNS = ["k", "model", "clusterer", "mean", "std", "n", "ci_lo", "ci_hi", "ci_level", "n_boot",
                  "heldout_mean", "heldout_std", "heldout_n", "heldout_ci_lo", "heldout_ci_hi", "heldout_ceiling", "cap"]


def accuracy_cap(genre_counts: np.ndarray, k: int) -> float:
    """Most any k-cluster one-to-one matching can get right: the share of songs in the k largest genres.

    With 10 balanced genres and k = 7: 0.70.
    """
    c = np.sort(np.asarray(genre_counts, dtype=float))[::-1]
    return float(c[: int(k)].sum() / c.sum()) if c.sum() else float("nan")


def table1_numbers(ctx: ReportContext) -> pd.DataFrame:
    """Long numeric Table 1: one row per (k, model, clusterer): in-sample accuracy (mean, std, n, ci) and
    held-out accuracy (``heldout_*``, with the mean ceiling the halves allow), and the cap k sets."""
    rows = []
    df = ctx.df
    for k in sorted(df["k"].dropna().unique()):
        for m in model_order(df.loc[df.k == k, "model"]):
            for c in CLUSTERER_NAMES:
                sel = ctx.runs(k, m, c)
                if sel.empty:
                    continue
                held = {f"heldout_{key}": v for key, v in _cell_stats(ctx, sel, HELDOUT).items()}
                ceiling = sel["accuracy_heldout_ceiling"].mean() if "accuracy_heldout_ceiling" in sel else np.nan
                rows.append({"k": int(k), "model": m, "clusterer": c, **_cell_stats(ctx, sel, "accuracy"),
                             "ci_level": ctx.level, "n_boot": ctx.n_boot, **held, "heldout_ceiling": ceiling,
                             "cap": ctx.caps.get(int(k), np.nan)})
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def table1(ctx: ReportContext) -> pd.DataFrame:
    """Rows (k, model) x per clusterer 'mean (std)' and its interval, plus the seed count (the study's layout)."""
    nums = table1_numbers(ctx)
    has_heldout = bool((nums["heldout_n"] > 0).any()) if not nums.empty else False
    rows = []
    for (k, m), g in nums.groupby(["k", "model"], sort=False):
        row = {"# Clusters": int(k), "Model": model_name(m)}
        seeds = []
        for c, name in CLUSTERER_NAMES.items():
            r = g[g.clusterer == c]
            if r.empty:
                row[name], row[f"{name} {_ci_label(ctx.level)}"] = "–", "–"
                if has_heldout:
                    row[f"{name} held-out"], row[f"{name} held-out {_ci_label(ctx.level)}"] = "–", "–"
                continue
            r = r.iloc[0]
            row[name] = fmt_mean_std(r["mean"], r["std"], int(r["n"]))
            row[f"{name} {_ci_label(ctx.level)}"] = fmt_ci(r["ci_lo"], r["ci_hi"])
            if has_heldout:
                row[f"{name} held-out"] = fmt_mean_std(r["heldout_mean"], r["heldout_std"], int(r["heldout_n"]))
                row[f"{name} held-out {_ci_label(ctx.level)}"] = fmt_ci(r["heldout_ci_lo"], r["heldout_ci_hi"])
            seeds.append(int(r["n"]))
        row["seeds"] = "/".join(str(s) for s in seeds) if len(set(seeds)) > 1 else str(seeds[0] if seeds else 0)
        rows.append(row)
    return pd.DataFrame(rows)


def scores_numbers(ctx: ReportContext) -> pd.DataFrame:
    """Long numeric table of every headline score: (k, model, clusterer, score) -> mean, std, n, ci."""
    rows = []
    for r in table1_numbers(ctx).itertuples(index=False):
        sel = ctx.runs(r.k, r.model, r.clusterer)
        for s in SCORES:
            rows.append({"k": r.k, "model": r.model, "clusterer": r.clusterer, "score": s, **_cell_stats(ctx, sel, s),
                         "ci_level": ctx.level, "n_boot": ctx.n_boot})
    return pd.DataFrame(rows)


def scores(ctx: ReportContext) -> pd.DataFrame:
    """Rows (k, model, clusterer), one column per score: 'mean (std) [lo, hi]', plus the seed count."""
    nums = scores_numbers(ctx)
    rows = []
    for (k, m, c), g in nums.groupby(["k", "model", "clusterer"], sort=False):
        row = {"# Clusters": int(k), "Model": model_name(m), "Clusterer": CLUSTERER_NAMES.get(c, c)}
        for r in g.itertuples(index=False):
            row[SCORE_NAMES[r.score]] = f"{fmt_mean_std(r.mean, r.std, r.n)} {fmt_ci(r.ci_lo, r.ci_hi)}".replace(" –", "")
        row["seeds"] = int(g.n.max())
        rows.append(row)
    return pd.DataFrame(rows)


def versus_study(ctx: ReportContext) -> pd.DataFrame:
    """This sweep's accuracy (with interval) beside the study's, and whether the study's mean is inside the interval."""
    rows = []
    nums = table1_numbers(ctx)
    for (k, m), g in nums.groupby(["k", "model"], sort=False):
        row = {"# Clusters": int(k), "Model": model_name(m)}
        for c, name in CLUSTERER_NAMES.items():
            r = g[g.clusterer == c]
            study = STUDY_TABLE1.get((int(k), m), ("–", "–"))[list(CLUSTERER_NAMES).index(c)]
            here = "–" if r.empty else f"{fmt_mean_std(r.iloc[0]['mean'], r.iloc[0]['std'], int(r.iloc[0]['n']))} {fmt_ci(r.iloc[0]['ci_lo'], r.iloc[0]['ci_hi'])}"
            sm = study_mean(k, m, c)
            inside = "–"
            if sm is not None and not r.empty and np.isfinite(r.iloc[0]["ci_lo"]):
                inside = "yes" if r.iloc[0]["ci_lo"] <= sm <= r.iloc[0]["ci_hi"] else "no"
            row |= {f"{name} (here)": here, f"{name} (study)": study, f"{name}: study in CI": inside}
        row["seeds"] = int(g.n.max())
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons(ctx: ReportContext) -> pd.DataFrame:
    """Paired bootstrap of the accuracy difference for every pair of models at each (k, clusterer).

    The first model of a pair is the one the study ranks higher (or, without study numbers, the
    one that scores higher here). ``verdict``: *supported* when the interval of the difference
    lies above 0, *reversed* when below 0, *not resolved* when it contains 0 (these songs cannot
    tell the two apart), *–* when the study has no numbers for the pair.
    """
    rows = []
    df = ctx.df
    for k in sorted(df["k"].dropna().unique()):
        for c in CLUSTERER_NAMES:
            models = model_order(df.loc[(df.k == k) & (df.clusterer == c), "model"])
            for a, b in itertools.combinations(models, 2):
                ra, rb = ctx.runs(k, a, c), ctx.runs(k, b, c)
                if not all(r in ctx.redraws for r in [*ra.run_id, *rb.run_id]):
                    continue
                da = np.mean([ctx.redraws[r]["accuracy"] for r in ra.run_id], axis=0)
                db = np.mean([ctx.redraws[r]["accuracy"] for r in rb.run_id], axis=0)
                ja = np.mean([ctx.jack[r]["accuracy"] for r in ra.run_id], axis=0)
                jb = np.mean([ctx.jack[r]["accuracy"] for r in rb.run_id], axis=0)
                ea, eb = float(ra["accuracy"].mean()), float(rb["accuracy"].mean())
                sa, sb = study_mean(k, a, c), study_mean(k, b, c)
                flip = (sb > sa) if sa is not None and sb is not None else (eb > ea)
                if flip:
                    a, b, da, db, ja, jb, ea, eb, sa, sb = b, a, db, da, jb, ja, eb, ea, sb, sa
                cmp = compare(ea - eb, da - db, ja - jb, level=ctx.level, method=resolve_method(ctx.method, "accuracy"))
                iv = cmp.diff
                if sa is None or sb is None:
                    verdict, study = "–", "–"
                else:
                    study = f"{sa:.3f} vs {sb:.3f}"
                    verdict = "supported" if iv.lo > 0 else "reversed" if iv.hi < 0 else "not resolved"
                rows.append({"# Clusters": int(k), "Clusterer": CLUSTERER_NAMES[c], "A": model_name(a),
                             "B": model_name(b), "study A vs B": study, "here A": round(ea, 3), "here B": round(eb, 3),
                             "A - B": round(iv.estimate, 3), f"A - B {_ci_label(ctx.level)}": fmt_ci(iv.lo, iv.hi),
                             "P(A > B)": round(cmp.p_a_better, 3), "seeds A/B": f"{len(ra)}/{len(rb)}",
                             "verdict": verdict})
    return pd.DataFrame(rows)


GENRE_PREFIX = "genre/"  # per-genre accuracy metrics of experiment=clustering


def per_genre(ctx: ReportContext) -> pd.DataFrame:
    """Mean per-genre accuracy over seeds for each (k, model, clusterer), genres in family order, with the seed count."""
    df = ctx.df
    cols = [c for c in df.columns if c.startswith(GENRE_PREFIX)]
    if not cols:
        return pd.DataFrame()
    genres = [c[len(GENRE_PREFIX):] for c in cols]
    order = [g for g in GTZAN_ORDER if g in genres] if set(genres) <= set(GTZAN_ORDER) else sorted(genres)
    g = df.groupby(["k", "model", "clusterer"])
    out = g[[f"{GENRE_PREFIX}{x}" for x in order]].mean().round(3)
    out.columns = order
    out["seeds"] = g.size()
    out = out.reset_index()
    out["model"] = out["model"].map(model_name)
    out["clusterer"] = out["clusterer"].map(lambda c: CLUSTERER_NAMES.get(c, c))
    return out


# name -> table builder; each is written as <name>.md and <name>.csv (table1.csv is the numeric form).
TABLES: dict[str, Callable[[ReportContext], pd.DataFrame]] = {
    "table1": table1, "scores": scores, "table1_vs_study": versus_study, "comparisons": comparisons, "per_genre": per_genre,
}
NUMERIC_CSV: dict[str, Callable[[ReportContext], pd.DataFrame]] = {"table1": table1_numbers, "scores": scores_numbers}


HEADINGS = {"table1": "Table 1: accuracy, mean (std) over seeds and {ci} of the seed mean ({how_acc}, conditional on the fitted "
                      "clusterings); held-out: clusters and matching fitted on one half of the {group}s, scored on the other "
                      "({heldout}); GMM covariance_type={covariance}",
            "scores": "All scores: mean (std) [{ci}] (accuracy: {how_acc}; NMI, AMI, ARI, V-measure: {how_other})",
            "table1_vs_study": "Beside the study (full GTZAN; here the sweep's dataset)",
            "comparisons": "Paired comparisons (same songs, {n_boot} resamples): is the study's ordering supported here?",
            "per_genre": "Per-genre accuracy (mean over seeds)"}


def report(runs: list[dict], *, cfg, uri: str, sweep: str) -> StudyReport:
    """``python -m lab.report``: Table 1 and its companions from a sweep's clustering runs.

    Interval options come from ``experiment.bootstrap`` (``--n-boot N`` on the command line sets
    ``experiment.bootstrap.n_boot``); each run's ``assignments.csv`` is read for the redraws.
    """
    from lab import tracking

    boot = cfg.experiment.get("bootstrap") or {}
    n_boot = int(boot.get("n_boot", 1000))
    level = float(boot.get("level", 0.95))
    method = str(boot.get("method", "auto"))
    validate(max(n_boot, 1), level, method)
    df = runs_frame(runs)
    failed = int((df.status != "FINISHED").sum()) if not df.empty else 0
    df = df[df.status == "FINISHED"] if not df.empty else df
    if df.empty or "accuracy" not in df:
        raise LabError(f"sweep {sweep!r} has no finished clustering runs")
    group = str(cfg.experiment.get("group", "artist"))
    made = {r["tags"].get("group", "recording") for r in runs if r["run_id"] in set(df.run_id)}  # untagged runs predate artists
    if group == "artist" and made == {"recording"}:
        group = "recording"  # their assignments hold no artists: say what is resampled
    ctx = ReportContext(df.reset_index(drop=True), n_boot=n_boot, level=level, seed=int(boot.get("seed", 0)), method=method,
                        group=group, covariance=_covariance(runs, ctx_df=df))
    if n_boot > 0:
        assignments = {}
        where = {r["run_id"]: r.get("artifact_uri") for r in runs}
        for r in ctx.df.run_id:
            text = tracking.run_artifact_text(uri, r, "assignments.csv", artifact_uri=where.get(r))
            a = _read_assignments(text) if text else None
            if a is not None:
                assignments[r] = a
        add_redraws(ctx, assignments)
        add_caps(ctx, assignments)
    how = {"bca": f"song bootstrap, BCa, {n_boot} resamples", "percentile": f"song bootstrap, percentile, {n_boot} resamples",
           "jackknife": "leave-one-song-out jackknife"}
    fill = dict(ci=_ci_label(level), n_boot=n_boot, how_acc=how[resolve_method(method, "accuracy")], how_other=how[resolve_method(method, "nmi")],
                group=group, covariance=ctx.covariance or "–", heldout=_heldout_how(ctx))
    fill = {key: v.replace("song", group) if key.startswith("how") else v for key, v in fill.items()}  # the unit resampled
    tables = {}
    for name, build in TABLES.items():
        numbers = NUMERIC_CSV[name](ctx) if name in NUMERIC_CSV else None
        tables[name] = Table(build(ctx), heading=HEADINGS[name].format(**fill), numbers=numbers, latex=name == "table1")
    return StudyReport(key="table1", source_experiment="clustering", tables=tables, notes=ctx.notes, n_runs=len(df),
                       summary=f"sweep {sweep}: {len(df)} finished runs ({failed} not finished), "
                               f"dataset(s) {', '.join(sorted(df.dataset.dropna().unique()))}")


def add_caps(ctx: ReportContext, assignments: dict[str, pd.DataFrame]) -> None:
    """``ctx.caps`` (k -> :func:`accuracy_cap` of the songs' genre sizes) and a note with the caps and the held-out ceilings."""
    if not assignments:
        return
    counts = next(iter(assignments.values()))["genre"].value_counts().to_numpy()
    ks = sorted(int(k) for k in ctx.df["k"].dropna().unique())
    ctx.caps = {k: accuracy_cap(counts, k) for k in ks}
    capped = {k: c for k, c in ctx.caps.items() if c < 1}
    if capped:
        ctx.notes.append("cap: k clusters matched one-to-one to genres get at most the songs of the k largest genres right: "
                         + ", ".join(f"k = {k} -> {c:.2f}" for k, c in capped.items())
                         + f" ({len(counts)} genres of {counts.min()}" + (f"-{counts.max()}" if counts.max() > counts.min() else "")
                         + " songs each)")
    if "accuracy_heldout_ceiling" in ctx.df:
        ceil = ctx.df.groupby("k")["accuracy_heldout_ceiling"].mean().dropna()
        if not ceil.empty:
            ctx.notes.append(f"held-out ceiling: the best any clustering can score on the {ctx.group}-disjoint halves "
                             f"(a genre whose {ctx.group}s all fall in one half cannot be right in the other): "
                             + ", ".join(f"k = {int(k)} -> {v:.2f}" for k, v in ceil.items()))


def _covariance(runs: list[dict], *, ctx_df: pd.DataFrame) -> str:
    """The covariance_type tag(s) of the finished GMM runs ("full", "spherical", "full + spherical")."""
    keep = set(ctx_df.run_id) if "run_id" in ctx_df else set()
    found = sorted({r["tags"].get("covariance_type", "full (before the tag)") for r in runs
                    if r["run_id"] in keep and r["tags"].get("clusterer") == "gmm"})
    return " + ".join(found)


def _heldout_how(ctx: ReportContext) -> str:
    if "accuracy_heldout" not in ctx.df:
        return "not logged by these runs"
    return "mean over splits; mean (std) over seeds and the interval of the seed mean over the same resamples" if ctx.redraws \
        else "mean over splits; mean (std) over seeds"


def write_tables(ctx: ReportContext, out: Path) -> dict[str, Path]:
    """Write every table of :data:`TABLES` as Markdown and CSV (plus ``table1.tex``); returns name -> path."""
    tables = {name: Table(build(ctx), numbers=NUMERIC_CSV[name](ctx) if name in NUMERIC_CSV else None, latex=name == "table1")
              for name, build in TABLES.items()}
    return write_report(StudyReport(key="table1", summary="", tables=tables), out)
