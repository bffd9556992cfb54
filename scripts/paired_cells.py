"""Paired differences between Table 1 cells, with intervals: corpus vs architecture, trained vs random weights.

    python scripts/paired_cells.py --sweep-id ID [--sweep-id ID2 ...] [--k 10] [--clusterer kmeans]
                                   [--score accuracy|heldout] [--n-boot 2000] [paths.mlruns=DIR]

Reads the FINISHED ``clustering`` runs of the sweeps (one clusterer and k) and their
``assignments.csv``; a cell is (architecture, ``model.corpus``, ``model.pretrained``), its value the
mean over its seeds of the in-sample accuracy (``--score accuracy``) or of the cross-fitted held-out
accuracy (``--score heldout``, the ``heldout`` column). All runs are redrawn with the same weights over
artists (the ``group`` column; recordings for runs without it), so differences are paired. Prints

* each cell with its 95 % BCa interval;
* every pair of cells that differ in one factor (corpus, architecture or pretrained) with the
  interval of the difference and the share of redraws in which the first is higher;
* with several corpora and architectures, the mean |difference| over corpus pairs (architecture
  fixed) and over architecture pairs (corpus fixed), their difference and ratio, each with a
  percentile interval over the same redraws. |d| is biased upwards on redraws for both sides alike.

Intervals are conditional on the fitted clusterings (:mod:`lab.stats.uncertainty`).
"""

from __future__ import annotations

import argparse
import io
import itertools

import numpy as np
import pandas as pd

from lab.core.compose import compose_from_args
from lab.stats.uncertainty import compare, interval, jackknife_weights, resample_weights, resampled_scores
from lab.tracking import resolve_tracking_uri, run_artifact_text, sweep_runs


def cells(runs, uri, *, k, clusterer, score, n_boot, seed):
    """{(model, corpus, pretrained): (seed-mean value, redraws [n_boot], jackknife [n_units], n_seeds)}, n_units."""
    done = [r for r in runs if r["status"] == "FINISHED" and r["tags"].get("clusterer") == clusterer and r["tags"].get("k") == str(k)]
    tables = {}
    for r in done:
        text = run_artifact_text(uri, r["run_id"], "assignments.csv", artifact_uri=r.get("artifact_uri"))
        if text:
            tables[r["run_id"]] = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).set_index("id")
    done = [r for r in done if r["run_id"] in tables]
    common = sorted(set.intersection(*(set(t.index) for t in tables.values())))
    first = tables[done[0]["run_id"]].loc[common]
    units = (first["group"] if "group" in first else first["source"]).to_numpy()
    W, J = resample_weights(units, n_boot=n_boot, seed=seed), jackknife_weights(units)
    out: dict = {}
    for r in done:
        a = tables[r["run_id"]].loc[common]
        key = (r["tags"]["model"], r["tags"].get("corpus", "jamendo"), r["tags"].get("pretrained", "true"))
        if score == "heldout":
            c = a["heldout"].astype(float).to_numpy()
            obs, boot, jack = float(c.mean()), (W @ c) / W.sum(1), (J @ c) / J.sum(1)
        else:
            y, p = a["genre"].to_numpy(), a["cluster"].astype(int).to_numpy()
            obs = float(np.mean(a["correct"].str.lower() == "true"))
            boot = resampled_scores(y, p, W, scores=("accuracy",))["accuracy"]
            jack = resampled_scores(y, p, J, scores=("accuracy",))["accuracy"]
        d = out.setdefault(key, {"obs": [], "boot": [], "jack": []})
        d["obs"].append(obs), d["boot"].append(boot), d["jack"].append(jack)
    return {key: (float(np.mean(v["obs"])), np.mean(v["boot"], axis=0), np.mean(v["jack"], axis=0), len(v["obs"]))
            for key, v in out.items()}, len(set(units.tolist()))


def name(key) -> str:
    return f"{key[0]}@{key[1]}" + ("" if key[2] == "true" else " (random)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep-id", action="append", required=True, help="a sweep to read (repeat for several)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--clusterer", default="kmeans")
    ap.add_argument("--score", choices=("accuracy", "heldout"), default="accuracy")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("overrides", nargs="*", help="lab config overrides, e.g. paths.mlruns=DIR")
    a = ap.parse_args()
    uri = resolve_tracking_uri(compose_from_args(["experiment=clustering", *a.overrides]))
    runs = [r for s in a.sweep_id for r in sweep_runs(uri, "clustering", s)[1]]
    c, n_units = cells(runs, uri, k=a.k, clusterer=a.clusterer, score=a.score, n_boot=a.n_boot, seed=a.seed)
    print(f"{a.score}, {a.clusterer}, k = {a.k}: {len(c)} cells, {n_units} resampling units, {a.n_boot} redraws\n")
    print("| cell | value (seed mean) | 95 % CI | seeds |\n|---|---|---|---|")
    for key, (obs, boot, jack, n) in sorted(c.items()):
        iv = interval(obs, boot, jack, method="bca")
        print(f"| {name(key)} | {obs:.3f} | [{iv.lo:.3f}, {iv.hi:.3f}] | {n} |")
    pairs: dict[str, list] = {"corpus": [], "architecture": [], "pretrained": []}
    print("\n| A | B | differ in | A - B | 95 % CI | P(A > B) |\n|---|---|---|---|---|---|")
    for (ka, va), (kb, vb) in itertools.combinations(sorted(c.items()), 2):
        differ = [f for f, x, y in zip(("architecture", "corpus", "pretrained"), ka, kb) if x != y]
        if len(differ) != 1:
            continue
        if va[0] < vb[0]:
            (ka, va), (kb, vb) = (kb, vb), (ka, va)
        cmp = compare(va[0] - vb[0], va[1] - vb[1], va[2] - vb[2], method="bca")
        pairs[differ[0]].append((va[0] - vb[0], va[1] - vb[1]))
        print(f"| {name(ka)} | {name(kb)} | {differ[0]} | {cmp.diff.estimate:.3f} | [{cmp.diff.lo:.3f}, {cmp.diff.hi:.3f}] | "
              f"{cmp.p_a_better:.3f} |")
    if pairs["corpus"] and pairs["architecture"]:
        q = lambda x: np.round(np.quantile(x, [0.025, 0.975]), 3)  # noqa: E731
        (oc, bc), (oa, ba) = ((np.mean([abs(d) for d, _ in pairs[f]]), np.mean([np.abs(b) for _, b in pairs[f]], axis=0))
                              for f in ("corpus", "architecture"))
        print(f"\nmean |difference|: corpus pairs {oc:.3f} {q(bc)} ({len(pairs['corpus'])} pairs), "
              f"architecture pairs {oa:.3f} {q(ba)} ({len(pairs['architecture'])} pairs)")
        print(f"corpus - architecture: {oc - oa:.3f} {q(bc - ba)}, share of redraws > 0: {np.mean(bc - ba > 0):.3f}; "
              f"ratio {oc / oa:.2f} {q(bc / np.maximum(ba, 1e-9))}")


if __name__ == "__main__":
    main()
