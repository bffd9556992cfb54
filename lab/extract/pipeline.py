"""The steps every study composes: build a dataset, build a model, embed through the cache, log it.

Each step does one job, so a study can use any of them on their own: the dream needs the plain
model (with gradients) and one genre's mean; the transforms study embeds an original and a shifted
dataset with the same model; the out-of-domain study embeds a composite dataset. Data flows one
way: config -> dataset, model -> :class:`~lab.extract.embed.Embeddings` (cached) -> study -> tracker.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from lab.core.errors import LabError
from lab.core.storage import exclusive, text_sha256
from lab.datasets import Clip, Dataset, ItemsDataset, build_dataset
from lab.extract.embed import Embeddings, extract
from lab.extract.sharding import parse_shard, shard_of
from lab.models import REGISTRY, load
from lab.models.precomputed import PrecomputedEmbeddings
from lab.models.protocol import EmbeddingModel, items_name, model_label

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "NEEDS", "build_dataset", "build_model", "check_needs", "dataset_for", "embed", "items_dataset",
           "load_embeddings", "log_embedded", "standardized"]


@dataclass
class LoadedModel:
    """A model ready to use: the plain (differentiable where it can be) model plus what identifies it.

    Any :class:`~lab.models.protocol.EmbeddingModel`: a tagger, or a user's network, a HEAR module,
    the handcrafted features or an embeddings file (``precomputed``: its items and vectors are read,
    not computed).
    """

    model: EmbeddingModel  # eval mode, plain (the optimized inference copy is an internal of extraction)
    weights_id: str  # identity for the cache: checkpoint SHA-256, random-<seed>, or a user model's digest
    tag_names: list[str]  # model-output order ([] when the model gives no tags)
    name: str  # the model's folder in the embedding cache (info.name)
    label: str = ""  # how runs and tables name it (the MLflow ``model`` tag)
    standardize: bool = False  # z-score every dimension across the study's songs (handcrafted features)

    @property
    def precomputed(self) -> bool:
        """Whether the model is an embeddings file (no audio is embedded)."""
        return isinstance(self.model, PrecomputedEmbeddings)


_LOADED: dict[tuple, LoadedModel] = {}  # a job checks its checkpoint before its run opens, then uses it


def build_model(cfg: DictConfig, *, device: str = "cpu") -> LoadedModel:
    """The model of ``cfg.model`` (a tagger with its checkpoint loaded strictly or random weights, or any
    other kind of :mod:`lab.models.protocol`), on ``device``.

    Loaded once per process for the same arguments (the app's pre-run check and the experiment
    share it); the model is in eval mode and must not be modified in place.
    """
    spec = OmegaConf.to_container(cfg.model, resolve=True)
    weights_dir = to_absolute_path(str(cfg.paths.weights))
    seeded = not spec.get("pretrained", True) or spec.get("name") not in REGISTRY  # random weights depend on the seed
    key = (json.dumps(spec, sort_keys=True, default=str), weights_dir, int(cfg.seed) if seeded else None, device)
    if key not in _LOADED:
        built = load(spec, seed=int(cfg.seed), weights_dir=weights_dir)
        _LOADED.clear()  # keep one model: a sweep process moves from model to model
        _LOADED[key] = LoadedModel(model=built.model.to(device), weights_id=built.identity, tag_names=built.tag_names,
                                   name=built.model.info.name, label=built.label or model_label(spec),
                                   standardize=built.standardize)
    return _LOADED[key]


def items_dataset(loaded: LoadedModel, name: str | None = None) -> ItemsDataset:
    """The items of an embeddings file as a dataset without audio (id, label, part per item)."""
    t = loaded.model.table
    labels = t.labels or [""] * len(t)
    parts = t.parts or [""] * len(t)
    artists = t.artists or [""] * len(t)
    clips = [Clip(id=i, label=lab, path=t.path, part=p, artist=a) for i, lab, p, a in zip(t.ids, labels, parts, artists)]
    return ItemsDataset(name=name or loaded.label, clips=clips, root=t.path)


def dataset_for(cfg: DictConfig, loaded: LoadedModel | None = None) -> Dataset:
    """The study's items: the embeddings file's own when the model is one, else the ``dataset`` group's."""
    if loaded is not None and loaded.precomputed:
        return items_dataset(loaded, items_name(cfg.model))
    return build_dataset(cfg.dataset)


