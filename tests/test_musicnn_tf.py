"""model=musicnn_tf: the musicnn package's TensorFlow checkpoint read with NumPy into PyTorch, held to TensorFlow's own outputs.

Needs the package's files (``pip install --no-deps musicnn``, or ``LAB_MUSICNN_DIR`` = an unpacked
wheel's ``musicnn/`` folder); the reference outputs were written by TensorFlow 2.15 running the
package's own extractor (scripts/musicnn_tf_reference.py), never by the lab.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lab.app.task import run
from lab.core.errors import LabError

from conftest import GTZAN_MINI, need

REFERENCE = Path(__file__).parent / "data" / "musicnn_tf_reference.npz"


def _package() -> str:
    where = os.environ.get("LAB_MUSICNN_DIR")
    if where:
        return where
    spec = importlib.util.find_spec("musicnn")
    if spec is None:
        pytest.skip("the musicnn package is not installed (pip install --no-deps musicnn, or set LAB_MUSICNN_DIR)")
    return list(spec.submodule_search_locations)[0]


def test_the_port_computes_what_tensorflow_computes_on_a_real_clip():
    import librosa

    from lab.models.musicnn_tf import build_musicnn_tf, log_mel, patches

    ref = np.load(REFERENCE)
    clip = need(GTZAN_MINI / "genres" / "blues" / str(ref["clip"]))
    built = build_musicnn_tf(package=_package())
    assert built.tag_names == ref["tags"].tolist() and built.model.info.embedding_dim == 200
    y, _ = librosa.load(clip, sr=16000)
    with torch.inference_mode():  # librosa 0.10+ pads with zeros, as the reference's librosa did
        emb, tags = built.model.net(torch.from_numpy(patches(log_mel(y, pad_mode="constant"))))
    assert tags.shape == ref["taggram"].shape == (10, 50)  # ten 3-s patches of the 30-s clip
    np.testing.assert_allclose(tags.numpy(), ref["taggram"], atol=1e-4)
    np.testing.assert_allclose(emb[0].numpy(), ref["penultimate0"], atol=1e-4)


def test_musicnn_tf_runs_clustering_and_is_tagged(compose_cfg):
    cfg = compose_cfg("model=musicnn_tf", f"model.package={_package()}", "dataset.n_per_class=1", "dataset.seconds=7",
                      "cluster_count.k=3", "experiment.bootstrap.n_boot=0")
    run(cfg)
    from mlflow.tracking import MlflowClient

    from lab.tracking import resolve_tracking_uri

    client = MlflowClient(resolve_tracking_uri(cfg))
    (r,) = client.search_runs([client.get_experiment_by_name("clustering").experiment_id])
    t = r.data.tags
    assert (r.info.status, t["model"], t["corpus"], t["embedding_dim"], t["model_kind"]) == ("FINISHED", "musicnn_tf", "mtat", "200", "musicnn_tf")


def test_a_missing_package_is_one_sentence(compose_cfg, tmp_path):
    with pytest.raises(LabError, match=r"model.package=.*nowhere is not a folder"):
        run(compose_cfg("model=musicnn_tf", f"model.package={tmp_path / 'nowhere'}"))
    with pytest.raises(LabError, match="model.corpus='jamendo' must be mtat or msd"):
        run(compose_cfg("model=musicnn_tf", f"model.package={tmp_path}", "model.corpus=jamendo"))
