"""Deep dreaming (lab/studies/dream/dreaming.py, experiment=dream): the loss falls and the dream lands on its genre,
a killed dream resumes exactly, the raw WAV reproduces the dream's embedding, bad requests get one
sentence. Real fcn checkpoint, real gtzan_mini songs, CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lab.core.errors import LabError
from lab.studies.dream.dreaming import DreamSettings, dream, energy_gate, regularizer

from conftest import GTZAN_MINI, WEIGHTS, need

GTZAN = [f"dataset.root={GTZAN_MINI}", "dataset=gtzan"]


@pytest.fixture(scope="module")
def fcn_means(tmp_path_factory):
    """(fcn model, sorted genres, genre means [shape=(10, 64)]) of gtzan_mini through the pipeline."""
    need(WEIGHTS / "jamendo/fcn/best_model.pth")
    need(GTZAN_MINI)
    from hydra import compose, initialize_config_dir

    from lab.extract.pipeline import load_embeddings
    from lab.studies.dream.experiment import genre_means

    from conftest import ROOT

    cache = tmp_path_factory.mktemp("cache")
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="config", overrides=GTZAN + ["model=fcn", f"paths.weights={WEIGHTS}",
                                                              f"paths.cache={cache}", "embed.progress=false"])
    _, emb = load_embeddings(cfg)
    from lab.extract.pipeline import build_model

    genres, means = genre_means(emb.X, emb.labels)
    return build_model(cfg).model, genres, means


def _settings(**kw) -> DreamSettings:
    return DreamSettings(**({"lr": 0.01, "progress": False, "checkpoint_every": 0, "log_every": 10} | kw))


@pytest.mark.slow  # 30 fcn steps + extracting gtzan_mini
def test_short_dream_lowers_loss_and_lands_on_its_genre(fcn_means):
    model, genres, means = fcn_means
    flags = [p.requires_grad for p in model.parameters()]
    res = dream(model, means[genres.index("disco")], _settings(steps=30))
    d = np.linalg.norm(means - res.embedding, axis=1)
    # measured: 1.67 -> ~0.006 (x ~300) in 30 steps; from noise the nearest mean starts elsewhere
    assert res.initial_loss / res.final_loss > 100
    assert genres[int(d.argmin())] == "disco"
    assert np.abs(res.waveform).max() < 1.0 and res.waveform.dtype == np.float32
    assert [p.requires_grad for p in model.parameters()] == flags  # the dream froze a copy, not the caller's model


@pytest.mark.slow  # 14 fcn steps
def test_killed_dream_resumes_from_checkpoint_and_matches_uninterrupted(fcn_means, tmp_path):
    model, genres, means = fcn_means
    target = means[genres.index("metal")]
    full = dream(model, target, _settings(steps=6, seed=3))

    def kill_at_5(step: int) -> None:
        if step == 5:
            raise KeyboardInterrupt  # dies between checkpoints: only the step-4 checkpoint survives

    ckpt = tmp_path / "d.pt"
    with pytest.raises(KeyboardInterrupt):
        dream(model, target, _settings(steps=6, seed=3, checkpoint_every=2), checkpoint=ckpt, on_step=kill_at_5)
    resumed = dream(model, target, _settings(steps=6, seed=3, checkpoint_every=2), checkpoint=ckpt)
    assert resumed.start_step == 4 and resumed.step == 6
    # same ops in the same order on the same threads: bit-identical to the uninterrupted dream
    np.testing.assert_array_equal(resumed.waveform, full.waveform)
    assert resumed.history == full.history


@pytest.mark.slow  # two models' extraction + two MLflow jobs
def test_experiment_logs_wav_that_reproduces_the_dream_and_resumes_into_the_same_run(compose_cfg, monkeypatch, tmp_path):
    need(WEIGHTS / "jamendo/fcn/best_model.pth")
    need(GTZAN_MINI)
    import lab.studies.dream.experiment as exp
    from lab import tracking
    from lab.app import task as app
    from lab.datasets.audio import load
    from lab.extract.pipeline import build_model

    cfg = compose_cfg("experiment=dream", "model=fcn", "genre=reggae", *GTZAN, "dream.steps=4", "dream.checkpoint_every=2",
                      "dream.log_every=1", "dream.progress=false", "experiment.transfer=[crnn]",
                      f"experiment.checkpoint_dir={tmp_path / 'dreams'}")
    real = exp.dream

    def killed(*a, **kw):
        kw["on_step"] = lambda step: (_ for _ in ()).throw(KeyboardInterrupt()) if step == 3 else None
        return real(*a, **kw)

    monkeypatch.setattr(exp, "dream", killed)
    with pytest.raises(KeyboardInterrupt):
        app.run(cfg)
    monkeypatch.setattr(exp, "dream", real)
    scores = app.run(cfg)
    assert scores["total_steps"] == 4 and scores["session_steps"] == 2  # continued at step 2, not 0

    client = tracking.store._LockedClient(tracking.resolve_tracking_uri(cfg))
    exp_id = client.get_experiment_by_name("dream").experiment_id
    dreams = client.search_runs([exp_id], filter_string="tags.genre = 'reggae' and tags.resume_key LIKE '%'")
    assert len(dreams) == 1, "the resumed dream must log into the run it started in"
    run = dreams[0]
    assert run.info.status == "FINISHED" and run.data.tags["resumed_from_step"] == "2"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert steps == [1, 2, 3, 4]  # steps 1-2 from the killed session, 3-4 from the resumed one

    local = client.download_artifacts(run.info.run_id, "", str(tmp_path / "art"))
    wav = load(f"{local}/audio/dream_raw.wav", sr=16000)
    saved = np.load(f"{local}/dream_embedding.npz")
    model = build_model(cfg).model
    with torch.inference_mode():
        again = model.embed(torch.from_numpy(wav)[None]).numpy()[0]
    np.testing.assert_allclose(again, saved["embedding"], rtol=0, atol=1e-5)  # float WAV: bit-exact samples
    transfer = (tmp_path / "art" / "transfer.csv").read_text().splitlines()
    assert transfer[0].startswith("genre,dreamed_by,judged_by") and {r.split(",")[2] for r in transfer[1:]} == {"fcn", "crnn"}


@pytest.mark.parametrize("override, words", [
    ("genre=tango", "genre='tango' is not in dataset=gtzan"),
    ("model=hcnn", "hcnn"),
    ("dream.init=song:/no/such/song.wav", "does not exist"),
    ("dream.optimizer=lbfgs", "dream.optimizer='lbfgs'"),
    ("experiment.gate_threshold_db=10", "experiment.gate_threshold_db=10 must be a negative number"),
    ("experiment.transfer=[fcn,vgg]", "experiment.transfer has 'vgg'"),
])
def test_bad_requests_get_one_sentence(compose_cfg, override, words):
    need(GTZAN_MINI)
    from lab.app import task as app

    cfg = compose_cfg("experiment=dream", *GTZAN, override)
    with pytest.raises(LabError, match=None) as err:
        app.run(cfg)
    msg = str(err.value)
    assert words in msg and "\n" not in msg


def test_energy_gate_and_regularizers():
    sr, n = 16000, 16000
    t = np.arange(n) / sr
    loud, quiet = np.sin(2 * np.pi * 440 * t), 10 ** (-40 / 20) * np.sin(2 * np.pi * 3000 * t)
    gated = energy_gate((loud + quiet).astype(np.float32), threshold_db=-30)
    spec = np.abs(np.fft.rfft(gated[2000:-2000]))
    f = np.fft.rfftfreq(n - 4000, 1 / sr)
    assert spec[np.abs(f - 3000) < 20].max() < 1e-3 * spec[np.abs(f - 440) < 20].max()  # quiet tone gone
    np.testing.assert_allclose(gated[2000:-2000], loud[2000:-2000], atol=2e-3)  # loud tone kept
    noise = torch.randn(1, n, generator=torch.Generator().manual_seed(0))
    tone = torch.from_numpy(loud.astype(np.float32))[None]
    assert regularizer(noise, "flatness") > 0.4 > 0.05 > regularizer(tone, "flatness")
    assert regularizer(noise, "tv") > regularizer(tone, "tv")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_dream_runs_on_cuda(fcn_means):
    model, genres, means = fcn_means
    res = dream(model, means[genres.index("disco")], _settings(steps=20, device="cuda"))
    assert res.initial_loss / res.final_loss > 10


def test_target_and_judging_songs_are_different_songs():
    from lab.datasets.base import Clip
    from lab.studies.dream.experiment import split_parts

    # 3 genres x 5 songs; song 4 of each genre has a second excerpt (same source): one group
    clips = [Clip(f"{g}/{g}.{i}.wav", g, f"/x/{g}{i}.wav") for g in ("blues", "disco", "metal") for i in range(5)]
    clips += [Clip(f"{g}/{g}.4.wav@30s", g, f"/x/{g}4.wav", source=f"{g}/{g}.4.wav") for g in ("blues", "disco", "metal")]
    labels = np.array([c.label for c in clips])
    parts, fallback = split_parts(clips, labels, how="halves", seed=0)
    assert fallback == []
    for g in ("blues", "disco", "metal"):
        rows = labels == g
        assert (parts[rows] == "target").any() and (parts[rows] == "score").any()
        target = {c.source_id for c, p, lab in zip(clips, parts, labels) if lab == g and p == "target"}
        score = {c.source_id for c, p, lab in zip(clips, parts, labels) if lab == g and p == "score"}
        assert not target & score and len(target) == 3 and len(score) == 2  # ceil(5 / 2) recordings make the target
    assert (split_parts(clips, labels, how="halves", seed=0)[0] == parts).all()  # fixed by the split seed
    assert set(split_parts(clips, labels, how="none")[0]) == {"both"}
    # artists: never on both sides; a genre of one artist falls back to its recordings and says so
    by_artist = [Clip(f"{g}/{g}.{i}.wav", g, f"/x/{g}{i}.wav", artist=f"{g}-{i % 2}" if g != "blues" else "Hooker")
                 for g in ("blues", "disco") for i in range(6)]
    lab2 = np.array([c.label for c in by_artist])
    parts2, fallback2 = split_parts(by_artist, lab2, how="halves", seed=1)
    assert fallback2 == ["blues"]
    for artist in {c.artist for c in by_artist if c.label == "disco"}:
        assert len({p for c, p in zip(by_artist, parts2) if c.artist == artist}) == 1
    assert {p for c, p in zip(by_artist, parts2) if c.label == "blues"} == {"target", "score"}
    assert set(split_parts(by_artist, lab2, how="halves", seed=1, unit="recording")[1]) == set()
    with pytest.raises(LabError, match="at least 2 songs"):
        split_parts(clips[:1], labels[:1], how="halves")
    with pytest.raises(LabError, match="target_split"):
        split_parts(clips, labels, how="thirds")


def test_transfer_permutation_test_separates_a_judge_that_follows_the_target_from_one_that_does_not():
    import pandas as pd

    from lab.studies.dream.report import matrix, permutation_test, summary

    genres = ["blues", "disco", "jazz", "metal", "pop"]
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        rows.append({"kind": "start", "genre": "", "dreamed_by": "fcn", "judged_by": "crnn", "nearest_genre": "metal", "seed": seed})
        for g in genres:
            rows.append({"kind": "dream", "genre": g, "dreamed_by": "fcn", "judged_by": "fcn", "nearest_genre": g, "seed": seed})
            rows.append({"kind": "dream", "genre": g, "dreamed_by": "fcn", "judged_by": "crnn",  # ignores the target
                         "nearest_genre": "metal" if rng.random() < 0.7 else str(rng.choice(genres)), "seed": seed})
    df = pd.DataFrame(rows)
    own = df[(df.judged_by == "fcn") & (df.kind == "dream")]
    hits, expected, p = permutation_test(own, n_perm=2000)
    assert hits == 15 and expected == pytest.approx(3.0) and p < 0.001
    other = df[(df.judged_by == "crnn") & (df.kind == "dream")]
    _, _, p_other = permutation_test(other, n_perm=2000)
    assert p_other > 0.05
    m = matrix(df, "fcn", "crnn", genres)
    assert list(m.index) == genres + ["start"] and m.loc["start", "metal"] == 3 and int(m.iloc[:-1].to_numpy().sum()) == 15
    s = summary(df, n_perm=500)
    assert list(s["judged as their target"]) == [15, int((other.genre == other.nearest_genre).sum())]
