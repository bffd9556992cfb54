"""Transfer matrices of a dream sweep: which genre each dream is judged as, by each tagger.

    python -m lab experiment=dream model=fcn genre=all seed=0,1,2 dream.steps=300 dataset=gtzan dataset.root=PATH sweep_id=S -m
    python -m lab.report --experiment dream --sweep-id S

Reads ``transfer.csv`` of every finished job run of the sweep (one row per dream and judging
tagger, plus ``kind=start`` rows: the starting waveform judged by the same taggers) and writes

* ``transfer_<maker>_by_<judge>.md`` -- rows = the genre dreamed, columns = the genre the judge calls
  the dream (its nearest genre mean), cells = how many of the seeds' dreams; a last row ``start``
  counts what the judge calls the starting waveforms;
* ``dream_transfer.md`` -- per (dreaming model, judge): dreams judged as their target, the count
  expected if the judge's calls did not depend on the target, and a permutation p-value;
* ``transfer_<maker>.png`` -- the matrices as heat maps, one panel per judge.

**The test.** H0: a judge's call does not depend on which genre was dreamed. Within each seed (the
dreams of one seed share their starting noise) the target labels are permuted ``experiment.n_perm``
times and the number of dreams judged as their target recounted; p = (1 + #{null >= observed}) /
(1 + n_perm). The dreams of one seed are not independent of each other, which is why targets are
permuted within seeds and no binomial interval is given.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from lab import tracking
from lab.core.errors import LabError
from lab.stats import plots
from lab.stats.tables import StudyReport, Table, model_name


def transfer_frame(runs: list[dict], *, uri: str) -> pd.DataFrame:
    """All ``transfer.csv`` rows of the sweep's FINISHED job runs, with the run id."""
    frames = []
    for r in runs:
        if r["status"] != "FINISHED" or "mlflow.parentRunId" in r["tags"]:
            continue
        text = tracking.run_artifact_text(uri, r["run_id"], "transfer.csv", artifact_uri=r.get("artifact_uri"))
        if not text:
            continue
        df = pd.read_csv(io.StringIO(text), keep_default_na=False)
        if "kind" not in df:  # a job logged before the start control: dreams only, no seed column
            df["kind"] = "dream"
        if "seed" not in df:
            df["seed"] = r["tags"].get("noise_seed", r["tags"].get("seed", ""))
        frames.append(df.assign(run_id=r["run_id"]))
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    # a genre dreamed again (a re-run job) counts once per seed: the latest row wins
    return df.drop_duplicates(["kind", "genre", "dreamed_by", "judged_by", "seed"], keep="last").reset_index(drop=True)


def matrix(df: pd.DataFrame, maker: str, judge: str, genres: list[str]) -> pd.DataFrame:
    """Counts [rows = dreamed genre + ``start``, cols = judged genre] for one (maker, judge) pair."""
    d = df[(df.dreamed_by == maker) & (df.judged_by == judge)]
    dreams = d[d.kind == "dream"]
    m = pd.crosstab(dreams.genre, dreams.nearest_genre).reindex(index=genres, columns=genres, fill_value=0)
    start = d[d.kind == "start"].drop_duplicates("seed")
    m.loc["start"] = start.nearest_genre.value_counts().reindex(genres, fill_value=0)
    return m.fillna(0).astype(int)


def permutation_test(dreams: pd.DataFrame, *, n_perm: int, seed: int = 0) -> tuple[int, float, float]:
    """(dreams judged as their target, expected count under H0, p-value): targets permuted within each seed."""
    hits = int((dreams.genre == dreams.nearest_genre).sum())
    rng = np.random.default_rng(seed)
    groups = [(g.genre.to_numpy(), g.nearest_genre.to_numpy()) for _, g in dreams.groupby("seed")]
    null = np.zeros(n_perm)
    for b in range(n_perm):
        null[b] = sum(int((rng.permutation(t) == c).sum()) for t, c in groups)
    # the expectation under H0, exactly: per seed, sum over genres of (#dreams of g) (#calls g) / n
    expected = sum(float(sum((t == g).sum() * (c == g).sum() for g in sorted(set(t))) / len(t)) for t, c in groups)
    return hits, expected, float((1 + (null >= hits).sum()) / (1 + n_perm))


