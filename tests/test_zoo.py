"""Model zoo behaviour beyond the goldens: config facts, random-weight baselines, missing checkpoints, tags."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from lab.app.task import run
from lab.core.errors import LabError
from lab.models import REGISTRY, build, model_info, tag_names
from lab.tracking import resolve_tracking_uri

from conftest import REFERENCE, ROOT, WEIGHTS, need

TRUE_DIMS = {"fcn": 64, "musicnn": 200, "crnn": 32, "attention": 256, "hcnn": 256, "sample": 512, "se": 512}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_model_config_states_the_true_facts(name):
    conf = yaml.safe_load((ROOT / "conf" / "model" / f"{name}.yaml").read_text())
    info = model_info(name)
    assert conf["embedding_dim"] == info.embedding_dim == TRUE_DIMS[name]
    assert (conf["sample_rate"], conf["input_length"]) == (info.sample_rate, info.input_length)


def test_packaged_tag_list_is_the_reference_order():
    ref = need(REFERENCE / "jamendo_tags.txt").read_text().split()
    assert tag_names("jamendo") == ref and len(ref) == 50 and ref == sorted(ref)


def test_missing_checkpoint_names_path_and_url(tmp_path):
    with pytest.raises(LabError) as err:
        build("hcnn", weights_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "jamendo" / "hcnn" / "best_model.pth") in msg
    assert "minzwon/sota-music-tagging-models" in msg and "model.pretrained=false" in msg


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    p = tmp_path / "jamendo" / "attention" / "best_model.pth"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"\x80\x02garbage")
    with pytest.raises(LabError, match="cannot be read as a torch state dict"):
        build("attention", weights_dir=tmp_path)


def test_tampered_official_checkpoint_is_refused(tmp_path):
    src = need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    p = tmp_path / "jamendo" / "fcn" / "best_model.pth"
    p.parent.mkdir(parents=True)
    p.write_bytes(src.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(LabError, match="does not match the official fcn weights"):
        build("fcn", weights_dir=tmp_path)


def test_tags_experiment_with_random_weights_is_tagged(compose_cfg):
    cfg = compose_cfg("experiment=tags", "model=sample", "model.pretrained=false", "dataset.n_per_class=1", "dataset.seconds=4")
    run(cfg)
    client = MlflowClient(resolve_tracking_uri(cfg))
    (r,) = client.search_runs([client.get_experiment_by_name("tags").experiment_id])
    assert r.data.tags["pretrained"] == "false" and r.data.tags["embedding_dim"] == "512"
    path = client.download_artifacts(r.info.run_id, "top_tags.csv")
    lines = open(path).read().splitlines()
    assert lines[0].startswith("file,id,label,tag1,p1,") and len(lines) == 1 + 6
    assert lines[1].split(",")[3] in tag_names("jamendo")


@pytest.mark.slow
def test_real_classical_clips_get_classical_tags(compose_cfg, tmp_path):
    """musicnn on real GTZAN classical clips ranks classical-music tags high (a semantic check of the tag order)."""
    need(WEIGHTS / "jamendo" / "musicnn" / "best_model.pth")
    from conftest import GTZAN_MINI

    need(GTZAN_MINI)
    cfg = compose_cfg("experiment=tags", "model=musicnn", "dataset=gtzan", f"dataset.root={GTZAN_MINI}")
    from lab.extract.pipeline import load_embeddings

    _, emb = load_embeddings(cfg)
    names = tag_names("jamendo")
    classical = emb.tags[emb.labels == "classical"].mean(0)
    top = {names[j] for j in classical.argsort()[::-1][:5]}
    assert {"genre---classical", "genre---orchestral", "instrument---piano", "genre---soundtrack", "instrument---violin", "instrument---strings"} & top


@pytest.mark.slow
def test_cli_missing_checkpoint_is_one_sentence(tmp_path):
    p = subprocess.run([sys.executable, "-m", "lab", "model=hcnn", f"paths.weights={tmp_path}", f"paths.mlruns={tmp_path}/mlruns"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert "error: no checkpoint for model=hcnn at" in p.stderr
    assert "Traceback" not in p.stderr
