"""The probe's table from a sweep's MLflow runs: accuracy per model and grouping unit, with intervals.

    python -m lab.report --experiment probe --sweep-id ID

One row per (model, corpus, ``experiment.group``): the probe accuracy, mean (std) over the runs'
seeds (the seed shuffles the folds), and the 95 % interval of that mean from a bootstrap over the
same groups the folds kept apart (artists or recordings) of each song's out-of-fold correctness
averaged over the seeds (``probe_predictions.csv``); the accuracy on the genres with more than one
artist (``probe_accuracy_multi``), the mean fold-to-fold std, chance and the number of seeds. The
interval is conditional on the fitted probes (it resamples songs' predictions, not the training).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from lab.core.errors import LabError
from lab.stats.tables import StudyReport, Table, model_name, model_order
from lab.stats.uncertainty import bootstrap_mean

GROUP_NAMES = {"artist": "artists", "recording": "recordings"}


def _fmt(mean: float, std: float, n: int) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.3f} (n=1)" if n < 2 or not np.isfinite(std) else f"{mean:.3f} ({std:.3f})"


def probe_numbers(runs: list[dict], predictions: dict[str, pd.DataFrame], *, n_boot: int = 1000, seed: int = 0,
                  level: float = 0.95) -> pd.DataFrame:
    """One row per (model, corpus, group) with the seed mean, std, n and the interval over groups (numbers)."""
    rows = []
    frame = pd.DataFrame([{"run_id": r["run_id"], "model": r["tags"].get("model"), "corpus": r["tags"].get("corpus", "jamendo"),
                           "pretrained": r["tags"].get("pretrained", "true"), "group": r["tags"].get("group", "recording"),
                           "protocol": r["tags"].get("probe_protocol", ""), **r["metrics"]} for r in runs])
    if frame.empty:
        return pd.DataFrame()
    order = {m: i for i, m in enumerate(model_order(frame.model.dropna()))}
    keys = sorted(frame.groupby(["model", "corpus", "pretrained", "group", "protocol"]).groups,
                  key=lambda k: (order.get(k[0], 99), k[1] != "jamendo", k[1], k[2] != "true", k[3] != "artist", k[4]))
    for model, corpus, pretrained, group, protocol in keys:
        g = frame[(frame.model == model) & (frame.corpus == corpus) & (frame.pretrained == pretrained) & (frame.group == group)
                  & (frame.protocol == protocol)]
        acc = g["probe_accuracy"].astype(float)
        row = {"model": model, "corpus": corpus, "pretrained": pretrained, "group": group, "protocol": protocol,
               "mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else np.nan, "n": int(len(acc)),
               "ci_lo": np.nan, "ci_hi": np.nan,
               "multi": float(g["probe_accuracy_multi"].mean()) if "probe_accuracy_multi" in g and g["probe_accuracy_multi"].notna().any() else np.nan,
               "fold_std": float(g["probe_accuracy_std"].mean()) if "probe_accuracy_std" in g else np.nan,
               "chance": float(g["chance_accuracy"].mean()), "n_test": int(g["n_test"].mean())}
        preds = [predictions[r] for r in g.run_id if r in predictions]
        if n_boot > 0 and len(preds) == len(g) and all("group" in p for p in preds):
            ids = sorted(set.intersection(*(set(p.index) for p in preds)))
            right = np.mean([p.loc[ids, "correct"].astype(str).str.lower().eq("true").to_numpy(float) for p in preds], axis=0)
            iv = bootstrap_mean(right, preds[0].loc[ids, "group"].to_numpy(), n_boot=n_boot, seed=seed, level=level)
            row["ci_lo"], row["ci_hi"] = iv.lo, iv.hi
        rows.append(row)
    return pd.DataFrame(rows)


def probe_table(nums: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The shown table: 'mean (std)' over seeds, its interval, accuracy on multi-artist genres, fold std, chance."""
    rows = []
    for r in nums.itertuples(index=False):
        label = model_name(r.model) + ("" if r.corpus == "jamendo" else f" ({r.corpus.upper()})") + ("" if r.pretrained == "true" else " (random)")
        rows.append({"model": label, "folds keep apart": GROUP_NAMES.get(r.group, r.group), "probe accuracy": _fmt(r.mean, r.std, r.n),
                     f"{level * 100:g} % CI": f"[{r.ci_lo:.3f}, {r.ci_hi:.3f}]" if np.isfinite(r.ci_lo) else "–",
                     "multi-artist genres": f"{r.multi:.3f}" if np.isfinite(r.multi) else "–",
                     "fold std": f"{r.fold_std:.3f}" if np.isfinite(r.fold_std) else "–", "chance": f"{r.chance:.2f}",
                     "test songs": r.n_test, "seeds": r.n})
    return pd.DataFrame(rows)


def report(runs: list[dict], *, cfg, uri: str, sweep: str) -> StudyReport:
    """``python -m lab.report --experiment probe``: the probe table of a sweep (options from ``experiment.bootstrap``)."""
    from lab import tracking

    done = [r for r in runs if r["status"] == "FINISHED" and "probe_accuracy" in r["metrics"]]
    if not done:
        raise LabError(f"sweep {sweep!r} has no finished probe runs")
    boot = cfg.experiment.get("bootstrap") or {}
    n_boot, level = int(boot.get("n_boot", 1000)), float(boot.get("level", 0.95))
    predictions = {}
    for r in done:
        text = tracking.run_artifact_text(uri, r["run_id"], "probe_predictions.csv", artifact_uri=r.get("artifact_uri"))
        if text:
            predictions[r["run_id"]] = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).set_index("id")
    nums = probe_numbers(done, predictions, n_boot=n_boot, seed=int(boot.get("seed", 0)), level=level)
    notes = []
    if (nums.group == "artist").any():
        notes.append("folds over artists: a genre of a single artist (gtzan_mini: blues, classical, reggae, rock) is never in "
                     "training when tested, so it is always wrong; 'multi-artist genres' scores the others")
    heading = (f"Linear probe: accuracy mean (std) over seeds and the {level * 100:g} % interval of the seed mean (bootstrap over "
               f"the units the folds keep apart, BCa, {n_boot} resamples, conditional on the fitted probes)")
    return StudyReport(key="probe", source_experiment="probe", n_runs=len(done), notes=notes,
                       tables={"probe": Table(probe_table(nums, level), heading=heading, numbers=nums)},
                       summary=f"sweep {sweep}: {len(done)} finished probe runs")
