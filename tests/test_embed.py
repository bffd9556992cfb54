"""Windowing, cache reuse and cache atomicity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lab.datasets.folder import load_folder
from lab.extract.cache import EmbeddingCache, cache_key
from lab.extract.embed import IssueKind, extract
from lab.extract.windows import frame_windows
from lab.models import build


def test_frame_windows_drops_the_tail_and_pads_short_clips():
    w, pad = frame_windows(np.arange(25, dtype=np.float32), 10)
    assert w.shape == (2, 10) and not pad and w[1, 0] == 10
    w, pad = frame_windows(np.ones(4, dtype=np.float32), 10)
    assert w.shape == (1, 10) and pad and w[0, 4:].sum() == 0


@pytest.fixture
def tiny_folder(tmp_path):
    """Two labels, real-looking decodable clips plus one broken file, at 22.05 kHz."""
    rng = np.random.default_rng(0)
    for label, hz in (("low", 110.0), ("high", 1760.0)):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(2):
            t = np.arange(int(4.0 * 22050)) / 22050
            y = 0.3 * np.sin(2 * np.pi * hz * (1 + 0.01 * i) * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(tmp_path / "data" / label / f"{label}{i}.wav", y, 22050)
    (tmp_path / "data" / "low" / "broken.wav").write_bytes(b"")
    return load_folder(tmp_path / "data")


def test_extract_uses_cache_on_second_run_and_reports_skips(tiny_folder, tmp_path):
    model, wid = build("sample", pretrained=False)
    first = extract(tiny_folder, model, weights_id=wid, cache_dir=tmp_path / "cache", batch_size=3, progress=False)
    assert (first.hits, first.misses) == (0, 4)
    assert [(i.clip.id, i.reason) for i in first.skipped] == [("low/broken.wav", "empty")]
    assert first.X.shape == (4, 512) and list(first.n_windows) == [1, 1, 1, 1]  # 4 s holds one 59049-sample window
    second = extract(tiny_folder, model, weights_id=wid, cache_dir=tmp_path / "cache", batch_size=1, progress=False)
    assert (second.hits, second.misses) == (4, 0)
    np.testing.assert_allclose(second.X, first.X, rtol=1e-5, atol=1e-6)
    # another weights id (e.g. another checkpoint) never reuses these entries
    third = extract(tiny_folder, model, weights_id="other", cache_dir=tmp_path / "cache", batch_size=4, progress=False)
    assert third.hits == 0


def test_short_clip_is_padded_to_one_window_and_noted(tiny_folder, tmp_path):
    model, wid = build("hcnn", pretrained=False)  # 5 s windows; clips are 4 s
    emb = extract(tiny_folder, model, weights_id=wid, cache_dir=None, progress=False)
    assert len(emb.padded) == 4 and list(emb.n_windows) == [1, 1, 1, 1]
    assert {i.kind for i in emb.padded} == {IssueKind.PADDED} and emb.padded[0].reason == "shorter_than_window"


def test_cache_write_is_atomic_when_interrupted(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path, "fcn")
    cache.put("ab" * 32, {"window_embeddings": np.ones((1, 3))})

    def boom(*a, **k):
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.put("cd" * 32, {"window_embeddings": np.ones((1, 3))})
    files = sorted(p.name for p in Path(tmp_path).rglob("*") if p.is_file())
    assert files == ["ab" * 32 + ".npz"]  # no half file, no leftover temp file
    assert cache.get("cd" * 32) is None


def test_damaged_cache_entry_is_recomputed(tmp_path):
    cache = EmbeddingCache(tmp_path, "fcn")
    p = cache.path("ef" * 32)
    p.parent.mkdir(parents=True)
    p.write_bytes(b"not an npz")
    assert cache.get("ef" * 32) is None


def test_cache_key_changes_with_the_audio_bytes(tiny_folder, tmp_path):
    clip = tiny_folder.clips[1]  # high/high1.wav (broken.wav sorts first in low/, then low0, low1)
    facts = dict(model="sample", weights_id="w", sr=16000, input_length=59049)
    before = cache_key(fingerprint=tiny_folder.fingerprint(clip), **facts)
    assert cache_key(fingerprint=tiny_folder.fingerprint(clip), **facts) == before  # stable
    y, sr = sf.read(clip.path)
    sf.write(clip.path, y * 0.5, sr)  # same file name, other samples
    assert cache_key(fingerprint=tiny_folder.fingerprint(clip), **facts) != before


def test_cache_entry_made_with_other_facts_is_recomputed(tiny_folder, tmp_path):
    model, wid = build("sample", pretrained=False)
    extract(tiny_folder, model, weights_id=wid, cache_dir=tmp_path / "cache", progress=False)
    cache = EmbeddingCache(tmp_path / "cache", "sample")
    entries = sorted((tmp_path / "cache" / "sample").rglob("*.npz"))
    with np.load(entries[0]) as z:
        arrays = dict(z)
    arrays["sample_rate"] = np.array(22050)  # as if written by a run at another rate under this key
    cache.put(entries[0].stem, arrays)
    again = extract(tiny_folder, model, weights_id=wid, cache_dir=tmp_path / "cache", progress=False)
    assert (again.hits, again.misses) == (3, 1)


def test_extraction_pooled_mean_matches_the_golden_mean_embedding():
    """extract() end to end (windowing, batching, optimized copy, pooling) against the reference means."""
    from lab.datasets.base import Clip, Dataset

    from conftest import REFERENCE, WEIGHTS, need

    need(WEIGHTS / "jamendo" / "musicnn" / "best_model.pth")

    class Golden(Dataset):
        def load(self, clip, sr):
            return np.load(REFERENCE / "golden" / "inputs" / f"{clip.id}.npy")

        def fingerprint(self, clip):
            return clip.id

    ds = Golden(name="golden", clips=[Clip(id=i, label=i, path=i) for i in ("noise", "tones", "music")])
    for name in ("fcn", "musicnn"):  # one window per clip, and ten
        model, wid = build(name, weights_dir=WEIGHTS)
        emb = extract(ds, model, weights_id=wid, cache_dir=None, progress=False)
        for i, clip in enumerate(emb.clips):
            want = np.load(REFERENCE / "golden" / name / f"{clip.id}_mean_embedding.npy")
            np.testing.assert_allclose(emb.X[i], want, rtol=1e-4, atol=1e-4, err_msg=f"{name}/{clip.id}")
            np.testing.assert_allclose(emb.windows[i], np.load(REFERENCE / "golden" / name / f"{clip.id}_window_embeddings.npy"),
                                       rtol=1e-4, atol=1e-4)
        assert list(emb.n_windows) == ([1, 1, 1] if name == "fcn" else [10, 10, 10])