# What an experiment may declare in ``experiment.needs`` (conf/experiment/<name>.yaml), checked before any run opens.
NEEDS = ("audio", "gradients", "labels", "tags")


def check_needs(cfg: DictConfig, loaded: LoadedModel) -> None:
    """One sentence when the model cannot give what ``experiment.needs`` lists (audio, gradients, labels, tags)."""
    exp, who = cfg.experiment.name, f"model={cfg.model.name}" + ("" if loaded.label == cfg.model.name else f" ({loaded.label})")
    needs = list(cfg.experiment.get("needs") or [])
    for need in needs:
        if need not in NEEDS:
            raise LabError(f"experiment.needs lists {need!r}; the known needs are {', '.join(NEEDS)}")
    table = loaded.model.table if loaded.precomputed else None
    if "audio" in needs and table is not None:
        raise LabError(f"experiment={exp} needs audio to embed, but model=embeddings holds vectors computed elsewhere "
                       f"({table.path}); run it with a model that embeds audio (a tagger, handcrafted, custom or hear)")
    if "gradients" in needs:
        if not getattr(loaded.model, "differentiable", False):
            raise LabError(f"experiment={exp} needs gradients from the embedding back to the waveform, but {who} is not "
                           f"differentiable; use a tagger or a torch network (model=custom)")
        if loaded.model.info.input_length is None:
            raise LabError(f"experiment={exp} optimises a waveform of fixed length, but {who} takes whole clips "
                           f"(model.window=null); set model.window=SAMPLES")
    if "labels" in needs and table is not None and table.labels is None:
        raise LabError(f"experiment={exp} needs a label per item, but {table.path} has no 'label' array or column; add "
                       f"one (e.g. the genre of each item), or run experiment=cluster_scores or experiment=similarity, which need none")
    if "tags" in needs and not loaded.tag_names:
        raise LabError(f"experiment={exp} needs tag probabilities, but {who} outputs none")


def _from_file(loaded: LoadedModel, dataset: Dataset) -> Embeddings:
    """The file's vectors of ``dataset``'s clips (matched by id, in dataset order)."""
    t = loaded.model.table
    row = {i: r for r, i in enumerate(t.ids)}
    clips = [c for c in dataset.clips if c.id in row]
    if not clips:
        raise LabError(f"none of the {len(t)} ids of {t.path} (e.g. {t.ids[0]!r}) is a clip id of dataset={dataset.name} "
                       f"(e.g. {dataset.clips[0].id if dataset.clips else 'none'!r}); the file's ids must be the dataset's clip ids")
    idx = [row[c.id] for c in clips]
    X = t.X[idx]
    T = t.tags[idx] if t.tags is not None else np.zeros((len(idx), 0), np.float32)
    return Embeddings(X=X, tags=T, clips=clips, windows=[X[i : i + 1] for i in range(len(idx))],
                      window_tags=[T[i : i + 1] for i in range(len(idx))], hits=len(idx), misses=0)


