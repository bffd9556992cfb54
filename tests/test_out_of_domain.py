"""experiment=out_of_domain: extra sets from folders (flat, nested, long, too short, clashing), and one real job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lab.core.errors import LabError
from lab.datasets.folder import load_folder
from lab.studies.out_of_domain.experiment import SetSpec, build_sets, joint_dataset, parse_sets
from lab.studies.out_of_domain.report import report_table

from conftest import CARNATIC, GTZAN_MINI, WEIGHTS, need

SR = 22050
GENRES = ["blues", "rock"]


def tone(path: Path, seconds: float, *, freq: float = 440.0, seed: int = 0) -> Path:
    """A sine with a little noise (never silent), written as 16-bit WAV."""
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
    return path


def reference(tmp_path: Path):
    """A two-genre reference folder (ref/blues, ref/rock), 12-s clips."""
    for g in GENRES:
        for i in range(2):
            tone(tmp_path / "ref" / g / f"{g}.{i}.wav", 12, freq=200 + 100 * i)
    return load_folder(tmp_path / "ref", name="ref")


def sets_of(specs, **kw):
    return build_sets(specs, clip_seconds=kw.get("clip_seconds", 30.0), min_clip_seconds=kw.get("min_clip_seconds", 10.0),
                      extensions=["wav"])


def test_flat_and_nested_folders_each_become_one_labelled_set(tmp_path):
    tone(tmp_path / "flat" / "a.wav", 12)
    tone(tmp_path / "flat" / "b.wav", 15)
    tone(tmp_path / "nested" / "concert1" / "x.wav", 12)
    tone(tmp_path / "nested" / "concert2" / "disc1" / "y.wav", 12)
    tone(tmp_path / "nested" / "z.wav", 12)
    ref = reference(tmp_path)
    specs = parse_sets({"flat": str(tmp_path / "flat"), "nested": str(tmp_path / "nested")},
                       reference_labels=ref.labels, reference_name=ref.name)
    sets, dropped = sets_of(specs)
    assert dropped == []
    joint = joint_dataset(ref, sets)
    by_label = {}
    for c in joint.clips:
        by_label.setdefault(c.label, []).append(c)
    assert sorted(by_label) == ["blues", "flat", "nested", "rock"]  # genres kept, every set item labelled by its set
    assert len(by_label["flat"]) == 2 and len(by_label["nested"]) == 3
    assert {Path(c.path).name for c in by_label["nested"]} == {"x.wav", "y.wav", "z.wav"}
    assert all(c.part == "nested" and c.id.startswith("nested:") for c in by_label["nested"])
    assert {c.part for c in by_label["blues"]} == {"ref"}


def test_long_recording_is_cut_into_clips_that_keep_source_and_offset(tmp_path):
    # 10-s clips keep the audio small; the cutting rule is the same at 30 s.
    tone(tmp_path / "concert" / "raga.wav", 42)  # 4 x 10 s + a 2-s tail, dropped (< 4 s)
    tone(tmp_path / "concert" / "short_tail.wav", 15)  # 10 s + a 5-s tail, kept
    ref = reference(tmp_path)
    specs = parse_sets({"carnatic": str(tmp_path / "concert")}, reference_labels=ref.labels, reference_name="ref")
    sets, dropped = sets_of(specs, clip_seconds=10, min_clip_seconds=4)
    clips = sets["carnatic"].clips
    raga = [c for c in clips if c.path.endswith("raga.wav")]
    assert [c.offset for c in raga] == [0.0, 10.0, 20.0, 30.0]
    assert all(c.duration == pytest.approx(10.0) for c in raga)
    assert len({c.source_id for c in raga}) == 1 and len({c.id for c in raga}) == 4
    tail = [c for c in clips if c.path.endswith("short_tail.wav")]
    assert [c.offset for c in tail] == [0.0, 10.0] and tail[1].duration == pytest.approx(5.0)
    assert dropped == []
    ds = sets["carnatic"]
    # The cache key covers the excerpt: four clips of one file, four fingerprints.
    assert len({ds.fingerprint(c) for c in raga}) == 4
    y = ds.load(raga[1], 16000)
    assert len(y) == pytest.approx(10 * 16000, abs=2)


def test_file_shorter_than_the_clip_minimum_is_skipped_with_its_reason(tmp_path):
    tone(tmp_path / "gaana" / "ok.wav", 30)
    tone(tmp_path / "gaana" / "jingle.wav", 4)
    ref = reference(tmp_path)
    sets, dropped = sets_of(parse_sets({"gaana": str(tmp_path / "gaana")}, reference_labels=ref.labels, reference_name="ref"))
    assert [Path(c.path).name for c in sets["gaana"].clips] == ["ok.wav"]
    (row,) = dropped
    assert row["set"] == "gaana" and row["path"].endswith("jingle.wav") and row["reason"] == "too_short"
    assert "4.00 s" in row["detail"] and "10" in row["detail"]
    with pytest.raises(LabError, match=r"set 'gaana' .* gives no clip of at least 60 s"):
        sets_of([SetSpec("gaana", str(tmp_path / "gaana"))], clip_seconds=60, min_clip_seconds=60)
    with pytest.raises(LabError, match=r"min_clip_seconds=40 must be in \(0, clip_seconds=30\]"):
        sets_of([SetSpec("gaana", str(tmp_path / "gaana"))], min_clip_seconds=40)


def test_clashing_names_are_one_sentence(tmp_path):
    tone(tmp_path / "a" / "x.wav", 12)
    tone(tmp_path / "b" / "x.wav", 12)
    ref = dict(reference_labels=GENRES, reference_name="gtzan")
    with pytest.raises(LabError, match=r"^set name 'carnatic' clashes with set 'Carnatic'; give the set another name$"):
        parse_sets({"Carnatic": str(tmp_path / "a"), "carnatic": str(tmp_path / "b")}, **ref)
    with pytest.raises(LabError, match=r"^set name 'Rock' clashes with reference genre 'rock'"):
        parse_sets({"Rock": str(tmp_path / "a")}, **ref)
    with pytest.raises(LabError, match=r"clashes with the reference dataset 'gtzan'"):
        parse_sets({"gtzan": str(tmp_path / "a")}, **ref)
    with pytest.raises(LabError, match=r"parents names 'gaana', which is neither another set nor a reference genre"):
        parse_sets({"fusion": {"root": str(tmp_path / "a"), "parents": ["gaana", "rock"]}}, **ref)
    with pytest.raises(LabError, match=r"ood.carnatic=.*nowhere is not a folder"):
        parse_sets({"carnatic": str(tmp_path / "nowhere")}, **ref)
    with pytest.raises(LabError, match=r"needs at least one extra set, e.g. \+ood.carnatic="):
        parse_sets({}, **ref)
    ok = parse_sets({"carnatic": str(tmp_path / "a"), "cr": {"root": str(tmp_path / "b"), "parents": ["carnatic", "rock"]}}, **ref)
    assert ok[1].parents == ("carnatic", "rock")


def test_reference_songs_can_be_held_out_and_a_typo_is_one_sentence():
    from lab.datasets.base import Clip, Dataset
    from lab.studies.out_of_domain.experiment import hold_out

    clips = [Clip(f"{g}/{g}.0000{i}.wav", g, f"/x/{g}{i}.wav") for g in ("rock", "blues") for i in range(4)]
    ref = Dataset("gtzan", clips)
    left, held = hold_out(ref, ["rock/rock.0000[0-1].wav"])
    assert held == ["rock/rock.00000.wav", "rock/rock.00001.wav"] and len(left.clips) == 6
    assert [c.id for c in left.clips if c.label == "rock"] == ["rock/rock.00002.wav", "rock/rock.00003.wav"]
    assert hold_out(ref, [])[0] is ref
    with pytest.raises(LabError, match="matches no clip"):
        hold_out(ref, ["rock/rock.0001.wav"])
    with pytest.raises(LabError, match="leaves 1 song"):
        hold_out(ref, ["rock/rock.0000[0-2].wav"])


def test_both_override_forms_compose(compose_cfg, tmp_path):
    short = compose_cfg("experiment=out_of_domain", f"+ood.carnatic={tmp_path}")
    assert dict(short.ood) == {"carnatic": str(tmp_path)}
    full = compose_cfg("experiment=out_of_domain", f"ood={{carnatic: {tmp_path}, cr: {{root: {tmp_path}, parents: [carnatic, rock]}}}}")
    assert list(full.ood.cr.parents) == ["carnatic", "rock"]


@pytest.mark.slow
def test_gtzan_mini_plus_carnatic_and_a_mashup_fusion_end_to_end(compose_cfg, tmp_path):
    """The real job: fcn on gtzan_mini + three Carnatic clips + three Carnatic/rock mashups (declared a fusion).

    The mashups' own sources sit on neither parent's side: their rock songs are held out of the GTZAN
    reference (experiment.exclude_reference) and their Carnatic recordings are not in the Carnatic set,
    so the fusion position is measured against centroids of other songs, not of the mashups' own audio.
    """
    from mlflow.tracking import MlflowClient

    from lab.app.task import run
    from lab.report import main as report_main
    from lab.tracking import resolve_tracking_uri, sweep_runs

    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    need(GTZAN_MINI)
    carnatic = sorted(need(CARNATIC).glob("*.wav"))
    rock = sorted((GTZAN_MINI / "genres" / "rock").glob("*.wav"))
    # Mashups (equal-loudness sums) stand in for a fusion set: the data has no Carnatic-Rock recordings.
    (tmp_path / "mashup").mkdir()
    (tmp_path / "carnatic").mkdir()
    for i in range(3):
        a, _ = sf.read(carnatic[i + 1], frames=30 * SR, dtype="float32")
        b, _ = sf.read(rock[i], frames=30 * SR, dtype="float32")
        n = min(len(a), len(b))
        mix = a[:n] / np.abs(a[:n]).max() + b[:n] / np.abs(b[:n]).max()
        sf.write(tmp_path / "mashup" / f"mix{i}.wav", 0.45 * mix, SR)
    for f in [carnatic[0], *carnatic[4:]]:  # the Carnatic set: the recordings no mashup contains
        (tmp_path / "carnatic" / f.name).symlink_to(f)
    held = [f"rock/{f.name}" for f in rock[:3]]
    cfg = compose_cfg("experiment=out_of_domain", "dataset=gtzan", f"dataset.root={GTZAN_MINI}", "experiment.umap=false",
                      "experiment.n_boot=100", "sweep_id=ood-test", f"experiment.exclude_reference=[{','.join(held)}]",
                      f"ood={{carnatic: {tmp_path / 'carnatic'}, mashup: {{root: {tmp_path / 'mashup'}, parents: [carnatic, rock]}}}}")
    scores = run(cfg)
    assert scores["carnatic.n_items"] == 3 and scores["mashup.n_items"] == 3 and scores["mashup.n_sources"] == 3
    assert scores["n_reference_held_out"] == 3
    assert -1 <= scores["carnatic.silhouette"] <= 1 and 0 <= scores["carnatic.knn_self_share"] <= 1
    assert np.isfinite(scores["mashup.position"]) and scores["mashup.offset"] >= 0
    assert scores["mashup.position_lo"] <= scores["mashup.position"] <= scores["mashup.position_hi"]
    client = MlflowClient(resolve_tracking_uri(cfg))
    (r,) = client.search_runs([client.get_experiment_by_name("out_of_domain").experiment_id])
    assert r.info.status == "FINISHED" and r.data.tags["ood_sets"] == "carnatic,mashup"
    assert r.data.tags["ood.mashup.parents"] == "carnatic + rock"
    names = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"tsne.png", "placement.csv", "centroid_distances.csv", "items.csv", "placement.md", "embeddings.npz",
            "excluded_reference.csv"} <= names
    ids = set(np.load(client.download_artifacts(r.info.run_id, "embeddings.npz", str(tmp_path)))["ids"].tolist())
    assert not ids & {f"gtzan:{h}" for h in held} and not any(h in i for h in held for i in ids)  # really held out
    # The report's side-by-side table reads the same numbers back from MLflow.
    _, runs = sweep_runs(resolve_tracking_uri(cfg), "out_of_domain", "ood-test")
    table = report_table(runs)
    assert list(table.set) == ["carnatic", "mashup"] and list(table.model) == ["fcn", "fcn"]
    assert table.loc[1, "fusion position [90% CI]"].startswith(f"{scores['mashup.position']:.2f} [")
    out = tmp_path / "report"
    assert report_main(["--experiment", "out_of_domain", "--sweep-id", "ood-test", "--tracking-uri", resolve_tracking_uri(cfg),
                        "--out", str(out)]) == 0
    assert "| fcn | carnatic | 3 (3) |" in (out / "out_of_domain.md").read_text()


def test_map_highlights_sets_and_names_fusion_parents():
    from lab.stats.plots import placement_map

    rng = np.random.default_rng(0)
    labels = ["rock"] * 5 + ["blues"] * 5 + ["carnatic"] * 4 + ["mashup"] * 3
    fig = placement_map(rng.normal(size=(len(labels), 2)), labels, ["carnatic", "mashup"], title="t",
                        parents={"mashup": ("carnatic", "rock")})
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["blues", "rock", "carnatic (4)", "mashup (fusion of carnatic + rock) (3)"]
    bold = {t.get_text() for t in ax.texts if t.get_fontweight() == "bold"}
    assert bold == {"carnatic", "rock"}  # the parents are named on the map
    assert [c.get_sizes()[0] for c in ax.collections[-2:]] == [70, 70]  # sets drawn large, on top


def test_place_and_table_on_synthetic_embeddings():
    from lab.studies.out_of_domain.experiment import place
    from lab.studies.out_of_domain.report import table_rows

    rng = np.random.default_rng(0)
    ring = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    X = np.concatenate([ring, ring + [10, 0], ring + [0, 10], 0.5 * ring + [5, 0], ring + [-30, -30]])
    labels = np.array(["rock"] * 4 + ["jazz"] * 4 + ["blues"] * 4 + ["fusion"] * 4 + ["gaana"] * 4)
    names = ["genre---rock", "genre---world", "mood---happy"]
    tags = rng.uniform(size=(len(X), 3))
    tags[labels == "gaana", 1] = 2.0  # every gaana item's top tag is world
    specs = [SetSpec("gaana", "/g"), SetSpec("fusion", "/f", ("rock", "jazz"))]
    metrics, rows, dist = place(X, labels, tags, names, specs, ["blues", "jazz", "rock"], k=3, top=2, per_item=1,
                                watch=["genre---world"], n_boot=50, n_perm=99, seed=0, n_sources={"gaana": 2, "fusion": 4})
    assert metrics["fusion.position"] == pytest.approx(0.5) and metrics["fusion.offset"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["gaana.knn_self_share"] == 1.0 and metrics["gaana.knn_self_share_p"] == pytest.approx(0.01)
    assert metrics["gaana.tag_rank.genre---world"] == 1.0 and metrics["gaana.n_sources"] == 2
    assert [r["set"] for r in rows] == ["gaana", "fusion", "blues", "jazz", "rock"]
    assert [d["genre"] for d in dist if d["set"] == "gaana"] == ["rock", "blues", "jazz"]  # 42.4, then a tie at 50.0 kept in reference order
    table = table_rows(rows, model="fcn")
    assert list(table["clips (recordings)"]) == ["4 (2)", "4 (4)"]
    assert table.loc[1, "fusion position [90% CI]"].startswith("0.50 [") and table.loc[1, "off segment"] == "0.00"
    assert table.loc[0, "watched tags (median rank)"] == "genre---world 1"


@pytest.mark.parametrize("override, message", [
    ("experiment.knn=0", "experiment.knn=0 must be an integer >= 1"),
    ("experiment.n_boot=0", "experiment.n_boot=0 must be an integer >= 1"),
    ("experiment.clip_seconds=-5", "experiment.clip_seconds=-5 must be a positive number of seconds"),
    ("experiment.min_clip_seconds=40", "experiment.min_clip_seconds=40 must be in (0, clip_seconds=30]"),
    ("+ood.Rock=.", "set name 'Rock' clashes with reference genre 'rock'; give the set another name"),
    ("seed=0", "experiment=out_of_domain needs at least one extra set, e.g. +ood.carnatic=../shared/music/carnatic"),
])
def test_bad_options_stop_before_any_run(compose_cfg, tmp_path, override, message):
    from lab.app.task import run

    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    need(GTZAN_MINI)
    extra = ["+ood.carnatic=."] if override.startswith("experiment.") else []  # a valid set beside a bad option
    cfg = compose_cfg("experiment=out_of_domain", "dataset=gtzan", f"dataset.root={GTZAN_MINI}", override, *extra)
    with pytest.raises(LabError) as err:
        run(cfg)
    assert str(err.value) == message
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # no MLflow run was opened
