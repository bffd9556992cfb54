"""``python -m lab.report``: a sweep's tables, written, printed and logged as one MLflow summary run.

    python -m lab.report                                   # Table 1 of the latest clustering sweep
    python -m lab.report --sweep-id ID --n-boot 2000       # another sweep, more resamples
    python -m lab.report --experiment transforms --sweep-id ID      # Table 2
    python -m lab.report --experiment out_of_domain --sweep-id ID   # the out-of-domain table
    python -m lab.report --paper --sweep-id ID        # the whole study as one HTML page (lab.report.paper)

The command knows no study: ``conf/experiment/<name>.yaml`` names the study's report function in
``experiment.report`` (``report(runs, *, cfg, uri, sweep) -> StudyReport``, see
:mod:`lab.stats.tables`), which builds the tables from the sweep's runs. Files go to ``--out``
(default ``<paths.reports>/<sweep id>/``, ``reports/`` unless set) and into one summary run per sweep and study in the MLflow
experiment ``report``; re-running updates that run, or leaves it alone when nothing changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab.core.compose import CONF_DIR
from lab.core.errors import LabError


def experiments_with_report() -> list[str]:
    """Names of the experiments whose config names a report function."""
    import yaml

    names = []
    for p in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        if ((yaml.safe_load(p.read_text()) or {}).get("experiment") or {}).get("report"):
            names.append(p.stem)
    return names


def reports_dir(cfg, sweep: str) -> Path:
    """``<paths.reports>/<sweep id>`` (relative paths from where the command runs, like every ``paths.*``)."""
    return Path(str((cfg.get("paths") or {}).get("reports") or "reports")) / sweep.replace("/", "_")


def study_report(experiment: str, overrides: list[str], *, uri: str | None = None, sweep_id: str | None = None):
    """(config, tracking URI, :class:`~lab.stats.tables.StudyReport`, sweep id) for one sweep of ``experiment``.

    Raises :class:`LabError` for an unknown experiment, one without a report, or a sweep without runs.
    """
    from hydra.utils import get_method

    from lab import tracking
    from lab.core.compose import compose_from_args

    if not (CONF_DIR / "experiment" / f"{experiment}.yaml").is_file():
        raise LabError(f"--experiment {experiment!r} is unknown; experiments with a report: {', '.join(experiments_with_report())}")
    cfg = compose_from_args([f"experiment={experiment}", *overrides])
    fn = cfg.experiment.get("report")
    if not fn:
        raise LabError(f"experiment={experiment} has no report table (its results are in each run, in the MLflow UI); "
                       f"experiments with a report: {', '.join(experiments_with_report())}")
    uri = uri or tracking.resolve_tracking_uri(cfg)
    sweep, runs = tracking.sweep_runs(uri, cfg.experiment.name, sweep_id)
    return cfg, uri, get_method(fn)(runs, cfg=cfg, uri=uri, sweep=sweep), sweep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep-id", help="sweep to summarise (default: the latest one)")
    ap.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    ap.add_argument("--experiment", default="clustering", help="the study whose sweep to summarise (default: clustering)")
    ap.add_argument("--out", default=None, help="output folder (default: <paths.reports>/<sweep id>, reports/ unless set)")
    ap.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples (default: experiment.bootstrap.n_boot, 1000)")
    ap.add_argument("--no-log", action="store_true", help="do not log the summary run to MLflow")
    ap.add_argument("--paper", action="store_true",
                    help="the whole study from every experiment of the sweep: paper.html (self-contained), paper.md, tables")
    ap.add_argument("overrides", nargs="*", help="lab config overrides (paths.*, experiment.bootstrap.*)")
    args = ap.parse_args(argv)

    from lab import tracking
    from lab.stats.tables import write_report

    overrides = list(args.overrides) + ([f"experiment.bootstrap.n_boot={args.n_boot}"] if args.n_boot is not None else [])
    if args.paper:
        return paper_main(args, overrides)
    try:
        cfg, uri, rep, sweep = study_report(args.experiment, overrides, uri=args.tracking_uri, sweep_id=args.sweep_id)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else reports_dir(cfg, sweep)
    paths = write_report(rep, out)
    print(rep.summary + "\n")
    for name in rep.shown or list(rep.tables):
        if f"{name}.md" in paths:
            heading = rep.tables[name].heading
            print((f"{heading}:\n\n" if heading else "") + paths[f"{name}.md"].read_text())
    for note in rep.notes:
        print(f"note: {note}")
    print(f"written to {out}/: {', '.join(sorted(paths))}")
    if not args.no_log:
        run_id, action = tracking.log_summary_run(uri, "report", f"{rep.key}-{sweep}",
                                                  tags={"sweep_id": sweep, "source_experiment": cfg.experiment.name},
                                                  files=list(paths.values()), metrics={"n_runs": float(rep.n_runs)})
        print({"created": f"logged summary run {run_id} (experiment 'report')",
               "updated": f"updated summary run {run_id} (experiment 'report'): the sweep changed",
               "unchanged": f"summary run {run_id} already holds these tables; nothing logged"}[action])
    return 0


def paper_main(args: argparse.Namespace, overrides: list[str]) -> int:
    """``python -m lab.report --paper``: write, summarise and log the whole-study document of one sweep."""
    import time

    from lab import tracking
    from lab.core.compose import compose_from_args
    from lab.report import paper

    t0 = time.perf_counter()
    base = compose_from_args(overrides)
    uri = args.tracking_uri or tracking.resolve_tracking_uri(base)
    configs: dict[str, object] = {}

    def config(experiment: str):
        if experiment not in configs:
            configs[experiment] = compose_from_args([f"experiment={experiment}", *overrides])
        return configs[experiment]

    try:
        sweep = args.sweep_id or tracking.latest_sweep(uri, paper.EXPERIMENTS)
        sections, beyond = paper.build(tracking.SweepReader(uri, sweep), config)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    everything = sections + beyond
    filled = [s for s in everything if not s.missing]
    if not filled:
        print(f"error: sweep {sweep!r} has no finished run of any part of the study in {uri}; run the study first "
              f"(bash multirun.sh BUDGET=quick dataset=gtzan dataset.root=../shared/music/gtzan_mini)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else reports_dir(base, sweep)
    written = paper.write(sections, beyond, out, sweep=sweep, uri=uri)
    print(f"sweep {sweep}: {len(filled)} of {len(everything)} parts filled")
    for s in everything:
        print(f"  {'ok     ' if not s.missing else 'not run'}  {s.title}" + (f" ({len(s.runs)} runs)" if s.runs else ""))
    print(f"written to {out}/paper.html (self-contained, {written['paper.html'].stat().st_size / 1e6:.1f} MB), paper.md, "
          f"{sum(n.endswith('.csv') for n in written)} tables as CSV; {time.perf_counter() - t0:.1f} s")
    if not args.no_log:
        files = [p for name, p in written.items() if "/" not in name]
        run_id, action = tracking.log_summary_run(uri, "report", f"paper-{sweep}", tags={"sweep_id": sweep, "source_experiment": "paper"},
                                                  files=files, metrics={"n_parts_filled": float(len(filled)),
                                                                        "n_parts": float(len(everything))})
        print({"created": f"logged summary run {run_id} (experiment 'report')",
               "updated": f"updated summary run {run_id} (experiment 'report'): the sweep changed",
               "unchanged": f"summary run {run_id} already holds this document; nothing logged"}[action])
    return 0
