"""Seed-variance tables from a sweep's MLflow runs (the study's Table 1 format).

    python -m lab.report                       # latest sweep in the default store
    python -m lab.report --sweep-id ID --tracking-uri http://127.0.0.1:5000
    python -m lab.report --sweep-id ID paths.mlruns=/elsewhere   # lab overrides pick the store too

Reads the FINISHED ``clustering`` runs tagged with the sweep id and writes, to ``--out``:

* ``table1.{md,csv,tex}`` — rows (k, model), columns K-Means and GMM, cells ``mean (std)`` of
  the Hungarian accuracy over seeds (sample std, ddof=1; 0 when there is a single seed);
* ``table1_vs_study.md`` — the same beside the study's published numbers;
* ``per_genre.{md,csv}`` — mean per-genre accuracy over seeds for each (model, clusterer, k).

All are printed and logged as artifacts of one summary run in the MLflow experiment ``report``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

MODEL_NAMES = {"fcn": "FCN", "musicnn": "Musicnn", "crnn": "CRNN", "attention": "Attention", "hcnn": "HCNN",
               "sample": "Sample level", "se": "Sample level SE"}
CLUSTERER_NAMES = {"kmeans": "K-Means", "gmm": "GMM"}

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


def runs_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per run (dicts from :func:`lab.tracking.sweep_runs`): model, clusterer, k, seed, status, metrics."""
    rows = []
    for r in runs:
        t = r["tags"]
        rows.append({"run_id": r["run_id"], "status": r["status"], "model": t.get("model"), "clusterer": t.get("clusterer"),
                     "k": int(t["k"]) if "k" in t else None, "seed": int(t.get("seed", 0)), "dataset": t.get("dataset"),
                     "pretrained": t.get("pretrained"), **r["metrics"]})
    return pd.DataFrame(rows)


def _cell(values: pd.Series) -> str:
    v = values.dropna().to_numpy(dtype=float)
    if v.size == 0:
        return "–"
    std = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return f"{v.mean():.3f} ({std:.4f})"


def _model_order(models) -> list[str]:
    return [m for m in MODEL_NAMES if m in set(models)] + sorted(set(models) - set(MODEL_NAMES))


def table1(df: pd.DataFrame) -> pd.DataFrame:
    """Rows (k, model) x columns (K-Means, GMM) of 'mean (std)' accuracy over seeds, plus the seed count."""
    rows = []
    for k in sorted(df["k"].dropna().unique()):
        for m in _model_order(df.loc[df.k == k, "model"]):
            sel = df[(df.k == k) & (df.model == m)]
            row = {"# Clusters": int(k), "Model": MODEL_NAMES.get(m, m)}
            for c, name in CLUSTERER_NAMES.items():
                row[name] = _cell(sel.loc[sel.clusterer == c, "accuracy"])
            row["seeds"] = int(sel.groupby("clusterer").seed.nunique().max())
            rows.append(row)
    return pd.DataFrame(rows)


def versus_study(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    by_name = {v: k for k, v in MODEL_NAMES.items()}
    for _, r in table1(df).iterrows():
        study = STUDY_TABLE1.get((r["# Clusters"], by_name.get(r["Model"])), ("–", "–"))
        rows.append({"# Clusters": r["# Clusters"], "Model": r["Model"], "K-Means (here)": r["K-Means"], "K-Means (study)": study[0],
                     "GMM (here)": r["GMM"], "GMM (study)": study[1]})
    return pd.DataFrame(rows)


def per_genre(df: pd.DataFrame) -> pd.DataFrame:
    cols = sorted(c for c in df.columns if c.startswith("acc_genre."))
    if not cols:
        return pd.DataFrame()
    g = df.groupby(["k", "model", "clusterer"])[cols].mean().reset_index()
    g = g.rename(columns={c: c.split(".", 1)[1] for c in cols})
    g["model"] = g["model"].map(lambda m: MODEL_NAMES.get(m, m))
    g["clusterer"] = g["clusterer"].map(lambda c: CLUSTERER_NAMES.get(c, c))
    return g.round(3)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no optional ``tabulate`` dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs tabular; k is written once per block, as in the study's Table 1."""
    esc = lambda v: str(v).replace("&", r"\&").replace("#", r"\#").replace("%", r"\%").replace("_", r"\_")  # noqa: E731
    lines = [r"\begin{tabular}{" + "l" * len(df.columns) + "}", r"\toprule",
             " & ".join(esc(c) for c in df.columns) + r" \\", r"\midrule"]
    prev = None
    for row in df.itertuples(index=False):
        cells = [esc(v) for v in row]
        if cells[0] == prev:
            cells[0] = ""
        else:
            if prev is not None:
                lines.append(r"\midrule")
            prev = cells[0]
        lines.append(" & ".join(cells) + r" \\")
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def write_tables(df: pd.DataFrame, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    t1 = table1(df)
    files = {"table1.md": to_markdown(t1), "table1.csv": t1.to_csv(index=False),
             "table1.tex": to_latex(t1.drop(columns=["seeds"])),
             "table1_vs_study.md": to_markdown(versus_study(df))}
    pg = per_genre(df)
    if not pg.empty:
        files["per_genre.md"] = to_markdown(pg)
        files["per_genre.csv"] = pg.to_csv(index=False)
    paths = {}
    for name, text in files.items():
        (out / name).write_text(text + ("\n" if not text.endswith("\n") else ""))
        paths[name] = out / name
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep-id", help="sweep to summarise (default: the latest one)")
    ap.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    ap.add_argument("--experiment", default="clustering")
    ap.add_argument("--out", default=None, help="output folder (default: reports/<sweep id>)")
    ap.add_argument("--no-log", action="store_true", help="do not log a summary run to MLflow")
    ap.add_argument("overrides", nargs="*", help="lab config overrides (only paths.* matter here)")
    args = ap.parse_args(argv)

    from lab import tracking
    from lab.compose import compose_from_args
    from lab.errors import LabError

    uri = args.tracking_uri or tracking.resolve_tracking_uri(compose_from_args(args.overrides))
    try:
        sweep, runs = tracking.sweep_runs(uri, args.experiment, args.sweep_id)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    df = runs_frame(runs)
    failed = int((df.status != "FINISHED").sum()) if not df.empty else 0
    df = df[df.status == "FINISHED"] if not df.empty else df
    if df.empty or "accuracy" not in df:
        print(f"error: sweep {sweep!r} has no finished clustering runs", file=sys.stderr)
        return 2
    out = Path(args.out or Path("reports") / sweep.replace("/", "_"))
    paths = write_tables(df, out)
    print(f"sweep {sweep}: {len(df)} finished runs ({failed} not finished), dataset(s) {', '.join(sorted(df.dataset.dropna().unique()))}\n")
    print(paths["table1.md"].read_text())
    if "per_genre.md" in paths:
        print("Per-genre accuracy (mean over seeds):\n")
        print(paths["per_genre.md"].read_text())
    print(f"written to {out}/")
    if not args.no_log:
        tracking.log_summary_run(uri, "report", f"table1-{sweep}", tags={"sweep_id": sweep, "source_experiment": args.experiment},
                                 files=list(paths.values()), metrics={"n_runs": float(len(df))})
    return 0


if __name__ == "__main__":
    sys.exit(main())
