"""The whole study as one document (issue 19): ``python -m lab.report --paper``.

A store with only clustering runs gives a page whose other parts say what to run; re-running the
report on the same store writes the same files and no second summary run; the quick budget of
``multirun.sh`` on gtzan_mini gives a page that opens in headless Chromium with every section,
every image decoded, every audio element playable, and Table 1 equal to the runs' metrics.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from lab import report
from lab.app.task import run
from lab.report import paper
from lab.studies.dream.paper import fixed_serial, ogg
from lab.tracking import resolve_tracking_uri

from browser import artifact_dir, browser_page, console_errors
from conftest import CARNATIC, GTZAN_MINI, ROOT, WEIGHTS, need

FAST = ("dataset.n_per_class=3", "dataset.seconds=4", "model=sample", "model.pretrained=false",
        "experiment.save_embeddings=false", "experiment.bootstrap.n_boot=50")
TITLES = ["Figure 1", "Figure 2", "Table 1", "Figure 3", "Table 2", "Figure 4", "Figure 5",
          "Paired model comparisons", "Training corpus", "How alike", "Linear probe"]


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_store_with_only_clustering_runs_marks_the_other_parts_and_a_rerun_changes_nothing(compose_cfg, tmp_path, capsys):
    for seed in (0, 1):
        run(compose_cfg(*FAST, "clusterer=kmeans", "cluster_count=seven", f"seed={seed}", "sweep_id=only-clustering",
                        "experiment.listen_map=0"))
    cfg = compose_cfg()
    args = ["--paper", "--sweep-id", "only-clustering", "--out", str(tmp_path / "paper"), f"paths.mlruns={cfg.paths.mlruns}"]
    assert report.main(args) == 0
    out = capsys.readouterr().out
    assert "3 of 11 parts filled" in out and "logged summary run" in out
    page = (tmp_path / "paper" / "paper.html").read_text()
    for title in TITLES:
        assert title in page
    # parts without runs name the command that fills them, with this sweep's id
    missing = re.findall(r'<p class="missing">(.*?)</p>', page)
    assert len(missing) == 8
    assert any("two models or more" in m for m in missing)  # paired comparisons of one model: said, not faked
    assert any("experiment=transforms" in m and "sweep_id=only-clustering" in m for m in missing)
    assert any("experiment=cluster_scores" in m for m in missing) and any("experiment=dream" in m for m in missing)
    # self-contained: no file or network reference except the listening pages copied beside it
    assert not re.search(r'(src|href)="(?!data:|#|listen_map_)', page)
    assert (tmp_path / "paper" / "listen_map_sample_level_random" / "tsne.html").is_file()
    t1 = pd.read_csv(tmp_path / "paper" / "table1.csv")
    assert len(t1) == 1 and t1["n"].iloc[0] == 2
    before = _digests(tmp_path / "paper")
    assert report.main(args) == 0
    assert "nothing logged" in capsys.readouterr().out
    assert _digests(tmp_path / "paper") == before
    client = MlflowClient(resolve_tracking_uri(cfg))
    summaries = client.search_runs([client.get_experiment_by_name("report").experiment_id], "tags.source_experiment = 'paper'")
    assert len(summaries) == 1
    assert {"paper.html", "paper.md", "table1.csv", "table1.tex"} <= {a.path for a in client.list_artifacts(summaries[0].info.run_id)}


def test_an_empty_sweep_is_one_sentence(compose_cfg, tmp_path, capsys):
    run(compose_cfg(*FAST, "clusterer=kmeans", "cluster_count=seven", "sweep_id=one", "experiment.listen_map=false"))
    cfg = compose_cfg()
    assert report.main(["--paper", "--sweep-id", "nothing-here", "--no-log", f"paths.mlruns={cfg.paths.mlruns}"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not re.match(r"^\d{4}/\d\d/\d\d .* INFO ", line)]
    assert len(err) == 1 and err[0].startswith("error: sweep 'nothing-here' has no finished run of any part of the study")


def test_a_part_that_cannot_be_built_says_why_and_the_others_still_come(monkeypatch):
    from lab.core.compose import compose_from_args
    from lab.core.errors import LabError

    class EmptySweep:
        sweep, uri = "s", "sqlite://"

        def runs(self, experiment):
            return []

        def all_runs(self, experiment):
            return []

    def broken(reader, cfg):
        raise LabError("the runs of this part disagree")

    monkeypatch.setattr(paper, "SECTIONS", [("clustering", broken), *paper.SECTIONS[1:2]])
    sections, beyond = paper.build(EmptySweep(), lambda e: compose_from_args([f"experiment={e}"]))
    assert sections[0].missing == "This part could not be built from sweep s: the runs of this part disagree"
    assert sections[1].missing and "experiment=cluster_scores" in sections[1].missing and "sweep_id=s " in sections[1].missing
    assert len(beyond) == len(paper.BEYOND) and all(s.missing for s in beyond)


@pytest.mark.slow
def test_quick_budget_on_gtzan_mini_gives_a_page_that_plays_in_chromium(tmp_path):
    """The quick budget (one model, one seed, to fit CI) then the report: the page a researcher would share."""
    need(GTZAN_MINI)
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("MLFLOW_TRACKING_URI", "LAB_CACHE_DIR", "SWEEP_ID")}
    env.update(PYTHONPATH=str(ROOT), PYTHON=sys.executable)
    store = [f"paths.mlruns={tmp_path}/mlruns", f"paths.cache={tmp_path}/cache", f"++paths.derived={tmp_path}/derived",
             f"paths.reports={tmp_path}/reports",
             f"hydra.sweep.dir={tmp_path}/multirun"]
    p = subprocess.run(["bash", str(ROOT / "multirun.sh"), "BUDGET=quick", "MODELS=fcn", "SEEDS=1", "SWEEP_ID=quick-test",
                        f"OOD=carnatic={CARNATIC}", "dataset=gtzan", f"dataset.root={GTZAN_MINI}", *store],
                       env=env, capture_output=True, text=True, timeout=1500, cwd=tmp_path)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    assert "11 of 11 parts filled" in p.stdout or "10 of 11 parts filled" in p.stdout, p.stdout[-2000:]
    page_path = tmp_path / "reports" / "quick-test" / "paper.html"
    html = page_path.read_text()
    n_audio = html.count("<audio ")
    assert n_audio >= 1
    assert "Dreams judged as their target" in html  # the sweep's transfer test under Figure 4
    # the report again on the same store (dreams' audio included): the same bytes, no new summary run
    again = subprocess.run([sys.executable, "-m", "lab.report", "--paper", "--sweep-id", "quick-test", *store[:4]],
                           env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0 and "nothing logged" in again.stdout, (again.stdout[-1500:], again.stderr[-1500:])
    assert page_path.read_text() == html
    with browser_page(width=1280, height=1000) as page:
        errors = console_errors(page)
        page.goto(page_path.as_uri())
        ids = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
        assert ids[:7] == ["figure-1", "figure-2", "table-1", "figure-3", "table-2", "figure-4", "figure-5"]
        imgs = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
        assert imgs and all(ok and w > 0 for ok, w in imgs)
        playable = page.evaluate("""async () => Promise.all([...document.querySelectorAll('audio')].map(a =>
            new Promise(done => { if (a.readyState >= 1) return done([a.canPlayType('audio/ogg'), a.duration]);
                a.addEventListener('loadedmetadata', () => done([a.canPlayType('audio/ogg'), a.duration]));
                a.addEventListener('error', () => done(['error', 0])); a.load(); })))""")
        assert len(playable) == n_audio and all(kind in ("maybe", "probably") and dur > 1 for kind, dur in playable)
        page.screenshot(path=str(artifact_dir() / "paper_quick.png"), full_page=False)
        rows = page.eval_on_selector_all("#table-1 table:first-of-type tr", "rs => rs.map(r => [...r.cells].map(c => c.innerText))")
    assert not errors, errors
    # Table 1 on the page = the seed mean of the runs' logged accuracy, per (k, model, clusterer)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("clustering").experiment_id], "tags.sweep_id = 'quick-test'")
    header, body = rows[0], rows[1:]
    for r in body:
        cell = dict(zip(header, r))
        for clusterer, col in (("kmeans", "K-Means"), ("gmm", "GMM")):
            want = [x.data.metrics["accuracy"] for x in runs if x.data.tags["k"] == cell["# Clusters"]
                    and x.data.tags["clusterer"] == clusterer and _label(x.data.tags) == cell["Model"]]
            if want:
                assert float(cell[col].split()[0]) == pytest.approx(np.mean(want), abs=5e-4), (cell, want)
    assert {"FCN", "FCN (random)"} <= {dict(zip(header, r))["Model"] for r in body}  # the baseline is its own row


def _label(tags: dict) -> str:
    from lab.stats.tables import run_label

    return run_label(tags)


def test_a_dream_encodes_to_the_same_ogg_bytes_every_time_and_the_checksums_are_libogg_s():
    """libsndfile draws a random Ogg serial per file; the page must not change when the store has not."""
    y = (0.1 * np.random.default_rng(0).standard_normal(16000 * 3)).astype("float32")
    wav = io.BytesIO()
    sf.write(wav, y, 16000, format="WAV")
    raw = io.BytesIO()
    sf.write(raw, y, 16000, format="OGG", subtype="VORBIS")
    raw = raw.getvalue()
    # recomputing every page's CRC with the file's own serial gives back libsndfile's bytes exactly
    assert fixed_serial(raw, int.from_bytes(raw[14:18], "little")) == raw
    first, second = ogg(wav.getvalue()), ogg(wav.getvalue())
    assert first == second and first[14:18] == (1).to_bytes(4, "little")
    back, sr = sf.read(io.BytesIO(first), dtype="float32")
    assert sr == 16000 and back.shape == y.shape
