"""Every config option composes; bad values stop with one clear sentence."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from lab.app import config
from lab.app.task import run
from lab.core.errors import LabError

from conftest import ROOT


@pytest.mark.parametrize("group", ["model", "dataset", "clusterer", "cluster_count", "experiment"])
def test_every_option_composes_and_validates(compose_cfg, group):
    for option in sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")):
        cfg = compose_cfg(f"{group}={option}", "dataset.root=/somewhere" if option == "folder" else "seed=0")
        config.validate(cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["cluster_count.k=1"], "cluster_count.k=1 must be at least 2"),
        (["cluster_count.k=abc"], "cluster_count.k='abc' must be an integer or null"),
        (["seed=-3"], "seed=-3 must be at least 0"),
        (["seed=abc"], "seed='abc' must be an integer"),
        (["embed.batch_size=0"], "embed.batch_size=0 must be a positive integer or null"),
        (["embed.workers=-2"], "embed.workers=-2 must be a positive integer or null"),
        (["model.pretrained=maybe"], "model.pretrained='maybe' must be true or false"),
        (["model.input_length=1000"], "model.input_length=1000 disagrees with the fcn architecture"),
        (["dataset.min_seconds=-1"], "dataset.min_seconds=-1 must be a number >= 0.0"),
        (["embed.device=tpu"], "embed.device='tpu' must be cpu, cuda (or cuda:N) or mps"),
        (["dataset=gtzan", "dataset.split=half"], "dataset.split='half' must be 'all' or 'fault_filtered'"),
        (["dataset=folder", "dataset.root=x", "dataset.extensions=wav"], "dataset.extensions='wav' must be a non-empty list"),
        (["dataset.n_per_class=0"], "dataset.n_per_class=0 must be at least 1"),
        (["dataset.seconds=0.5"], "dataset.seconds=0.5 must be a number >= 1.0"),
        (["experiment.tsne_perplexity=0"], "experiment.tsne_perplexity=0 must be a number > 0"),
        (["experiment.save_embeddings=yes"], "experiment.save_embeddings='yes' must be true or false"),
        (["experiment.rogue_neighbors=0"], "experiment.rogue_neighbors=0 must be at least 1"),
        (["experiment.rogue_top=-1"], "experiment.rogue_top=-1 must be at least 0"),
        (["experiment=cluster_scores", "experiment.k_min=1"], "experiment.k_min=1 must be at least 2"),
        (["experiment=cluster_scores", "experiment.k_max=x"], "experiment.k_max='x' must be an integer"),
        (["experiment=cluster_scores", "experiment.seeds=0"], "experiment.seeds=0 must be at least 1"),
        (["experiment=tags", "experiment.top_k=0"], "experiment.top_k=0 must be at least 1"),
    ],
)
def test_bad_values_raise_one_sentence(compose_cfg, overrides, message):
    with pytest.raises(LabError) as err:
        config.validate(compose_cfg(*overrides))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["clusterer.n_init=-1"], "clusterer.n_init=-1 must be a positive integer"),
        (["clusterer.n_init=abc"], "clusterer.n_init='abc' must be a positive integer"),
        (["clusterer.max_iter=0"], "clusterer.max_iter=0 must be a positive integer"),
        (["clusterer.standardize=maybe"], "clusterer.standardize='maybe' must be true or false"),
        (["clusterer=gmm", "clusterer.n_init=0"], "clusterer.n_init=0 must be a positive integer"),
        (["clusterer=gmm", "clusterer.reg_covar=-1"], "clusterer.reg_covar=-1 must be a number >= 0"),
        (["clusterer=gmm", "clusterer.covariance_type=round"], "clusterer.covariance_type='round' must be one of full, tied, diag, spherical"),
        (["clusterer=gmm", "clusterer.pca=0"], "clusterer.pca=0 must be null (no PCA) or a positive number of components, e.g. 16"),
        (["experiment.group=album"], "experiment.group='album' must be one of artist, recording (the unit the bootstrap resamples "
                                     "and the held-out halves keep apart)"),
        (["experiment.heldout.repeats=-1"], "experiment.heldout.repeats=-1 must be an integer >= 0 (0 switches the held-out accuracy off)"),
        (["experiment=probe", "experiment.group=album"], "experiment.group='album' must be one of artist, recording (the unit folds never split)"),
    ],
)
def test_clusterer_options_are_checked_before_any_work(compose_cfg, overrides, message, monkeypatch):
    import lab.extract.pipeline

    monkeypatch.setattr(lab.extract.pipeline, "embed", lambda *a, **k: pytest.fail("embedding started before the options were checked"))
    with pytest.raises(LabError) as err:
        run(compose_cfg(*overrides))
    assert str(err.value) == message


def test_unknown_option_and_typo_are_rejected_by_hydra(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="model/fcnn"):
        compose_cfg("model=fcnn")
    with pytest.raises(ConfigCompositionException, match="seeed"):
        compose_cfg("seeed=1")


def _no_runs(cfg) -> bool:
    from pathlib import Path

    return not Path(cfg.paths.mlruns, "mlflow.db").exists()


def test_missing_dataset_root_is_one_error_and_opens_no_run(compose_cfg, tmp_path):
    cfg = compose_cfg("dataset=gtzan", f"dataset.root={tmp_path / 'nope'}")
    with pytest.raises(LabError, match=r"dataset.root=.*nope does not exist"):
        run(cfg)
    assert _no_runs(cfg)


def test_k_larger_than_the_number_of_songs_opens_no_run(compose_cfg):
    cfg = compose_cfg("dataset.n_per_class=1", "dataset.seconds=2", "model.pretrained=false", "cluster_count=seven")
    with pytest.raises(LabError, match=r"cluster_count.k=7 is larger than the number of usable songs \(6\)"):
        run(cfg)
    assert _no_runs(cfg)


def test_cluster_count_accepts_an_integer_on_the_command_line():
    from lab.__main__ import _rewrite

    assert _rewrite(["cluster_count=20", "seed=1"]) == ["cluster_count.k=20", "seed=1"]
    assert _rewrite(["cluster_count=7,10"]) == ["cluster_count.k=7,10"]
    assert _rewrite(["cluster_count=seven"]) == ["cluster_count=seven"]


def test_default_k_is_the_number_of_labels(compose_cfg):
    cfg = compose_cfg("dataset.n_per_class=2", "dataset.seconds=3", "model=sample", "model.pretrained=false")
    assert cfg.cluster_count.k is None
    scores = run(cfg)
    assert scores["n_clusters_found"] == 6  # six synthetic styles -> k = 6, no "(unmatched)" column
