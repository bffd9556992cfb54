"""Bad config: every option of every config group given a wrong type or an out-of-range value is
refused with one sentence naming it, before any audio is read and before an MLflow run opens
(issue 11, "Robustness with figures"; the checks live in lab.app.config, lab.stats.clusterers and
lab.app.task.preflight)."""

from __future__ import annotations

import pytest

from lab.app.task import run
from lab.core.errors import LabError

from conftest import GTZAN_MINI, need

pytestmark = pytest.mark.robustness

SMALL = ["dataset.n_per_class=1", "dataset.seconds=2"]  # synth, when the case does not pick a dataset

# (overrides, the sentence's start): one row per option and kind of mistake.
CASES = [
    ("seed=-1", "seed=-1 must be at least 0"),
    ("seed=abc", "seed='abc' must be an integer"),
    ("model.pretrained=maybe", "model.pretrained='maybe' must be true or false"),
    ("model.sample_rate=22050", "model.sample_rate=22050 disagrees with the fcn architecture (16000)"),
    ("model.input_length=5", "model.input_length=5 disagrees with the fcn architecture (464000)"),
    ("model.embedding_dim=256", "model.embedding_dim=256 disagrees with the fcn architecture (64)"),
    ("model.checkpoint=nope.pth", "no checkpoint for model=fcn at "),
    ("paths.weights=/nonexistent", "no checkpoint for model=fcn at /nonexistent/"),
    ("dataset.n_per_class=0", "dataset.n_per_class=0 must be at least 1"),
    ("dataset.n_per_class=abc", "dataset.n_per_class='abc' must be an integer"),
    ("dataset.seconds=0.5", "dataset.seconds=0.5 must be a number >= 1.0"),
    ("dataset.seconds=abc", "dataset.seconds='abc' must be a number >= 1.0"),
    ("dataset.seed=-1", "dataset.seed=-1 must be at least 0"),
    ("dataset.seed=abc", "dataset.seed='abc' must be an integer"),
    ("dataset.min_seconds=-1", "dataset.min_seconds=-1 must be a number >= 0.0"),
    ("clusterer.n_init=-1", "clusterer.n_init=-1 must be a positive integer"),
    ("clusterer.n_init=abc", "clusterer.n_init='abc' must be a positive integer"),
    ("clusterer.max_iter=0", "clusterer.max_iter=0 must be a positive integer"),
    ("clusterer.standardize=maybe", "clusterer.standardize='maybe' must be true or false"),
    ("clusterer=gmm clusterer.n_init=0", "clusterer.n_init=0 must be a positive integer"),
    ("clusterer=gmm clusterer.max_iter=abc", "clusterer.max_iter='abc' must be a positive integer"),
    ("clusterer=gmm clusterer.reg_covar=-1", "clusterer.reg_covar=-1 must be a number >= 0"),
    ("clusterer=gmm clusterer.covariance_type=round", "clusterer.covariance_type='round' must be one of full, tied, diag, spherical"),
    ("cluster_count.k=1", "cluster_count.k=1 must be at least 2"),
    ("cluster_count.k=abc", "cluster_count.k='abc' must be an integer or null"),
    ("cluster_count.k=100", "cluster_count.k=100 is larger than the number of usable songs (6)"),
    ("experiment.tsne_perplexity=0", "experiment.tsne_perplexity=0 must be a number > 0"),
    ("experiment.tsne_perplexity=abc", "experiment.tsne_perplexity='abc' must be a number > 0"),
    ("experiment.save_embeddings=maybe", "experiment.save_embeddings='maybe' must be true or false"),
    ("experiment.rogue_neighbors=0", "experiment.rogue_neighbors=0 must be at least 1"),
    ("experiment.rogue_top=-1", "experiment.rogue_top=-1 must be at least 0"),
    ("experiment=tags experiment.top_k=0", "experiment.top_k=0 must be at least 1"),
    ("experiment=cluster_scores experiment.k_min=1", "experiment.k_min=1 must be at least 2"),
    ("experiment=cluster_scores experiment.k_max=abc", "experiment.k_max='abc' must be an integer"),
    ("experiment=cluster_scores experiment.k_min=5 experiment.k_max=3", "experiment.k_max=3 must be at least experiment.k_min=5"),
    ("experiment=cluster_scores experiment.seeds=0", "experiment.seeds=0 must be at least 1"),
    ("embed.batch_size=0", "embed.batch_size=0 must be a positive integer or null"),
    ("embed.workers=abc", "embed.workers='abc' must be a positive integer or null"),
    ("embed.num_threads=-2", "embed.num_threads=-2 must be a positive integer or null"),
    ("embed.progress=maybe", "embed.progress='maybe' must be true or false"),
    ("embed.device=tpu", "embed.device='tpu' must be cpu, cuda (or cuda:N) or mps"),
    ("plots.dpi=0", "plots.dpi=0 must be a whole number of dots per inch in [50, 1200]"),
    ("plots.dpi=abc", "plots.dpi='abc' must be a whole number of dots per inch"),
]

# Dataset groups other than synth (their own options), with a real folder where one is needed.
FOLDER_CASES = [
    ("dataset=folder dataset.root=/nonexistent", "dataset.root=/nonexistent does not exist"),
    ("dataset=folder dataset.root={gtzan}/genres dataset.min_seconds=abc", "dataset.min_seconds='abc' must be a number >= 0.0"),
    ("dataset=gtzan dataset.root=/tmp", "dataset.root=/tmp does not look like GTZAN"),
    ("dataset=gtzan dataset.root={gtzan} dataset.split=half", "dataset.split='half' must be 'all' or 'fault_filtered'"),
    ("dataset=folder dataset.root={gtzan}/genres dataset.extensions=wav", "dataset.extensions='wav' must be a non-empty list"),
]


def _refused(compose_cfg, tmp_path, overrides: list[str], expected: str) -> None:
    cfg = compose_cfg(*overrides)
    with pytest.raises(LabError) as err:
        run(cfg)
    msg = str(err.value)
    assert msg.startswith(expected), msg
    assert "\n" not in msg and "Traceback" not in msg
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # refused before any MLflow run opened


@pytest.mark.slow  # 43 cases, about a second each (a compose and the pre-run checks)
@pytest.mark.heavy  # tests/test_config.py checks the same sentences in the default run
@pytest.mark.parametrize("overrides, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_value_is_one_sentence_before_any_run(compose_cfg, tmp_path, overrides, expected):
    ov = overrides.split(" ")
    _refused(compose_cfg, tmp_path, ([] if any(o.startswith("dataset=") for o in ov) else SMALL) + ov, expected)


@pytest.mark.parametrize("overrides, expected", FOLDER_CASES, ids=[c[0].split(" ")[0] + ":" + c[1][:30] for c in FOLDER_CASES])
def test_bad_dataset_option_is_one_sentence_before_any_run(compose_cfg, tmp_path, overrides, expected):
    need(GTZAN_MINI)
    _refused(compose_cfg, tmp_path, overrides.format(gtzan=GTZAN_MINI).split(" "), expected)
