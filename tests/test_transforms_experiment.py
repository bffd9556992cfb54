"""experiment=transforms end to end: real checkpoint, shifted audio cached once, bad files skipped with a reason."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from lab.app.task import run
from lab.tracking import resolve_tracking_uri

from conftest import WEIGHTS, need

SR = 16000


def _folder(root):
    """4 good songs (tones with irregular clicks, 6 s), one corrupt file, one too short."""
    rng = np.random.default_rng(0)
    for i in range(4):
        t = np.arange(6 * SR) / SR
        y = 0.2 * np.sin(2 * np.pi * (180 + 60 * i) * t) * (1 + np.sin(2 * np.pi * (0.5 + i) * t))
        for h in np.cumsum(rng.uniform(0.2, 0.5, size=20)):
            if h < 5.9:
                y[int(h * SR): int(h * SR) + 60] += 0.8
        (root / f"style{i % 2}").mkdir(parents=True, exist_ok=True)
        sf.write(root / f"style{i % 2}" / f"song{i}.wav", y.astype(np.float32), SR)
    (root / "style0" / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(root / "style1" / "short.wav", np.full(SR // 2, 0.1, np.float32), SR)


@pytest.mark.slow  # two MLflow runs with the real FCN checkpoint (~20 s unloaded, 2 min on a busy machine)
def test_transforms_job_caches_shifts_and_skips_bad_files(compose_cfg, tmp_path):
    need(WEIGHTS / "jamendo" / "fcn" / "best_model.pth")
    _folder(tmp_path / "music")
    base = ("experiment=transforms", "dataset=folder", f"dataset.root={tmp_path / 'music'}", "model=fcn",
            "shift=tempo", "shift.measure=false", f"paths.derived={tmp_path / 'derived'}", "experiment.folds=2",
            "experiment.example_seconds=2")
    first = compose_cfg(*base, "transform=affine")
    scores = run(first)
    client = MlflowClient(resolve_tracking_uri(first))
    exp = client.get_experiment_by_name("transforms")
    (r,) = client.search_runs([exp.experiment_id])
    m, t = r.data.metrics, r.data.tags
    assert r.info.status == "FINISHED" and scores["n_pairs"] == 4
    assert (t["transform"], t["shift_kind"], t["shift_amount"], t["shift_length"]) == ("affine", "tempo", "1.5", "loop")
    assert m["shifts_computed"] == 4 and m["shifts_reused"] == 0
    assert m["n_skipped"] == 2 and m["shifted.n_padded"] == 4  # 6-s songs in FCN's 29-s window
    assert 0 <= m["cv.nn_accuracy"] <= 1 and m["chance_nn_accuracy"] == pytest.approx(0.25)
    assert m["in_sample.mse"] <= m["cv.mse"] + 1e-9
    skipped = client.download_artifacts(r.info.run_id, "skipped_files.csv")
    text = open(skipped).read()
    assert "corrupt.wav" in text and "unreadable" in text and "short.wav" in text and "too_short" in text
    names = {a.path for a in client.list_artifacts(r.info.run_id, "audio")}
    assert any(n.endswith(".shifted.ogg") for n in names) and any(n.endswith(".original.ogg") for n in names)
    assert {a.path for a in client.list_artifacts(r.info.run_id)} >= {"songs.csv", "embeddings.npz"}

    # Another transform of the same shift: nothing shifted or embedded again.
    run(compose_cfg(*base, "transform=translation"))
    r2 = [x for x in client.search_runs([exp.experiment_id]) if x.data.tags["transform"] == "translation"][0]
    assert r2.data.metrics["shifts_computed"] == 0
    assert r2.data.metrics["cache_misses"] == 0 and r2.data.metrics["shifted.cache_misses"] == 0
