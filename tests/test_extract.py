"""experiment=extract and embed.shard: shards fill exactly the cache one process fills; a real
sweep through the submitit launcher's local executor (the code path of submitit_slurm)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from test_sweeps import _env

from lab.app.task import run

# Random-weight sample-level CNN on short synthetic clips (2 windows each): real code paths, fast.
FAST = ["experiment=extract", "model=sample", "model.pretrained=false", "dataset.n_per_class=2", "dataset.seconds=8",
        "embed.progress=false"]


def _cache_arrays(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every cache entry under ``root/sample``: key -> arrays (lock files and graphs ignored)."""
    out = {}
    for f in sorted((root / "sample").rglob("*.npz")):
        with np.load(f) as z:
            out[f.stem] = {k: z[k] for k in z.files}
    return out


def test_extract_embeds_only_its_shard_and_logs_it(compose_cfg):
    cfg = compose_cfg(*FAST, "embed.shard=1/4")
    scores = run(cfg)
    assert scores["n_songs"] == 3  # 12 clips, positions 1, 5, 9 in id order
    client = MlflowClient(cfg.paths.tracking_uri or f"sqlite:///{cfg.paths.mlruns}/mlflow.db")
    (r,) = client.search_runs([client.get_experiment_by_name("extract").experiment_id])
    assert r.info.status == "FINISHED" and r.data.tags["shard"] == "1/4" and r.data.tags["n_shards"] == "4"
    assert r.data.metrics["cache_misses"] == 3 and r.data.metrics["s_per_clip"] > 0
    assert len(_cache_arrays(Path(cfg.paths.cache))) == 3


@pytest.mark.slow  # three processes embedding 12 clips: ~30 s on 2 cores
def test_two_shards_in_parallel_fill_exactly_the_cache_of_one_process(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "lab", *FAST, f"embed.shard={i}/2", f"paths.cache={tmp_path}/sharded",
                               f"paths.mlruns={tmp_path}/mlruns"], cwd=tmp_path, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
    one = subprocess.run([sys.executable, "-m", "lab", *FAST, f"paths.cache={tmp_path}/single",
                          f"paths.mlruns={tmp_path}/mlruns"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    sharded, single = _cache_arrays(tmp_path / "sharded"), _cache_arrays(tmp_path / "single")
    assert len(single) == 12 and sorted(sharded) == sorted(single)
    for key, arrays in single.items():
        assert sorted(arrays) == sorted(sharded[key])
        for name, a in arrays.items():
            np.testing.assert_array_equal(sharded[key][name], a, err_msg=f"{key}:{name}")
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("extract").experiment_id])
    assert sorted(r.data.metrics["cache_misses"] for r in runs) == [6, 6, 12]


@pytest.mark.slow  # submitit starts one Python process per job: ~40 s
def test_submitit_local_sweep_over_shards_finishes_every_run(tmp_path):
    p = subprocess.run([sys.executable, "-m", "lab", "-m", *FAST, "embed.shard=0/3,1/3,2/3", "hydra/launcher=submitit_local",
                        "hydra.launcher.timeout_min=20", "hydra.launcher.cpus_per_task=1", f"paths.cache={tmp_path}/cache",
                        f"paths.mlruns={tmp_path}/mlruns", f"hydra.sweep.dir={tmp_path}/multirun"],
                       cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("extract").experiment_id])
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.tags["shard"] for r in runs) == ["0/3", "1/3", "2/3"]
    assert sum(r.data.metrics["n_songs"] for r in runs) == 12
    assert len(_cache_arrays(tmp_path / "cache")) == 12  # the studies can now run on the full cache
