"""Any model in the lab (issue 20): a user's network, a HEAR module, an embeddings file — through config alone.

The tiny network and the HEAR module are defined here (no download); every job is a real MLflow run.
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from lab.app.task import run
from lab.core.errors import LabError
from lab.models import handcrafted
from lab.tracking import resolve_tracking_uri

from conftest import WEIGHTS, need

SYNTH = ["dataset.n_per_class=2", "dataset.seconds=4"]  # 6 styles x 2 clips of 4 s


class TinyNet(nn.Module):
    """A user's network: 8 kHz audio -> conv -> ReLU -> mean over time -> linear -> (B, width)."""

    sample_rate = 8000

    def __init__(self, width: int = 12) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 8, kernel_size=64, stride=16)
        self.head = nn.Linear(8, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x.unsqueeze(1)))  # (B, 8, frames)
        return self.head(torch.log1p(h.mean(-1)))


def build(width: int = 12) -> nn.Module:
    return TinyNet(width)


def build_tagging(width: int = 6):
    net = TinyNet(width)
    return lambda x: (net(x), torch.sigmoid(net(x)[:, :3]))


def build_wrong_shape():
    return lambda x: torch.zeros(x.shape[0], 3, 4)


def build_nan():
    return lambda x: torch.full((x.shape[0], 5), float("nan"))


def build_one_row():
    return lambda x: torch.zeros(1, 5)


def build_string():
    return lambda x: "an embedding"


def build_22k():
    net = TinyNet(4)
    net.sample_rate = 22050
    return net


def build_broken():
    raise RuntimeError("no such weights")


CUSTOM = ["model=custom", f"model.target={__name__}:build", "model.sample_rate=8000", "model.window=8000",
          "model.kwargs={width: 12}"]


def _runs(cfg, experiment=None):
    client = MlflowClient(resolve_tracking_uri(cfg))
    exp = client.get_experiment_by_name(experiment or cfg.experiment.name)
    return client, (client.search_runs([exp.experiment_id]) if exp else [])


def test_a_tiny_user_network_runs_clustering_through_config_alone(compose_cfg):
    cfg = compose_cfg(*CUSTOM, *SYNTH)
    scores = run(cfg)
    client, (r,) = _runs(cfg)
    assert r.info.status == "FINISHED" and 0 < scores["accuracy"] <= 1
    t = r.data.tags
    assert (t["model"], t["model_kind"], t["embedding_dim"], t["pretrained"]) == (f"{__name__}:build", "custom", "12", "true")
    with np.load(client.download_artifacts(r.info.run_id, "embeddings.npz")) as z:
        assert z["X"].shape == (12, 12) and np.isfinite(z["X"]).all()
        # 4-s clips in 1-s windows: 4 windows per song, averaged
        assert z["n_windows"].tolist() == [4] * 12
    again = run(cfg)  # the same network (seeded): every embedding comes from the cache
    _, runs = _runs(cfg)
    assert again["accuracy"] == scores["accuracy"] and runs[0].data.metrics["cache_hits"] == 12


def test_a_tiny_user_network_dreams_through_config_alone(compose_cfg, tmp_path):
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    cfg = compose_cfg(*CUSTOM, *SYNTH, "experiment=dream", "genre=synth-disco", "dream.steps=4", "dream.log_every=2",
                      "dream.checkpoint_every=0", "dream.progress=false", "experiment.transfer=[fcn]",
                      f"experiment.checkpoint_dir={tmp_path / 'dreams'}")
    scores = run(cfg)
    client, runs = _runs(cfg)
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 2  # the job and its one dream
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert child.data.tags["embedding_dim"] == "12" and child.data.tags["model"] == f"{__name__}:build"
    with np.load(client.download_artifacts(child.info.run_id, "dream_embedding.npz")) as z:
        assert z["embedding"].shape == (12,) and z["tags"].shape == (0,)  # the network outputs no tags
    transfer = open(client.download_artifacts(child.info.run_id, "transfer.csv")).read()
    assert ",fcn," in transfer  # fcn (16 kHz) judged the 8 kHz dream, resampled
    assert scores["n_dreams"] == 1 and scores["total_steps"] == 4


def test_user_model_tags_are_kept_and_named(compose_cfg):
    from lab.extract.pipeline import build_model, load_embeddings

    cfg = compose_cfg("model=custom", f"model.target={__name__}:build_tagging", "model.sample_rate=8000", "model.window=8000",
                      "model.tag_names=[low,mid,high]", *SYNTH)
    _, emb = load_embeddings(cfg)
    assert emb.X.shape == (12, 6) and emb.tags.shape == (12, 3) and build_model(cfg).tag_names == ["low", "mid", "high"]
    scores = run(compose_cfg("model=custom", f"model.target={__name__}:build_tagging", "model.sample_rate=8000",
                             "model.window=8000", "experiment=tags", *SYNTH))
    assert scores["n_songs"] == 12