def summary(df: pd.DataFrame, *, n_perm: int) -> pd.DataFrame:
    """Per (dreaming model, judge): hits, the H0 expectation, p, the starting waveform's calls."""
    rows = []
    pairs = sorted(df.groupby(["dreamed_by", "judged_by"]), key=lambda kv: (kv[0][0], kv[0][1] != kv[0][0], kv[0][1]))
    for (maker, judge), d in pairs:  # each model judging its own dreams first
        dreams = d[d.kind == "dream"]
        if dreams.empty:
            continue
        hits, expected, p = permutation_test(dreams, n_perm=n_perm)
        start = d[d.kind == "start"].drop_duplicates("seed").nearest_genre.value_counts()
        rows.append({"dreamed by": model_name(maker), "judged by": model_name(judge) + (" (itself)" if maker == judge else ""),
                     "dreams": len(dreams), "seeds": dreams.seed.nunique(), "genres": dreams.genre.nunique(),
                     "judged as their target": hits, "expected if calls ignore the target": f"{expected:.1f}",
                     "p (targets permuted within seeds)": f"{p:.4f}",
                     "most common call": dreams.nearest_genre.value_counts().index[0],
                     "start waveform called": ", ".join(f"{g} {n}" for g, n in start.items()) or "–",
                     "steps": ", ".join(sorted({str(s) for s in dreams.get("steps", pd.Series(["?"]))})),
                     "target split": ", ".join(sorted({str(s) for s in dreams.get("target_split", pd.Series(["none"]))}))})
    return pd.DataFrame(rows)


def report(runs: list[dict], *, cfg, uri: str, sweep: str) -> StudyReport:
    """``python -m lab.report --experiment dream``: transfer matrices and their permutation tests."""
    df = transfer_frame(runs, uri=uri)
    if df.empty:
        raise LabError(f"sweep {sweep!r} has no finished dream job with a transfer.csv")
    return frame_report(df, cfg=cfg, sweep=sweep)


def frame_report(df: pd.DataFrame, *, cfg, sweep: str) -> StudyReport:
    """The transfer matrices and tests of a non-empty :func:`transfer_frame`."""
    n_perm = int(cfg.experiment.get("n_perm", 9999)) if cfg is not None else 9999
    genres = sorted(set(df.loc[df.kind == "dream", "genre"]) | set(df.nearest_genre) - {""})
    rep = StudyReport(key="dream", source_experiment="dream", n_runs=int(df.run_id.nunique()),
                      summary=f"sweep {sweep}: {int((df.kind == 'dream').sum())} judged dreams from {df.run_id.nunique()} job(s)")
    rep.tables["dream_transfer"] = Table(summary(df, n_perm=n_perm))
    for maker in sorted(set(df.dreamed_by)):
        judges = [j for j in [maker] + sorted(set(df.judged_by) - {maker}) if ((df.dreamed_by == maker) & (df.judged_by == j)).any()]
        mats = {j: matrix(df, maker, j, genres) for j in judges}
        for j, m in mats.items():
            rep.tables[f"transfer_{maker}_by_{j}"] = Table(m.rename_axis(f"dreamed \\ called by {j}").reset_index(), csv=False)
        fig = plots.transfer_matrices({model_name(j): m for j, m in mats.items()},
                                      title=f"Dreams by {model_name(maker)}: which genre each judge calls them")
        rep.files[f"transfer_{maker}.png"] = plots.figure_bytes(fig, dpi=120)
    rep.shown = ["dream_transfer"]
    return rep
