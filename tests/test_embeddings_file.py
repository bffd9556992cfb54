"""model=embeddings: studies on vectors computed elsewhere, the file formats, and every bad file in one sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy.stats import ortho_group

from lab.app.task import run
from lab.core.errors import LabError
from lab.models.precomputed import read_embeddings
from lab.tracking import resolve_tracking_uri

from conftest import GTZAN_MINI, WEIGHTS, need


def _blobs(n_per: int = 10, genres=("rock", "jazz", "pop"), dim: int = 6, seed: int = 0):
    """Well-separated Gaussian clusters, one per genre: ids, labels, X [shape=(n, dim)]."""
    rng = np.random.default_rng(seed)
    centres = 10 * rng.standard_normal((len(genres), dim))
    labels = np.repeat(genres, n_per)
    X = centres[np.repeat(np.arange(len(genres)), n_per)] + rng.standard_normal((len(labels), dim))
    ids = np.array([f"{g}/{g}.{i:03d}.wav" for i, g in enumerate(labels)])
    return ids, labels, X.astype(np.float32)


def _runs(cfg):
    client = MlflowClient(resolve_tracking_uri(cfg))
    exp = client.get_experiment_by_name(cfg.experiment.name)
    return client, client.search_runs([exp.experiment_id])


def test_the_four_formats_read_the_same(tmp_path):
    ids, labels, X = _blobs()
    np.savez(tmp_path / "a.npz", id=ids, label=labels, embedding=X)
    wide = pd.DataFrame({"id": ids, "label": labels, **{f"e{j}": X[:, j] for j in range(X.shape[1])}})
    wide.to_csv(tmp_path / "b.csv", index=False, float_format="%.9g")
    wide.to_parquet(tmp_path / "c.parquet")
    pd.DataFrame({"id": ids, "label": labels, "embedding": [list(map(float, r)) for r in X]}).to_parquet(tmp_path / "d.parquet")
    np.savez(tmp_path / "e.npz", X=X, ids=ids, labels=labels)  # the lab's own embeddings.npz artifact
    for name in ("a.npz", "b.csv", "c.parquet", "d.parquet", "e.npz"):
        t = read_embeddings(tmp_path / name)
        assert t.ids == ids.tolist() and t.labels == labels.tolist() and t.parts is None, name
        np.testing.assert_array_equal(t.X, X)  # float32 survives the text round trip at 9 significant digits


def _bad(tmp_path, case: str):
    ids, labels, X = _blobs(n_per=2)  # 6 items
    p = tmp_path / "bad.npz"
    if case == "no_embedding":
        np.savez(p, id=ids, label=labels)
    elif case == "no_id":
        np.savez(p, label=labels, embedding=X)
    elif case == "ragged_npz":
        np.savez(p, id=ids, label=labels, embedding=np.array([np.zeros(3), np.zeros(4)] * 3, dtype=object))
    elif case == "ragged_csv":
        p = tmp_path / "bad.csv"
        pd.DataFrame({"id": ids, "label": labels, "embedding": ["[1, 2, 3]"] * 5 + ["[1, 2]"]}).to_csv(p, index=False)
    elif case == "non_numeric_npz":
        np.savez(p, id=ids, label=labels, embedding=np.full((6, 3), "x"))
    elif case == "non_numeric_csv":
        p = tmp_path / "bad.csv"
        pd.DataFrame({"id": ids, "label": labels, "e0": ["0.1"] * 5 + ["abc"], "e1": 1.0}).to_csv(p, index=False)
    elif case == "nan":
        X[2, 1] = np.nan
        np.savez(p, id=ids, label=labels, embedding=X)
    elif case == "inf":
        X[4, 0] = np.inf
        np.savez(p, id=ids, label=labels, embedding=X)
    elif case == "duplicate_ids":
        ids[3] = ids[0]
        np.savez(p, id=ids, label=labels, embedding=X)
    elif case == "short_ids":
        np.savez(p, id=ids[:5], label=labels, embedding=X)
    elif case == "one_d":
        np.savez(p, id=ids, label=labels, embedding=X[:, 0])
    elif case == "no_labels":
        np.savez(p, id=ids, embedding=X)
    elif case == "empty_label":
        labels[1] = ""
        np.savez(p, id=ids, label=labels, embedding=X)
    elif case == "txt":
        p = tmp_path / "bad.txt"
        p.write_text("1 2 3\n")
    elif case == "missing":
        p = tmp_path / "nowhere.npz"
    else:
        np.savez(p, id=ids, label=labels, embedding=X)
    return p


@pytest.mark.parametrize("case, overrides, message", [
    ("no_embedding", [], "bad.npz has no 'embedding' array (found: id, label)"),
    ("no_id", [], "bad.npz has no 'id' array (found: label, embedding)"),
    ("ragged_npz", [], "array 'embedding' holds Python objects (e.g. ragged embedding rows or mixed types)"),
    ("ragged_csv", [], "the embedding rows have different lengths (2 to 3 numbers)"),
    ("non_numeric_npz", [], "the embedding holds non-numeric values (dtype <U1)"),
    ("non_numeric_csv", [], "column 'e0' holds non-numeric values (e.g. 'abc')"),
    ("nan", [], "the embedding holds NaN or infinite values in 1 of 6 rows (first: id 'jazz/jazz.002.wav')"),
    ("inf", [], "the embedding holds NaN or infinite values in 1 of 6 rows (first: id 'pop/pop.004.wav')"),
    ("duplicate_ids", [], "bad.npz repeats id 'rock/rock.000.wav' (1 id(s) appear more than once); ids must be unique"),
    ("short_ids", [], "id has shape (5,) but the embedding has 6 rows"),
    ("one_d", [], "the embedding has shape (6,); it must be 2-D"),
    ("empty_label", [], "1 item(s) have an empty label (first: id 'rock/rock.001.wav')"),
    ("txt", [], "is not an embeddings file: use .npz, .csv or .parquet"),
    ("missing", [], "nowhere.npz does not exist"),
    ("good", ["cluster_count=ten"], "cluster_count.k=10 is larger than the number of usable songs (6)"),
    ("no_labels", [], "experiment=clustering needs a label per item, but"),
    ("no_labels", ["experiment=probe"], "experiment=probe needs a label per item"),
    ("good", ["experiment=transforms"], "experiment=transforms needs audio to embed, but model=embeddings holds vectors computed elsewhere"),
    ("good", ["experiment=dream"], "experiment=dream needs audio to embed"),
    ("good", ["experiment=tags"], "experiment=tags needs tag probabilities, but model=embeddings (bad) outputs none"),
    ("good", ["experiment=out_of_domain"], "needs a 'part' (or 'set') column naming each item's set"),
])
def test_a_bad_file_is_one_sentence_and_opens_no_run(compose_cfg, tmp_path, case, overrides, message):
    path = _bad(tmp_path, case)
    with pytest.raises(LabError) as err:
        run(compose_cfg("model=embeddings", f"model.path={path}", *overrides))
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


def test_studies_on_a_file_clustering_cluster_scores_probe_and_tags(compose_cfg, tmp_path):
    ids, labels, X = _blobs()
    tags = np.stack([labels == g for g in ("rock", "jazz", "pop")], axis=1).astype(np.float32) * 0.9
    path = tmp_path / "mine.npz"
    np.savez(path, id=ids, label=labels, embedding=X, tags=tags, tag_names=np.array(["rocky", "jazzy", "poppy"]))
    base = ["model=embeddings", f"model.path={path}", "experiment.bootstrap.n_boot=50"]
    scores = run(compose_cfg(*base))
    assert scores["accuracy"] == 1.0 and scores["ari"] == pytest.approx(1.0)  # three far-apart blobs
    cfg = compose_cfg(*base)
    client, (r,) = _runs(cfg)
    t = r.data.tags
    assert (t["model"], t["dataset"], t["model_kind"], t["embedding_dim"]) == ("mine", "mine", "embeddings", "6")
    assert "data_note" not in t and "listen_map" not in {a.path for a in client.list_artifacts(r.info.run_id)}  # no audio
    best = run(compose_cfg("model=embeddings", f"model.path={path}", "experiment=cluster_scores", "experiment.k_max=6",
                           "experiment.seeds=1"))
    assert best["best_k/silhouette"] == 3
    probe = run(compose_cfg("model=embeddings", f"model.path={path}", "experiment=probe", "experiment.folds=3",
                            "experiment.inner_folds=2"))
    assert probe["probe_accuracy"] == 1.0
    run(compose_cfg("model=embeddings", f"model.path={path}", "experiment=tags", "experiment.top_k=1"))
    cfg = compose_cfg("model=embeddings", f"model.path={path}", "experiment=tags")
    client, (r,) = _runs(cfg)
    top = pd.read_csv(client.download_artifacts(r.info.run_id, "top_tags.csv"))
    assert (top.tag1 == top.label.map({"rock": "rocky", "jazz": "jazzy", "pop": "poppy"})).all()


def test_similarity_between_files_has_known_answers(compose_cfg, tmp_path):
    """A rotated, scaled copy scores 1 on every measure; independent noise sits at its chance level."""
    rng = np.random.default_rng(1)
    ids, labels, X = _blobs(n_per=12, dim=8)
    np.savez(tmp_path / "a.npz", id=ids, label=labels, embedding=X)
    Y = 2.5 * X @ ortho_group.rvs(8, random_state=3)
    order = rng.permutation(len(ids))  # rows in another order: matched by id
    np.savez(tmp_path / "b.npz", id=ids[order], embedding=Y[order])
    np.savez(tmp_path / "c.npz", id=ids, embedding=rng.standard_normal((len(ids), 8)))
    cfg = compose_cfg("experiment=similarity", f"experiment.models=[{tmp_path / 'a.npz'},{tmp_path / 'b.npz'},{tmp_path / 'c.npz'}]",
                      "experiment.n_boot=20", "experiment.n_perm=50", "experiment.knn_k=5")
    s = run(cfg)
    for m in ("linear_cka", "linear_cka_debiased", "mutual_knn"):
        assert s[f"{m}/a.vs.b"] == pytest.approx(1.0, abs=1e-6), m
    assert abs(s["linear_cka_debiased/a.vs.c"]) < 0.1 < s["linear_cka/a.vs.c"]  # the biased one is inflated at n = 36
    assert s["linear_cka/a.vs.c"] < s["linear_cka/chance/a.vs.c"] + 0.1  # ... to its own chance level
    client, (r,) = _runs(cfg)
    assert r.info.status == "FINISHED" and r.data.tags["models"] == "a,b,c"
    rows = pd.read_csv(client.download_artifacts(r.info.run_id, "mutual_knn.csv"))
    assert {"null_mean", "null_q95"} <= set(rows.columns)


def test_out_of_domain_placement_from_a_part_column(compose_cfg, tmp_path):
    ids, labels, X = _blobs(n_per=12)
    rng = np.random.default_rng(2)
    near_jazz = X[labels == "jazz"].mean(0) + 3.0 + rng.standard_normal((8, X.shape[1]))  # a set beside jazz
    path = tmp_path / "ood.npz"
    np.savez(path, id=np.r_[ids, [f"new/{i}" for i in range(8)]], label=np.r_[labels, ["?"] * 8],
             part=np.r_[[""] * len(ids), ["newset"] * 8], embedding=np.r_[X, near_jazz].astype(np.float32))
    cfg = compose_cfg("model=embeddings", f"model.path={path}", "experiment=out_of_domain", "experiment.n_perm=20",
                      "experiment.n_boot=20", "experiment.umap=false")
    m = run(cfg)
    _, (r,) = _runs(cfg)
    assert r.info.status == "FINISHED" and r.data.tags["ood.newset.nearest"] == "jazz"
    assert m["newset.n_items"] == 8 and m["newset.knn_self_share"] > 0.5


# --- on gtzan_mini, with the lab's own models -----------------------------------------------------

@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """Compose with a cache shared by this module's tests (fcn and handcrafted embed gtzan_mini once)."""
    need(GTZAN_MINI), need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from conftest import REFERENCE, ROOT

    root = tmp_path_factory.mktemp("mini")

    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        base = [f"paths.mlruns={root / 'mlruns'}", f"paths.cache={root / 'cache'}", f"paths.weights={WEIGHTS}",
                f"paths.reference={REFERENCE}", "embed.progress=false", "dataset=gtzan", f"dataset.root={GTZAN_MINI}",
                "experiment.listen_map=false" if not any(o.startswith("experiment=") for o in overrides) else "seed=0"]
        with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
            return compose(config_name="config", overrides=base + list(overrides))

    _compose.root = root
    yield _compose
    GlobalHydra.instance().clear()