@pytest.mark.parametrize("target, extra, message", [
    ("build_wrong_shape", [], "returned an embedding of shape (2, 3, 4) for a batch of 2 window(s) of audio; expected shape (2, d)"),
    ("build_nan", [], "returned NaN or infinite values in the embedding of 2 of 2 window(s)"),
    ("build_one_row", [], "returned an embedding of shape (1, 5) for a batch of 2 window(s)"),
    ("build_string", [], "returned a str; expected an embedding tensor of shape (2, d)"),
    ("build_22k", [], "builds a model whose sample_rate is 22050 Hz, but model.sample_rate=8000; set model.sample_rate=22050"),
    ("build_broken", [], "raised RuntimeError when called with model.kwargs={} (no such weights)"),
    ("build", ["model.embedding_dim=7"], "returned embeddings of width 12, but model.embedding_dim=7"),
    ("build", ["model.window=0"], "model.window=0 must be a number of samples per window"),
    ("nowhere:build", [], "module 'nowhere' cannot be imported"),
    ("build_missing", [], "has no 'build_missing'"),
    ("build", ["model.weights=/no/such/file.pt"], "model.weights=/no/such/file.pt does not exist"),
])
def test_a_bad_user_model_is_one_sentence_and_opens_no_run(compose_cfg, tmp_path, target, extra, message):
    full = target if ":" in target else f"{__name__}:{target}"
    cfg = compose_cfg("model=custom", f"model.target={full}", "model.sample_rate=8000", "model.window=8000", *extra, *SYNTH)
    with pytest.raises(LabError) as err:
        run(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


def test_what_an_experiment_needs_is_checked_before_a_run_opens(compose_cfg, tmp_path):
    for overrides, message in [
        (["model=handcrafted", "experiment=dream", "genre=synth-disco"], "experiment=dream needs gradients from the embedding back "
                                                                          "to the waveform, but model=handcrafted is not differentiable"),
        ([*CUSTOM[:-2], "model.window=null", "experiment=dream", "genre=synth-disco"],
         "experiment=dream optimises a waveform of fixed length, but model=custom"),
        ([*CUSTOM, "experiment=tags"], "experiment=tags needs tag probabilities, but model=custom"),
        (["model=handcrafted", "model.pretrained=false"], "model.pretrained=False does not apply to model=handcrafted"),
        (["model=fcn", "embed.precision=bf16", *CUSTOM], "embed.precision=bf16 (fast mode) is checked against the lab's taggers only"),
    ]:
        with pytest.raises(LabError, match=None) as err:
            run(compose_cfg(*overrides, *SYNTH))
        assert message in str(err.value), str(err.value)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


# --- HEAR ----------------------------------------------------------------------------------------

@pytest.fixture
def hear_weights(tmp_path):
    import hear_tiny

    torch.manual_seed(5)
    path = tmp_path / "hear_tiny.pt"
    torch.save(hear_tiny.TinyHear().state_dict(), path)
    return path


def test_a_hear_module_runs_clustering(compose_cfg, hear_weights):
    cfg = compose_cfg("model=hear", "model.module=hear_tiny", f"model.path={hear_weights}", *SYNTH)
    scores = run(cfg)
    _, (r,) = _runs(cfg)
    assert r.info.status == "FINISHED" and 0 < scores["accuracy"] <= 1
    t = r.data.tags
    assert (t["model"], t["model_kind"], t["embedding_dim"]) == ("hear-hear_tiny", "hear", "24")


def test_hear_scene_embeddings_are_the_mean_of_its_timestamp_embeddings(compose_cfg, hear_weights):
    """Known answer: hear_tiny's scene embedding is the mean of its frames, which is what mode=timestamp averages."""
    from lab.extract.pipeline import load_embeddings

    base = ["model=hear", "model.module=hear_tiny", f"model.path={hear_weights}", *SYNTH]
    _, scene = load_embeddings(compose_cfg(*base))
    _, frames = load_embeddings(compose_cfg(*base, "model.mode=timestamp"))
    assert scene.X.shape == (12, 24) and scene.n_windows.tolist() == [1] * 12  # each clip whole: one sound
    _, again = load_embeddings(compose_cfg(*base))
    assert (again.hits, again.misses) == (12, 0) and np.array_equal(again.X, scene.X)  # whole-clip entries are read back
    np.testing.assert_allclose(frames.X, scene.X, rtol=1e-5, atol=1e-6)
    with pytest.raises(LabError, match="model.module=hear_tiny builds a model whose sample_rate is 16000 Hz, but model.sample_rate=22050"):
        run(compose_cfg(*base, "model.sample_rate=22050"))
    with pytest.raises(LabError, match="model.module=no_such_hear cannot be imported"):
        run(compose_cfg("model=hear", "model.module=no_such_hear", *SYNTH))


# --- handcrafted, random weights and the report ---------------------------------------------------

def test_handcrafted_features_are_the_documented_statistics():
    """Known answers on constructed audio: a 440 Hz tone's centroid sits at 440 Hz, its chroma on A."""
    from lab.models.handcrafted import FEATURE_NAMES, SAMPLE_RATE, features

    assert len(FEATURE_NAMES) == 92 and len(set(FEATURE_NAMES)) == 92
    t = np.arange(5 * SAMPLE_RATE) / SAMPLE_RATE
    f = dict(zip(FEATURE_NAMES, features(0.5 * np.sin(2 * np.pi * 440 * t), SAMPLE_RATE)))
    assert f["centroid_mean"] == pytest.approx(440, rel=0.05)
    chroma = [f[f"chroma{i}_mean"] for i in range(12)]
    assert int(np.argmax(chroma)) == 9  # C, C#, ..., A = 9
    assert f["rms_mean"] == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    clicks = np.zeros(10 * SAMPLE_RATE, np.float32)
    clicks[:: SAMPLE_RATE // 2] = 1.0  # 120 BPM
    assert dict(zip(FEATURE_NAMES, features(clicks)))["tempo"] == pytest.approx(120, rel=0.05)


@pytest.mark.slow  # fcn on 12 synthetic clips + the handcrafted features
def test_report_shows_handcrafted_and_random_fcn_rows_beside_the_taggers(compose_cfg):
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    from lab.report import study_report

    base = ["sweep_id=byo", "cluster_count=seven", "dataset.n_per_class=2", "experiment.listen_map=false", "experiment.bootstrap.n_boot=50"]
    for model in (["model=fcn"], ["model=fcn", "model.pretrained=false"], ["model=handcrafted"]):
        for seed in (0, 1):
            run(compose_cfg(*model, *base, f"seed={seed}"))
    cfg = compose_cfg()
    _, _, rep, _ = study_report("clustering", [f"paths.mlruns={cfg.paths.mlruns}", "experiment.bootstrap.n_boot=50"], sweep_id="byo")
    t1 = rep.tables["table1"].frame
    assert t1["Model"].tolist() == ["FCN", "Handcrafted (MFCC etc.)", "FCN (random)"]  # taggers, then the baselines
    assert t1["seeds"].tolist() == ["2", "2", "2"]  # random fcn is its own row, not averaged with the trained one
    nums = rep.tables["table1"].numbers
    assert set(nums.model) == {"fcn", "handcrafted", "fcn@random"} and nums.ci_lo.notna().all()


def test_the_documented_examples_run(compose_cfg):
    """examples/byo_model.py and examples/hear_logmel.py, as docs/bring-your-own-model.md runs them."""
    for overrides, dim in ((["model=custom", "model.target=examples.byo_model:build", "model.window=16000"], "64"),
                           (["model=hear", "model.module=examples.hear_logmel"], "128")):
        cfg = compose_cfg(*overrides, *SYNTH, "experiment.bootstrap.n_boot=0")
        run(cfg)
        _, runs = _runs(cfg)
        assert runs[0].info.status == "FINISHED" and runs[0].data.tags["embedding_dim"] == dim


def test_handcrafted_tuning_is_librosa_s_and_silence_warns_nothing():
    """The chroma's tuning equals librosa.estimate_tuning's; a clip with no pitched peak gets 0 without
    librosa's warning (a catch_warnings around it did not hold while threads extract clips)."""
    sr = handcrafted.SAMPLE_RATE
    t = np.arange(sr * 2) / sr
    tone = (0.3 * np.sin(2 * np.pi * 443.0 * t)).astype(np.float32)  # 443 Hz: a few cents sharp of A4
    for y in (tone, np.zeros(sr * 2, np.float32)):
        power = np.abs(librosa.stft(y, n_fft=handcrafted.N_FFT, hop_length=handcrafted.HOP)) ** 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = librosa.estimate_tuning(S=power, sr=sr, bins_per_octave=12)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert handcrafted.tuning(power, sr) == expected
            handcrafted.features(y)
    assert handcrafted.tuning(np.abs(librosa.stft(tone)) ** 2, sr) > 0.05  # sharp, so the estimate is really made
