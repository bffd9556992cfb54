"""Every config option composes; bad values stop with one clear sentence."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from lab import config
from lab.app import run
from lab.errors import LabError

from conftest import ROOT


@pytest.mark.parametrize("group", ["model", "dataset", "clusterer", "cluster_count", "experiment"])
def test_every_option_composes_and_validates(compose_cfg, group):
    for option in sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")):
        cfg = compose_cfg(f"{group}={option}", "dataset.root=/somewhere" if option == "folder" else "seed=0")
        config.validate(cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["cluster_count.k=1"], "cluster_count.k=1 must be an integer >= 2"),
        (["seed=-3"], "seed=-3 must be at least 0"),
        (["seed=abc"], "seed='abc' must be an integer"),
        (["embed.batch_size=0"], "embed.batch_size=0 must be a positive integer or null"),
        (["embed.workers=-2"], "embed.workers=-2 must be a positive integer or null"),
        (["model.pretrained=maybe"], "model.pretrained='maybe' must be true or false"),
        (["model.input_length=1000"], "model.input_length=1000 disagrees with the fcn architecture"),
        (["dataset.min_seconds=-1"], "dataset.min_seconds=-1 must be a number >= 0.0"),
        (["clusterer.name=dbscan"], "clusterer='dbscan' is unknown"),
    ],
)
def test_bad_values_raise_one_sentence(compose_cfg, overrides, message):
    with pytest.raises(LabError) as err:
        config.validate(compose_cfg(*overrides))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_option_and_typo_are_rejected_by_hydra(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="model/fcnn"):
        compose_cfg("model=fcnn")
    with pytest.raises(ConfigCompositionException, match="seeed"):
        compose_cfg("seeed=1")


def test_missing_dataset_root_is_one_error(compose_cfg, tmp_path):
    cfg = compose_cfg("dataset=gtzan", f"dataset.root={tmp_path / 'nope'}")
    with pytest.raises(LabError, match=r"dataset.root=.*nope does not exist"):
        run(cfg)


def test_k_larger_than_the_number_of_songs(compose_cfg):
    cfg = compose_cfg("dataset.n_per_class=1", "dataset.seconds=2", "model.pretrained=false", "cluster_count=seven")
    with pytest.raises(LabError, match=r"cluster_count.k=7 is larger than the number of usable songs \(6\)"):
        run(cfg)
