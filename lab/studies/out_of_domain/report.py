"""The out-of-domain table: one row per (model, set), from each run and from a sweep's runs.

    python -m lab.report --experiment out_of_domain [--sweep-id ID]   # out_of_domain.{md,csv}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lab.core.errors import LabError
from lab.stats.tables import MODEL_NAMES, StudyReport, Table

TABLE_COLUMNS = ["model", "set", "clips (recordings)", "silhouette (genres) p", "spread ratio", "kNN self-share (genres) p", "nearest genres",
                 "nearest stable", "fusion position [90% CI]", "off segment", "top genre tags", "watched tags (median rank)"]


def table_rows(rows: list[dict], *, model: str, reference: dict[str, float] | None = None) -> pd.DataFrame:
    """The readable table of one run: its set rows, numbers rounded, the genres' mean beside each."""
    ref = pd.DataFrame([r for r in rows if r.get("kind") == "reference"])
    yard = reference or {"silhouette": float(ref["silhouette"].mean()), "knn_self_share": float(ref["knn_self_share"].mean())}
    out = []
    for r in rows:
        if r.get("kind") != "set":
            continue
        fusion = "position" in r and pd.notna(r.get("position"))
        out.append({"model": model, "set": r["set"], "clips (recordings)": f"{int(r['n_items'])} ({int(r.get('n_sources', r['n_items']))})",
                    "silhouette (genres) p": f"{r['silhouette']:.2f} ({yard['silhouette']:.2f}) {_p(r.get('silhouette_p'))}",
                    "spread ratio": f"{r['spread_ratio']:.2f}",
                    "kNN self-share (genres) p": f"{r['knn_self_share']:.2f} ({yard['knn_self_share']:.2f}) {_p(r.get('knn_self_share_p'))}",
                    "nearest genres": " > ".join(r["ranking"].split(" > ")[:3]),
                    "nearest stable": f"{r['nearest_stability']:.2f}",
                    "fusion position [90% CI]": f"{r['position']:.2f} [{r['position_lo']:.2f}, {r['position_hi']:.2f}]" if fusion else "–",
                    "off segment": f"{r['offset']:.2f}" if fusion else "–",
                    "top genre tags": r["top_genre_tags"], "watched tags (median rank)": r.get("watched_tag_ranks", "")})
    return pd.DataFrame(out, columns=TABLE_COLUMNS)


def _p(p: float | None) -> str:
    return "" if p is None or not np.isfinite(p) else f"p={p:.3f}"


def report_table(runs: list[dict]) -> pd.DataFrame:
    """One row per (model, set) from the FINISHED out_of_domain runs of a sweep (dicts of lab.tracking.sweep_runs)."""
    frames = []
    for r in runs:
        if r["status"] != "FINISHED":
            continue
        t, m = r["tags"], r["metrics"]
        rows = []
        for name in filter(None, t.get("ood_sets", "").split(",")):
            row = {"kind": "set", "set": name, "ranking": t.get(f"ood.{name}.ranking", ""),
                   "top_genre_tags": t.get(f"ood.{name}.top_genre_tags", ""),
                   "watched_tag_ranks": t.get(f"ood.{name}.watched_tag_ranks", "")}
            for key in ("n_items", "n_sources", "silhouette", "silhouette_p", "spread_ratio", "knn_self_share", "knn_self_share_p", "nearest_stability",
                        "position", "position_lo", "position_hi", "offset"):
                row[key] = m.get(f"{name}.{key}", float("nan"))
            rows.append(row)
        yard = {"silhouette": m.get("reference.silhouette", float("nan")), "knn_self_share": m.get("reference.knn_self_share", float("nan"))}
        frames.append(table_rows(rows, model=t.get("model", "?"), reference=yard))
    if not frames:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    order = {m: i for i, m in enumerate(MODEL_NAMES)}
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["set", "model"], key=lambda c: c.map(order).fillna(99) if c.name == "model" else c, kind="stable",
                          ignore_index=True)


def report(runs: list[dict], *, cfg, uri: str, sweep: str) -> StudyReport:
    """``python -m lab.report --experiment out_of_domain``: the side-by-side table of the sweep's runs."""
    df = report_table(runs)
    if df.empty:
        raise LabError(f"sweep {sweep!r} has no finished out_of_domain runs")
    return StudyReport(key="out_of_domain", source_experiment="out_of_domain", n_runs=int(df.model.nunique()),
                       summary=f"sweep {sweep}: {df.model.nunique()} model(s), {df.set.nunique()} set(s); genres' mean in brackets",
                       tables={"out_of_domain": Table(df)})
