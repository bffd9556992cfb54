"""Training corpus as a model option, and the checkpoint search path (issue 12 part A, issue 11 item 1).

Goldens for the MTAT and MSD checkpoints come from the original classes, same inputs and recipe as
the Jamendo goldens (``../shared/reference/golden/{mtat,msd}/``); tolerance as in
``test_models_golden.py``: ``rtol=atol=1e-4`` on window embeddings, mean embeddings and tags.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from lab.core.errors import LabError
from lab.extract.cache import cache_key
from lab.models import build, tag_names
from lab.models.weights import CORPORA, KNOWN_SHA256, file_sha256, search_path

from conftest import REFERENCE, ROOT, SHARED, WEIGHTS, need

TOL = dict(rtol=1e-4, atol=1e-4)
INPUTS = ["noise", "tones", "music"]


def _corpus_goldens() -> list[tuple[str, str]]:
    manifest = REFERENCE / "golden" / "corpora_manifest.json"
    if not manifest.is_file():
        return [("mtat", "fcn")]  # the test then skips with the reason
    return sorted({tuple(k.split("/")[:2]) for k in json.loads(manifest.read_text())})


def test_known_sha256_table_matches_the_shared_sums():
    sums = need(WEIGHTS / "SHA256SUMS").read_text().split("\n")
    listed = {tuple(p.split("/")[:2]): h for h, p in (line.split() for line in sums if line.strip())}
    assert listed == KNOWN_SHA256


@pytest.mark.parametrize("corpus,name", _corpus_goldens())
def test_corpus_checkpoint_matches_reference(corpus, name):
    gdir = need(REFERENCE / "golden" / corpus / name)
    need(WEIGHTS / corpus / name / "best_model.pth")
    model, weights_id = build(name, corpus=corpus, weights_dir=WEIGHTS)
    assert weights_id == KNOWN_SHA256[(corpus, name)]
    L = model.info.input_length
    for inp in INPUTS:
        x = np.load(REFERENCE / "golden" / "inputs" / f"{inp}.npy")
        n = len(x) // L
        with torch.inference_mode():
            out = model.forward_features(torch.from_numpy(x[: n * L].reshape(n, L)))
        emb, tags = out["embedding"].numpy(), out["tags"].numpy()
        np.testing.assert_allclose(emb, np.load(gdir / f"{inp}_window_embeddings.npy"), **TOL, err_msg=f"{corpus}/{name}/{inp}")
        np.testing.assert_allclose(emb.astype(np.float64).mean(0), np.load(gdir / f"{inp}_mean_embedding.npy"), **TOL)
        golden_tags = np.load(gdir / f"{inp}_tags.npy")
        np.testing.assert_allclose(tags, golden_tags, **TOL, err_msg=f"{corpus}/{name}/{inp} tags")
        assert len(tag_names(corpus, WEIGHTS)) == golden_tags.shape[1]  # the tag list names every output unit


def test_tag_lists_per_corpus():
    need(WEIGHTS / "tags" / "mtat_tags.txt")
    jam = tag_names("jamendo")
    assert jam == sorted(jam) and jam == need(REFERENCE / "jamendo_tags.txt").read_text().split()
    for corpus, fname in (("mtat", "mtat_tags.txt"), ("msd", "msd_50tagList.txt")):
        stored = [t.strip() for t in (WEIGHTS / "tags" / fname).read_text().splitlines() if t.strip()]
        names = tag_names(corpus, WEIGHTS)
        assert names == stored and names != sorted(names)  # used as stored, not sorted
    assert tag_names("mtat")[:2] == ["guitar", "classical"]  # found on the search path with nothing configured


def test_corpus_errors_are_one_sentence():
    with pytest.raises(LabError, match=r"model=musicnn has no checkpoint trained on model.corpus=msd; msd has fcn, crnn"):
        build("musicnn", corpus="msd")
    with pytest.raises(LabError, match=r"model.corpus='fma' is unknown; choose one of jamendo, mtat, msd"):
        build("fcn", corpus="fma")
    with pytest.raises(LabError, match="model=hcnn has no checkpoint trained on model.corpus=mtat"):
        tag_names("mtat") and build("hcnn", corpus="mtat")


def test_config_rejects_a_missing_corpus_before_any_work(compose_cfg):
    from lab.app.config import validate

    cfg = compose_cfg("model=musicnn", "model.corpus=msd")
    assert cfg.model.checkpoint == "msd/musicnn/best_model.pth"
    with pytest.raises(LabError, match="msd has fcn, crnn"):
        validate(cfg)


def test_cache_keys_differ_per_corpus():
    need(WEIGHTS / "mtat" / "fcn" / "best_model.pth")
    ids = {c: file_sha256(WEIGHTS / c / "fcn" / "best_model.pth") for c in CORPORA if "fcn" in CORPORA[c]}
    keys = {cache_key(model="fcn", weights_id=w, fingerprint="x", sr=16000, input_length=464000) for w in ids.values()}
    assert len(set(ids.values())) == len(keys) == 3


def test_search_path_falls_through_to_shared(tmp_path, monkeypatch):
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    monkeypatch.delenv("LAB_WEIGHTS_DIR", raising=False)
    (tmp_path / "empty").mkdir()
    dirs = search_path(tmp_path / "empty")
    assert dirs[0] == tmp_path / "empty" and dirs[-1] == ROOT.parent / "shared" / "weights"
    _, wid = build("fcn", weights_dir=tmp_path / "empty")  # configured folder lacks it: the next folder has it
    assert wid == KNOWN_SHA256[("jamendo", "fcn")]
    with pytest.raises(LabError, match=r"no checkpoint for model=fcn at .*typo/jamendo/fcn/best_model.pth"):
        build("fcn", weights_dir=tmp_path / "typo")  # a named folder that does not exist is reported, not skipped
    monkeypatch.setenv("LAB_WEIGHTS_DIR", str(tmp_path / "env"))
    assert search_path(None)[0] == tmp_path / "env"


def test_truly_missing_checkpoint_lists_every_place_looked(tmp_path):
    with pytest.raises(LabError) as err:
        build("hcnn", weights_dir=tmp_path)
    msg = str(err.value)
    for d in search_path(tmp_path):
        assert str(d / "jamendo" / "hcnn" / "best_model.pth") in msg
    assert msg.count(".") <= 12 and "\n" not in msg and "model.pretrained=false" in msg


def test_fresh_clone_beside_shared_finds_checkpoints_with_no_env_var(tmp_path):
    """A copy of the repository next to a ``shared`` folder, no LAB_WEIGHTS_DIR: the checkpoints are found."""
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    clone = tmp_path / "clone"
    for part in ("lab", "conf"):
        shutil.copytree(ROOT / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "shared").symlink_to(SHARED.resolve())
    env = {k: v for k, v in os.environ.items() if k != "LAB_WEIGHTS_DIR"} | {"PYTHONPATH": str(clone)}
    out = subprocess.run([sys.executable, "-m", "lab.models"], cwd=clone, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"ok     {tmp_path / 'shared' / 'weights' / 'mtat' / 'fcn' / 'best_model.pth'}" in out.stdout
    avail = subprocess.run([sys.executable, "-m", "lab.models", "--available", "--corpus", "msd"], cwd=clone, env=env,
                           capture_output=True, text=True, timeout=120)
    assert avail.stdout.split() == ["fcn", "crnn"]


def test_table_rows_of_other_corpora_keep_one_order_whatever_the_string_hash():
    """Rows of one architecture on MTAT and MSD once swapped between processes (a set ordered them),
    so re-running the report on an unchanged store rewrote its tables."""
    code = ("from lab.stats.tables import model_order; "
            "print(model_order(['fcn@msd', 'fcn@mtat', 'handcrafted', 'fcn', 'fcn@random', 'musicnn@mtat']))")
    orders = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": str(seed)},
                             capture_output=True, text=True, check=True).stdout for seed in range(6)}
    assert orders == {"['fcn', 'fcn@mtat', 'fcn@msd', 'musicnn@mtat', 'handcrafted', 'fcn@random']\n"}
