"""Datasets from config, composite / excerpt / transformed datasets, and a study that needs two of them."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from lab.core.errors import LabError
from lab.datasets import CompositeDataset, ExcerptDataset, TransformedDataset, build_dataset
from lab.datasets.base import Dataset
from lab.datasets.folder import load_folder
from lab.datasets.gtzan import load_gtzan

from conftest import CARNATIC, GTZAN_MINI, WEIGHTS, need


def _tone(path, seconds: float, sr: int = 16000, hz: float = 440.0) -> None:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t), sr)


def test_every_dataset_config_builds_through_its_target(compose_cfg, tmp_path):
    (tmp_path / "f" / "x").mkdir(parents=True)
    _tone(tmp_path / "f" / "x" / "a.wav", 2)
    assert build_dataset(compose_cfg("dataset=synth", "dataset.n_per_class=1").dataset).name == "synth"
    ds = build_dataset(compose_cfg("dataset=folder", f"dataset.root={tmp_path / 'f'}", "dataset.name=mine").dataset)
    assert (ds.name, [c.id for c in ds.clips]) == ("mine", ["x/a.wav"])
    need(GTZAN_MINI)
    assert len(build_dataset(compose_cfg("dataset=gtzan", f"dataset.root={GTZAN_MINI}").dataset).clips) == 50


def test_flat_and_nested_folders(tmp_path):
    flat = tmp_path / "concerts"
    flat.mkdir()
    _tone(flat / "one.wav", 2)
    (flat / "live" / "deep").mkdir(parents=True)
    _tone(flat / "live" / "deep" / "two.wav", 2)
    ds = load_folder(flat)
    assert [(c.id, c.label) for c in ds.clips] == [("one.wav", "concerts"), ("live/deep/two.wav", "live")]


def test_composite_of_gtzan_mini_and_carnatic_keeps_labels_parts_and_source_ids():
    need(GTZAN_MINI), need(CARNATIC)
    both = CompositeDataset("joint", {"gtzan": load_gtzan(GTZAN_MINI), "carnatic": load_folder(CARNATIC)},
                            label_by={"gtzan": "label", "carnatic": "part"})
    assert len(both.clips) == 56
    labels = {c.label for c in both.clips}
    assert labels == {"blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock", "carnatic"}
    jazz = next(c for c in both.clips if c.id == "gtzan:jazz/jazz.00001.wav")
    assert (jazz.part, jazz.source_id, jazz.label) == ("gtzan", "gtzan:jazz/jazz.00001.wav", "jazz")
    # loading and fingerprints are the part's own
    assert both.fingerprint(jazz) == load_gtzan(GTZAN_MINI).fingerprint(next(c for c in load_gtzan(GTZAN_MINI).clips if c.id == "jazz/jazz.00001.wav"))


def test_excerpts_cut_long_files_and_skip_short_ones_with_a_reason(tmp_path):
    (tmp_path / "set").mkdir()
    _tone(tmp_path / "set" / "long.wav", 75)  # 30 + 30 + 15
    _tone(tmp_path / "set" / "tiny.wav", 4)
    ex = ExcerptDataset(load_folder(tmp_path / "set"), seconds=30, min_seconds=10)
    assert [(c.id, c.offset, c.duration, c.source_id) for c in ex.clips] == [
        ("long.wav@0s", 0.0, 30.0, "long.wav"), ("long.wav@30s", 30.0, 30.0, "long.wav"), ("long.wav@60s", 60.0, 15.0, "long.wav")]
    assert [(c.id, r) for c, r, _ in ex.skipped] == [("tiny.wav", "too_short")]
    # each excerpt decodes its own part and has its own cache identity
    y = ex.load(ex.clips[2], 16000)
    assert len(y) == 15 * 16000
    assert len({ex.fingerprint(c) for c in ex.clips}) == 3


class _Gain:
    key = "gain-x0.5"

    def __call__(self, y, sr, clip):
        return 0.5 * y


def test_transformed_dataset_keeps_ids_and_changes_the_fingerprint(tmp_path):
    (tmp_path / "a").mkdir()
    _tone(tmp_path / "a" / "s.wav", 2)
    base = load_folder(tmp_path)
    shifted = TransformedDataset(base, _Gain())
    (c0,), (c1,) = base.clips, shifted.clips
    assert c1.id == c0.id and c1.source_id == c0.id
    assert shifted.fingerprint(c1) != base.fingerprint(c0)
    np.testing.assert_allclose(shifted.load(c1, 16000), 0.5 * base.load(c0, 16000))


def test_composite_rejects_bad_label_rule():
    with pytest.raises(LabError, match="label_by='genre' must be 'part' or 'label'"):
        CompositeDataset("x", {"a": Dataset(name="e", clips=[])}, label_by="genre")


def test_a_study_needing_two_datasets_and_the_model_in_one_module(compose_cfg):
    """What a new experiment writes: compose GTZAN-mini + Carnatic, embed once with the plain model,
    match items by source id — no pipeline change needed."""
    need(GTZAN_MINI), need(CARNATIC), need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    from lab.extract.pipeline import build_model, embed

    cfg = compose_cfg("dataset=gtzan", f"dataset.root={GTZAN_MINI}")
    joint = CompositeDataset("joint", {"gtzan": build_dataset(cfg.dataset), "carnatic": ExcerptDataset(load_folder(CARNATIC), seconds=30)},
                             label_by={"gtzan": "label", "carnatic": "part"})
    loaded = build_model(cfg)
    emb = embed(cfg, joint, loaded)
    assert loaded.model.training is False and len(loaded.tag_names) == emb.tags.shape[1] == 50
    carnatic = [i for i, c in enumerate(emb.clips) if c.part == "carnatic"]
    assert len(emb.clips) == 50 + len(carnatic) and len(carnatic) >= 6
    assert {emb.clips[i].source_id.split("@")[0] for i in carnatic} == {f"carnatic:{p.name}" for p in CARNATIC.glob("*.wav")}
    assert emb.X.shape == (len(emb.clips), 64) and np.isfinite(emb.X).all()
    # the same song's window embeddings average to its row
    np.testing.assert_allclose(emb.windows[0].mean(0), emb.X[0], rtol=1e-5, atol=1e-6)