def standardized(X: np.ndarray, scaling: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Every column of ``X`` [shape=(n, d)] z-scored: with ``scaling`` = (mean, std) if given, else across
    the rows (a constant column becomes 0). Returns the float32 matrix and the (mean, std) used."""
    X64 = np.asarray(X, np.float64)
    if scaling is None:
        sd = X64.std(axis=0)
        scaling = (X64.mean(axis=0), np.where(sd > 0, sd, 1.0))
    return ((X64 - scaling[0]) / scaling[1]).astype(np.float32), scaling


def embed(cfg: DictConfig, dataset: Dataset, loaded: LoadedModel, tracker=None, *, scale_like: Embeddings | None = None) -> Embeddings:
    """Embed ``dataset`` with ``loaded`` through the cache at ``paths.cache``; log what was embedded.

    An embeddings file is read instead (its rows of ``dataset``'s clips). A model with ``standardize``
    (the handcrafted features) gets its song embeddings z-scored across these songs — or with the
    scaling of ``scale_like`` (e.g. shifted copies scaled like their originals); the cache holds them raw.
    """
    if loaded.precomputed:
        emb = _from_file(loaded, dataset)
        log_embedded(tracker, dataset, emb, loaded)
        return emb
    e = cfg.embed
    if e.get("num_threads"):
        torch.set_num_threads(int(e.num_threads))
    cache_dir = to_absolute_path(str(cfg.paths.cache))
    shard = e.get("shard")
    lock = ".extract.lock"
    if parse_shard(shard) is not None:
        # embed.shard=I/N: only this shard's clips (positions in id order), under a lock of its
        # own, so N shard jobs fill one cache side by side instead of queueing on the model lock.
        i, n, layout = parse_shard(shard)
        dataset = dataset.subset(shard_of([c.id for c in dataset.clips], shard))
        lock = f".extract-{i}of{n}-{layout}.lock"
        log.info("embed.shard=%s: %d clips of this shard", shard, len(dataset.clips))
    # One lock per (cache folder, model): parallel sweep jobs wait for the one extracting, then
    # read its cache, so a model's embeddings are computed once even with 2+ workers.
    with exclusive(Path(cache_dir) / loaded.name / lock):
        emb = extract(dataset, loaded.model, weights_id=loaded.weights_id, cache_dir=cache_dir,
                      batch_size=e.get("batch_size"), workers=e.get("workers"), progress=e.progress,
                      device=e.get("device") or "cpu", backend=e.get("backend") or "auto",
                      precision=e.get("precision") or "fp32")
    log_embedded(tracker, dataset, emb, loaded)
    if len(emb.clips) == 0:
        raise LabError(f"no usable audio in dataset={dataset.name} ({len(emb.skipped)} of {len(dataset.clips)} files skipped)")
    if loaded.standardize:
        emb.X, emb.scaling = standardized(emb.X, scale_like.scaling if scale_like is not None else None)
    return emb


def dataset_digest(dataset: Dataset) -> str:
    """SHA-256 over every clip's id and content fingerprint: equal digests, equal data (the MLflow dataset digest)."""
    return text_sha256(*(f"{c.id}\t{dataset.fingerprint(c)}" for c in dataset.clips))


def dataset_source(dataset: Dataset) -> str:
    """Where the dataset comes from: its root folder, else a ``<name>://<root>`` URI (built-in data)."""
    return dataset.root if Path(dataset.root).is_absolute() else f"{dataset.name}://{dataset.root or 'generated'}"


def log_embedded(tracker, dataset: Dataset, emb: Embeddings, loaded: LoadedModel | None = None, *, prefix: str = "") -> None:
    """Warn about skipped/padded clips and log counts (``prefix`` tells several datasets of one run apart)."""
    skipped, padded = emb.skipped, emb.padded
    notes = []
    if skipped:
        where = (f"{tracker.artifact_uri}/{prefix}skipped_files.csv" if tracker is not None
                 else f"the run's {prefix}skipped_files.csv")
        notes.append(f"{len(skipped)} of {len(dataset.clips)} files of {dataset.name} skipped as unusable audio "
                     f"({', '.join(sorted({i.reason for i in skipped}))}); each with its reason in {where}")
    if padded:
        notes.append(f"{len(padded)} clip{'s' if len(padded) != 1 else ''} of {dataset.name} shorter than one "
                     f"{loaded.name if loaded else 'model'} window were zero-padded to one window")
    for note in dataset.notes + notes:
        tracker.warn(note) if tracker is not None else log.warning(note)
    if tracker is None:
        return
    tracker.log_dataset(dataset.name, digest=dataset_digest(dataset), source=dataset_source(dataset),
                        n_rows=len(dataset.clips), context=prefix.rstrip("_/.") or "eval")
    if loaded is not None and not prefix:
        tracker.set_tags({"weights": loaded.weights_id[:16], "n_songs": len(emb.clips), "embedding_dim": int(emb.X.shape[1])})
    tracker.log_metrics({f"{prefix}{k}": float(v) for k, v in {
        "n_songs": len(emb.clips), "n_skipped": len(skipped), "n_padded": len(padded),
        "cache_hits": emb.hits, "cache_misses": emb.misses}.items()})
    if skipped:
        tracker.log_csv([{"path": i.clip.path, "id": i.clip.id, "reason": i.reason, "detail": i.detail} for i in skipped],
                        f"{prefix}skipped_files.csv")


def load_embeddings(cfg: DictConfig, tracker=None) -> tuple[Dataset, Embeddings]:
    """``build_model`` + :func:`dataset_for` + ``embed`` for the configured model and dataset.

    With ``model=embeddings`` the items are the file's own and the ``dataset`` group is not used.
    """
    loaded = build_model(cfg)
    dataset = dataset_for(cfg, loaded)
    if loaded.precomputed:
        log.info("model=embeddings: the study runs on the %d items of %s (the dataset group is not used)",
                 len(dataset.clips), loaded.model.table.path)
    return dataset, embed(cfg, dataset, loaded, tracker)