@pytest.mark.slow  # fcn embeds gtzan_mini once (~20 s on the 2-core EPYC), then six clusterings
def test_fcn_embeddings_written_to_npz_cluster_exactly_like_fcn(mini, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from lab.extract.pipeline import load_embeddings

    _, emb = load_embeddings(mini("model=fcn"))
    path = mini.root / "fcn_gtzan_mini.npz"
    np.savez(path, id=np.array(emb.ids), label=emb.labels, embedding=emb.X)  # the documented format
    for clusterer, seed in (("kmeans", 0), ("kmeans", 1), ("gmm", 2)):
        common = [f"clusterer={clusterer}", f"seed={seed}", "experiment.bootstrap.n_boot=0"]
        lab = run(mini("model=fcn", *common))
        mine = run(mini("model=embeddings", f"model.path={path}", *common))
        for score in ("accuracy", "nmi", "ari"):
            assert mine[score] == lab[score], (clusterer, seed, score)


@pytest.mark.slow  # the handcrafted features of gtzan_mini (~25 s), then four studies
def test_handcrafted_runs_clustering_cluster_scores_similarity_and_probe_on_gtzan_mini(mini, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    c = run(mini("model=handcrafted", "experiment.bootstrap.n_boot=100"))
    assert 0.3 < c["accuracy"] <= 1  # well above chance (0.1) on 10 genres
    cfg = mini("model=handcrafted")
    client = MlflowClient(resolve_tracking_uri(cfg))
    (r,) = client.search_runs([client.get_experiment_by_name("clustering").experiment_id],
                              filter_string="tags.model = 'handcrafted'")
    assert (r.data.tags["embedding_dim"], r.data.tags["pretrained"], r.data.metrics["n_songs"]) == ("92", "none", 50)
    with np.load(client.download_artifacts(r.info.run_id, "embeddings.npz")) as z:  # z-scored across the 50 songs
        np.testing.assert_allclose(z["X"].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(z["X"].std(0), 1, atol=1e-4)
    best = run(mini("model=handcrafted", "experiment=cluster_scores", "experiment.k_max=6", "experiment.seeds=1"))
    assert 2 <= best["best_k/silhouette"] <= 6
    p = run(mini("model=handcrafted", "experiment=probe", "experiment.folds=5", "experiment.inner_folds=2"))
    assert p["probe_accuracy"] > p["chance_accuracy"] + 0.2
    s = run(mini("experiment=similarity", "experiment.models=[handcrafted,fcn]", "experiment.n_boot=20", "experiment.n_perm=20"))
    assert 0 < s["linear_cka/handcrafted.vs.fcn-jamendo"] < 1 and "mutual_knn/handcrafted.vs.fcn-jamendo" in s
