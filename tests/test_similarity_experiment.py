"""experiment=similarity: model lists, the corpus-vs-architecture contrasts, and one real job."""

from __future__ import annotations

import numpy as np
import pytest

from lab.core.errors import LabError
from lab.studies.similarity.cka import SimilarityResult
from lab.studies.similarity.experiment import ModelSpec, aligned, contrasts, group_means, parse_models

from conftest import WEIGHTS, need


def test_model_list_entries():
    specs = parse_models(["fcn", "crnn@mtat", "fcn@msd"])
    assert [s.label for s in specs] == ["fcn@jamendo", "crnn@mtat", "fcn@msd"] and specs[1].key == "crnn-mtat"
    for bad, msg in ((["fcn"], "at least two models"), (["fcn", "musicnn@msd"], "msd has fcn, crnn"),
                     (["fcn", "fcm"], "model 'fcm' is unknown"), (["fcn", "fcn@jamendo"], "lists fcn@jamendo twice")):
        with pytest.raises(LabError, match=msg):
            parse_models(bad)


def test_songs_are_aligned_by_id():
    assert aligned([["a", "b", "c", "d"], ["d", "c", "a"], ["c", "a", "d", "x"]]) == ["a", "c", "d"]


def test_contrasts_read_the_right_cells():
    specs = [ModelSpec("fcn", "jamendo"), ModelSpec("crnn", "jamendo"), ModelSpec("fcn", "mtat"), ModelSpec("crnn", "mtat")]
    v = np.array([[1, .9, .5, .4], [.9, 1, .45, .5], [.5, .45, 1, .8], [.4, .5, .8, 1]])
    boot = np.stack([v + d for d in np.linspace(-0.01, 0.01, 21)])
    res = SimilarityResult(v, boot, boot[:3])
    rows = {(r["model"], r["same_corpus_other_arch"], r["same_arch_other_corpus"]): r for r in contrasts(specs, res, higher_is_similar=True, ci=0.9)}
    r = rows[("fcn@mtat", "crnn@mtat", "fcn@jamendo")]
    assert r["difference"] == pytest.approx(0.8 - 0.5) and r["share_corpus_closer"] == 1.0
    g = group_means(specs, res, higher_is_similar=True)
    assert g["same_corpus_other_arch"][0] == pytest.approx((0.9 + 0.8) / 2)
    assert g["same_arch_other_corpus"][0] == pytest.approx((0.5 + 0.5) / 2)
    flipped = contrasts(specs, SimilarityResult(1 - v, 1 - boot, boot[:3]), higher_is_similar=False, ci=0.9)
    assert {round(r["difference"], 6) for r in flipped} == {round(r["difference"], 6) for r in rows.values()}  # distance: sign flipped


@pytest.mark.slow
def test_similarity_job_on_real_checkpoints(compose_cfg):
    from mlflow.tracking import MlflowClient

    from lab.app.task import run
    from lab.tracking import resolve_tracking_uri

    need(WEIGHTS / "mtat" / "crnn" / "best_model.pth")
    cfg = compose_cfg("experiment=similarity", "experiment.models=[fcn,crnn,fcn@mtat,crnn@mtat]",
                      "experiment.measures=[linear_cka,procrustes]", "experiment.n_boot=30", "experiment.n_perm=10",
                      "dataset.n_per_class=1")
    scores = run(cfg)
    client = MlflowClient(resolve_tracking_uri(cfg))
    (r,) = client.search_runs([client.get_experiment_by_name("similarity").experiment_id])
    assert r.info.status == "FINISHED" and r.data.tags["models"] == "fcn@jamendo,crnn@jamendo,fcn@mtat,crnn@mtat"
    names = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"linear_cka.png", "linear_cka.csv", "linear_cka_contrasts.csv", "procrustes.png", "procrustes.npz"} <= names
    lines = open(client.download_artifacts(r.info.run_id, "linear_cka.csv")).read().splitlines()
    assert len(lines) == 1 + 4 * 5 // 2  # every unordered pair and the diagonal
    assert 0 < scores["linear_cka/fcn-jamendo.vs.fcn-mtat"] <= 1 and scores["n_songs"] == 6
    assert r.data.metrics["linear_cka/same_corpus_other_arch_lo"] <= r.data.metrics["linear_cka/same_corpus_other_arch"]
