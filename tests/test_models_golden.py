"""Every tagger against the reference implementation's outputs (``../shared/reference/golden``).

fcn, musicnn and crnn load the real checkpoints; attention, hcnn, sample and se load the
deterministic synthetic weights of the golden README (their checkpoints are not available here).
All windows of one 30 s input run as one batch, as in the reference run.

Tolerances: embeddings, trunk vectors and tag probabilities ``rtol=atol=1e-4`` (the reference
README's suggestion; we reach <= ~1e-5, see docs/models.md "Numerical agreement"); spectrogram dB
``atol=1e-2`` dB (``torch.stft`` + the checkpoint's mel matrix reproduce it to float32 rounding).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lab.models import REGISTRY, build, model_class
from lab.models.synthetic import read_manifest, synthetic_state_dict
from lab.models.weights import load_strict

from conftest import REFERENCE, WEIGHTS, need

REAL = ["fcn", "musicnn", "crnn"]
SYNTHETIC = ["attention", "hcnn", "sample", "se"]
INPUTS = ["noise", "tones", "music"]
TOL = dict(rtol=1e-4, atol=1e-4)
# What the reference run saved beside the embeddings (golden README): every one of these is checked,
# none is optional: a missing file fails the test instead of silently skipping the check.
TRUNK = {"musicnn", "attention", "hcnn", "se"}  # models whose head has a hidden layer
SPECTROGRAM = {"fcn": "logmel", "attention": "logmel", "hcnn": "harmonic_db"}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_state_dict_layout_matches_reference_manifest(name):
    need(REFERENCE / "state_dicts" / f"{name}.json")
    manifest = json.loads((REFERENCE / "state_dicts" / f"{name}.json").read_text())
    model = model_class(name)()
    got = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
    assert got == manifest


def _golden_model(name: str):
    if name in REAL:
        need(WEIGHTS / "jamendo" / name / "best_model.pth")
        model, _ = build(name, weights_dir=WEIGHTS)
        return model, REFERENCE / "golden" / name
    manifest = read_manifest(REFERENCE / "state_dicts" / f"{name}.json")
    model = model_class(name)()
    load_strict(model, synthetic_state_dict(name, manifest), "synthetic")
    return model.eval(), REFERENCE / "golden" / "synthetic" / name


@pytest.mark.parametrize("name", REAL + SYNTHETIC)
def test_outputs_match_reference(name):
    need(REFERENCE / "golden" / "manifest.json")
    model, gdir = _golden_model(name)
    L = model.info.input_length
    for inp in INPUTS:
        x = np.load(REFERENCE / "golden" / "inputs" / f"{inp}.npy")
        n = len(x) // L
        windows = torch.from_numpy(x[: n * L].reshape(n, L))
        with torch.inference_mode():
            out = model.forward_features(windows)
        emb = out["embedding"].numpy()
        np.testing.assert_allclose(emb, np.load(gdir / f"{inp}_window_embeddings.npy"), **TOL, err_msg=f"{name}/{inp} window embeddings")
        np.testing.assert_allclose(emb.astype(np.float64).mean(0), np.load(gdir / f"{inp}_mean_embedding.npy"), **TOL, err_msg=f"{name}/{inp} mean")
        np.testing.assert_allclose(out["tags"].numpy(), np.load(gdir / f"{inp}_tags.npy"), **TOL, err_msg=f"{name}/{inp} tags")
        if name in TRUNK:
            trunk = gdir / f"{inp}_trunk_embeddings.npy"
            np.testing.assert_allclose(out["trunk"].numpy(), np.load(trunk), **TOL, err_msg=f"{name}/{inp} trunk")
        if name in SPECTROGRAM:
            fname = f"{inp}_first_window_{SPECTROGRAM[name]}.npy"
            with torch.inference_mode():
                db = model.frontend(windows[:1])[0].numpy()
            np.testing.assert_allclose(db, np.load(gdir / fname), rtol=0, atol=1e-2, err_msg=f"{name}/{fname}")


def test_float64_stft_is_within_the_golden_tolerance_on_music_and_further_off_on_a_pure_tone():
    """What float32 FFT rounding alone does (the reason a GPU's cuFFT cannot match the goldens to
    1e-4 on every input; docs/extraction.md "GPU"): on the golden music input a float64 STFT moves fcn's outputs
    inside the tolerance, but on a pure tone, whose bins are nearly all sidelobes far under the
    peak, the dB of those quiet bins amplifies the rounding past it. The switch is undone after."""
    from lab.models.frontend import _Spectrogram, exact_stft

    model, _ = _golden_model("fcn")
    L = model.info.input_length
    music = np.load(REFERENCE / "golden" / "inputs" / "music.npy")[:L]
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(L) / model.info.sample_rate)
    with torch.inference_mode():
        w = torch.from_numpy(np.stack([music, tone]).astype(np.float32))
        fp32 = model.embed_and_tag(w)[0]
        with exact_stft(model):
            exact = model.embed_and_tag(w)[0]
    d_music, d_tone = (fp32 - exact).abs().amax(1).tolist()
    assert 0 < d_music < 1e-4
    assert d_tone > 1e-4
    assert not any(m.float64 for m in model.modules() if isinstance(m, _Spectrogram))
