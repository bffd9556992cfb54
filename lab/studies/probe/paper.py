"""The probe study's part of the paper document: how much genre a linear read-out finds, beside clustering."""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from lab.stats.document import NamedTable, Section
from lab.stats.tables import Table, run_label

RUN = ("python -m lab experiment=probe model=fcn,musicnn,crnn dataset=gtzan dataset.root=../shared/music/gtzan_mini "
       "paths.weights=../shared/weights sweep_id={sweep} -m")


def probe(reader, cfg: DictConfig) -> Section:
    """Beyond the paper: cross-validated linear-probe accuracy per model, beside its best clustering accuracy."""
    s = Section("probe", "Linear probe", experiment="probe",
                paper="Not in the study: a logistic-regression probe (C chosen by inner cross-validation) is the "
                      "ceiling of what a linear read-out finds; clustering without labels recovers part of it.")
    runs = reader.runs("probe")
    if not runs:
        return s.not_run(RUN, reader.sweep)
    s.runs = runs
    clustering: dict[str, list[float]] = {}
    for r in reader.runs("clustering"):
        clustering.setdefault(run_label(r["tags"]), []).append(r["metrics"].get("accuracy", np.nan))
    rows = []
    for r in runs:
        m, label = r["metrics"], run_label(r["tags"])
        best = max(clustering.get(label, [np.nan]))
        ci = (f"[{m['probe_accuracy_ci_lo']:.3f}, {m['probe_accuracy_ci_hi']:.3f}]" if "probe_accuracy_ci_lo" in m else "–")
        rows.append({"model": label, "protocol": r["tags"].get("probe_protocol", ""),
                     "probe accuracy": f"{m.get('probe_accuracy', np.nan):.3f}", "95 % CI": ci,
                     "fold std": f"{m['probe_accuracy_std']:.3f}" if "probe_accuracy_std" in m else "–",
                     "balanced": f"{m.get('probe_balanced_accuracy', np.nan):.3f}",
                     "chance": f"{m.get('chance_accuracy', np.nan):.3f}", "test songs": int(m.get("n_test", 0)),
                     "best clustering run": "–" if np.isnan(best) else f"{best:.3f}"})
    return s.add(NamedTable("probe", Table(pd.DataFrame(rows), heading="Probe accuracy beside clustering")))
