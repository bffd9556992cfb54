"""Inference backends (ONNX Runtime, OpenVINO) against the goldens, their graph cache and fallbacks.

Each installed backend runs every model's exported graph on the first window of the golden
``music`` input; embeddings and tags must match the reference outputs within the golden tolerance
(rtol = atol = 1e-4), as the PyTorch model does in test_models_golden.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_models_golden import REAL, SYNTHETIC, TOL, _golden_model

from lab.core.errors import LabError
from lab.datasets.synth import SynthDataset
from lab.extract import backends
from lab.extract.backends import BackendModel, backend_version, load_backend
from lab.extract.embed import extract
from lab.extract.inference import InferenceEngine
from lab.models import build

from conftest import REFERENCE, need

INSTALLED = [b for b in ("onnxruntime", "openvino") if backend_version(b)]


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


# musicnn and sample (the quickest exports) always run; the other five are slow-marked: ONNX export
# plus the probe check takes 10-80 s per model on the shared 2-core machine.
FAST_GOLDEN = ("musicnn", "sample")


@pytest.mark.parametrize("backend", INSTALLED)
@pytest.mark.parametrize("name", [n if n in FAST_GOLDEN else pytest.param(n, marks=pytest.mark.slow) for n in REAL + SYNTHETIC])
def test_backend_matches_goldens_on_one_window(name, backend, graph_dir):
    need(REFERENCE / "golden" / "manifest.json")
    model, gdir = _golden_model(name)
    L = model.info.input_length
    x = np.load(REFERENCE / "golden" / "inputs" / "music.npy")[:L][None, :]
    runner, choice = load_backend(model, weights_id=f"golden-{name}", backend=backend, cache_dir=graph_dir)
    assert runner is not None and choice.backend == backend, choice.reason
    e, t = runner.embed_and_tag(torch.from_numpy(x))
    np.testing.assert_allclose(e.numpy(), np.load(gdir / "music_window_embeddings.npy")[:1], **TOL)
    np.testing.assert_allclose(t.numpy(), np.load(gdir / "music_tags.npy")[:1], **TOL)


@pytest.mark.skipif(not INSTALLED, reason="no ONNX backend installed")
def test_graph_is_exported_once_and_cached_atomically(tmp_path, monkeypatch):
    model, wid = build("sample", pretrained=False)
    backend = INSTALLED[0]
    _, first = load_backend(model, weights_id=wid, backend=backend, cache_dir=tmp_path)
    assert first.backend == backend and first.graph.endswith(".onnx")
    files = sorted(p.name for p in (tmp_path / "sample").iterdir())
    assert files == [first.graph.rsplit("/", 1)[1]]  # no temporary file left behind

    def no_export(*a, **k):
        raise AssertionError("exported again despite the cached graph")

    monkeypatch.setattr(backends, "export_onnx", no_export)
    _, again = load_backend(model, weights_id=wid, backend=backend, cache_dir=tmp_path)
    assert again.backend == backend and again.graph == first.graph
    # Other weights, another key: a new graph (and the export is attempted -> falls back here).
    _, other = load_backend(model, weights_id="random-1", backend=backend, cache_dir=tmp_path)
    assert other.backend == "torch" and "AssertionError" in other.reason


def test_missing_package_falls_back_to_torch_with_reason(monkeypatch, caplog):
    model, wid = build("sample", pretrained=False)
    monkeypatch.setattr(backends, "backend_version", lambda b: None if b == "openvino" else "1")
    runner, choice = load_backend(model, weights_id=wid, backend="openvino")
    assert runner is None and choice.backend == "torch"
    assert "openvino is not installed" in choice.reason and "openvino is not installed" in caplog.text


@pytest.mark.skipif(not INSTALLED, reason="no ONNX backend installed")
def test_disagreeing_backend_falls_back_to_torch(tmp_path, monkeypatch):
    model, wid = build("sample", pretrained=False)
    real_run = BackendModel._run

    def off_by_a_bit(self, inp):
        e, t = real_run(self, inp)
        return e + 1e-3, t

    monkeypatch.setattr(BackendModel, "_run", off_by_a_bit)
    runner, choice = load_backend(model, weights_id=wid, backend=INSTALLED[0], cache_dir=tmp_path)
    assert runner is None and choice.backend == "torch"
    assert "disagrees with PyTorch on the probe window" in choice.reason and "embedding" in choice.reason


def test_unknown_backend_and_precision_are_one_sentence():
    model, wid = build("sample", pretrained=False)
    with pytest.raises(LabError, match="embed.backend='tensorrt' is unknown"):
        load_backend(model, weights_id=wid, backend="tensorrt")
    with pytest.raises(LabError, match="embed.precision='int4' is unknown"):
        load_backend(model, weights_id=wid, precision="int4")


def test_gpu_request_without_gpu_is_one_sentence():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    model, _ = build("sample", pretrained=False)
    with pytest.raises(LabError, match="torch sees no CUDA GPU"):
        InferenceEngine(model, device="cuda")


@pytest.mark.skipif("onnxruntime" not in INSTALLED, reason="onnxruntime not installed")
def test_extract_on_a_backend_equals_torch_and_shares_the_cache(tmp_path):
    """Windows through ONNX Runtime on 2 workers == PyTorch; the cache entries are interchangeable."""
    ds = SynthDataset(n_per_class=1, seconds=7.0)  # musicnn: two 3 s windows per clip
    ds.clips = ds.clips[:3]
    model, wid = build("musicnn", pretrained=False)
    ort = extract(ds, model, weights_id=wid, cache_dir=tmp_path, backend="onnxruntime", workers=2, progress=False)
    assert ort.misses == 3 and (tmp_path / "graphs" / "musicnn").is_dir()
    plain = extract(ds, model, weights_id=wid, cache_dir=None, backend="torch", optimize=False, progress=False)
    np.testing.assert_allclose(ort.X, plain.X, **TOL)
    np.testing.assert_allclose(ort.tags, plain.tags, **TOL)
    again = extract(ds, model, weights_id=wid, cache_dir=tmp_path, backend="torch", progress=False)
    assert again.hits == 3 and again.misses == 0


def test_fast_mode_is_close_but_cached_apart(tmp_path):
    """bf16 autocast: cosine to fp32 >= 0.99 per clip, and its cache entries never mix with fp32."""
    ds = SynthDataset(n_per_class=1, seconds=3.0)  # musicnn: one window per clip
    ds.clips = ds.clips[:2]
    model, wid = build("musicnn", pretrained=False)
    exact = extract(ds, model, weights_id=wid, cache_dir=tmp_path, backend="torch", progress=False)
    fast = extract(ds, model, weights_id=wid, cache_dir=tmp_path, backend="torch", precision="bf16", progress=False)
    assert fast.misses == 2 and fast.hits == 0  # its own entries
    cos = np.sum(exact.X * fast.X, 1) / (np.linalg.norm(exact.X, axis=1) * np.linalg.norm(fast.X, axis=1))
    assert cos.min() >= 0.99
    assert not np.array_equal(exact.X, fast.X)  # it really ran in reduced precision


def test_fast_mode_on_a_cpu_without_native_bf16_says_it_will_be_slow(monkeypatch, caplog, tmp_path):
    """Emulated bf16 is 10-20x slower than fp32: the user is told once, in one sentence; on a CPU
    with AMX/AVX512-BF16, for fp32, or through OpenVINO (which picks its own precision and says
    which: fp32 in older releases, bf16 since 2026) nothing is said."""
    import lab.extract.backends
    from lab.extract.inference import InferenceEngine

    model, wid = build("musicnn", pretrained=False)
    cases = [(False, "bf16", "torch", True), (True, "bf16", "torch", False), (False, "fp32", "torch", False)]
    if backend_version("openvino"):
        cases.append((False, "bf16", "openvino", False))
    for native, precision, backend, warned in cases:
        monkeypatch.setattr(lab.extract.backends, "native_bf16_cpu", lambda native=native: native)
        caplog.clear()
        with caplog.at_level("WARNING", logger="lab.extract.backends"):
            InferenceEngine(model, backend=backend, precision=precision, weights_id=wid, graph_dir=tmp_path)
        said = [r.getMessage() for r in caplog.records if "without native bf16" in r.getMessage()]
        assert len(said) == int(warned), (native, precision, backend, said)


def test_probe_check_feeds_each_runner_on_its_own_device():
    """The bf16 probe check of a cuda runner compares it with the CPU model: the probe window must
    reach the runner on the runner's device (a 'meta' module stands in for cuda here; the H200 run
    that found this is in docs/extraction.md, "GPU")."""
    from lab.extract.backends import disagreement, probe_window

    model, _ = build("musicnn", pretrained=False)

    class Elsewhere:
        def __init__(self) -> None:
            self.model = torch.nn.Linear(1, 1, device="meta")  # where this runner "computes"
            self.seen = None

        def embed_and_tag(self, x):
            self.seen = x.device  # a meta tensor holds no data: answer with the CPU model's own result
            return model.embed_and_tag(probe_window(model))

    runner = Elsewhere()
    assert disagreement(model, runner) == ""
    assert runner.seen == torch.device("meta")
