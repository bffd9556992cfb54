"""Latent-space similarity: how alike are the song embeddings of several taggers on the same songs?

Every model of ``experiment.models`` (``name`` or ``name@corpus``, e.g. ``fcn@mtat``) embeds the
configured dataset (through the cache); songs are aligned by clip id (only songs every model
embedded are kept, and how many were dropped is logged); then for each measure of
``experiment.measures`` (``linear_cka`` default, ``rbf_cka``, ``procrustes``; see
:mod:`lab.studies.similarity.cka`) every pair of models is compared, with a basic bootstrap interval over
artists (``experiment.group``: all songs of an artist redrawn together, the recording where the
artist is unknown; ``recording`` resamples songs as before; ``experiment.n_boot`` resamples, one
resample shared by all pairs) and a permutation null
(``experiment.n_perm`` shuffles: the value unrelated spaces reach on these songs and widths).

Artifacts per measure: ``<measure>.png`` (models × models heat map with intervals),
``<measure>.csv`` (one row per pair), ``<measure>_contrasts.csv`` (for model a trained on corpus c:
is it closer to another architecture trained on c, or to the same architecture trained on another
corpus? — the difference, its interval and the share of resamples favouring the first) and
``<measure>.npz`` (values, replicates, null). Metrics: ``<measure>/<a>.vs.<b>`` per pair and the
summary means ``<measure>/same_corpus_other_arch`` and ``<measure>/same_arch_other_corpus`` with
their difference ``<measure>/corpus_minus_arch`` (and its interval, ``..._lo``/``..._hi``).
"""

from __future__ import annotations

import copy
import itertools
import logging
import re
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf

from lab.core.compose import CONF_DIR
from lab.core.errors import LabError
from lab.datasets import clip_groups
from lab.extract.pipeline import build_dataset, build_model, dataset_for, embed, log_embedded
from lab.models import REGISTRY
from lab.models.protocol import model_label
from lab.stats import plots
from lab.studies.similarity import cka as similarity

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ModelSpec:
    """One entry of ``experiment.models``: a tagger trained on a corpus, the handcrafted features, the
    configured ``model`` group (any kind: a user's network, a HEAR module, an embeddings file, ...) or
    an embeddings file given by its path."""

    name: str  # tagger name, "handcrafted", "model" or "file"
    corpus: str | None = None  # taggers only
    path: str | None = None  # an embeddings file
    display: str = ""  # the label of a "model" or "file" entry

    @property
    def tagger(self) -> bool:
        return self.corpus is not None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.corpus}" if self.tagger else (self.display or self.name)

    @property
    def key(self) -> str:
        # MLflow metric names allow no '@' or ':'
        return f"{self.name}-{self.corpus}" if self.tagger else re.sub(r"[^A-Za-z0-9_.-]+", "-", self.label).strip("-")


FILE_SUFFIXES = (".npz", ".csv", ".parquet", ".pq")


def parse_models(entries, model=None) -> list[ModelSpec]:
    """``["fcn", "crnn@mtat", "handcrafted", "model", "emb/mine.npz"]`` -> specs; one sentence on a bad entry.

    ``<tagger>[@<corpus>]`` (corpus default ``jamendo``); ``handcrafted``; ``model``: the configured
    ``model`` group (``model`` is that config section, for its label); a path ending in .npz, .csv or
    .parquet: an embeddings file (``lab.models.precomputed``; its ids are matched to the clip ids).
    """
    from lab.models.weights import check_corpus

    if isinstance(entries, str) or len(entries) < 2:
        raise LabError(f"experiment.models={entries!r} must list at least two models, e.g. [fcn,crnn,fcn@mtat]")
    specs = []
    for e in entries:
        text = str(e)
        if text.lower().endswith(FILE_SUFFIXES):
            spec = ModelSpec("file", path=text, display=model_label({"name": "embeddings", "path": text}))
        elif text == "model":
            if model is None:
                raise LabError("experiment.models lists 'model', but no model group is configured")
            label = model_label(model)
            spec = ModelSpec(label, model.get("corpus", "jamendo")) if model.get("name") in REGISTRY and model.get("pretrained", True) \
                else ModelSpec("model", display=label + (f"@{model.corpus}" if model.get("corpus") else "")
                               + ("" if model.get("pretrained", True) is not False else " (random)"))
        elif text == "handcrafted":
            spec = ModelSpec("handcrafted", display="handcrafted")
        else:
            name, _, corpus = text.partition("@")
            if name not in REGISTRY:
                raise LabError(f"experiment.models entry {e!r}: model {name!r} is unknown; choose one of {', '.join(REGISTRY)}, "
                               f"handcrafted, model (the model group: custom, hear, embeddings, ...) or an embeddings file (.npz, .csv, .parquet)")
            spec = ModelSpec(name, corpus or "jamendo")
            check_corpus(spec.name, spec.corpus)
        if spec.label in [s.label for s in specs]:
            raise LabError(f"experiment.models lists {spec.label} twice")
        specs.append(spec)
    return specs


def model_cfg(cfg: DictConfig, spec: ModelSpec) -> DictConfig:
    """``cfg`` with its model group replaced by the entry's model (``conf/model/<name>.yaml`` at ``spec.corpus``)."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    if spec.name == "model":
        return out
    if spec.name == "file":
        m = OmegaConf.load(CONF_DIR / "model" / "embeddings.yaml")
        m.path = spec.path
    elif spec.name == "handcrafted":
        m = OmegaConf.load(CONF_DIR / "model" / "handcrafted.yaml")
    else:
        m = OmegaConf.load(CONF_DIR / "model" / f"{spec.name}.yaml")
        m.corpus = spec.corpus
        m.pretrained = bool(cfg.model.get("pretrained", True)) if cfg.model.get("name") in REGISTRY else True
    out.model = m
    return out


def aligned(ids_per_model: list[list[str]]) -> list[str]:
    """Clip ids every model embedded, in the first model's order."""
    common = set(ids_per_model[0]).intersection(*map(set, ids_per_model[1:]))
    return [i for i in ids_per_model[0] if i in common]


def contrasts(specs: list[ModelSpec], res: similarity.SimilarityResult, *, higher_is_similar: bool, ci: float) -> list[dict]:
    """For a@c: S(a@c, b@c) - S(a@c, a@c') for every other architecture b and corpus c' (sign: > 0 = corpus wins)."""
    sign = 1.0 if higher_is_similar else -1.0
    idx = {s: i for i, s in enumerate(specs)}
    rows = []
    for s in [t for t in specs if t.tagger]:  # corpus vs architecture: a question about the taggers only
        for b in [t for t in specs if t.tagger]:
            if b.corpus != s.corpus or b.name == s.name:
                continue
            for a2 in [t for t in specs if t.tagger]:
                if a2.name != s.name or a2.corpus == s.corpus:
                    continue
                i, j, k = idx[s], idx[b], idx[a2]
                d = sign * (res.value[i, j] - res.value[i, k])
                boot = sign * (res.boot[:, i, j] - res.boot[:, i, k])
                lo, hi = similarity.basic_interval(d, boot, ci) if len(boot) else (np.nan, np.nan)
                rows.append({"model": s.label, "same_corpus_other_arch": b.label, "same_arch_other_corpus": a2.label,
                             "sim_same_corpus": round(float(res.value[i, j]), 4), "sim_same_arch": round(float(res.value[i, k]), 4),
                             "difference": round(float(d), 4), "ci_low": round(float(lo), 4), "ci_high": round(float(hi), 4),
                             "share_corpus_closer": round(float(np.mean(boot > 0)), 4) if len(boot) else np.nan})
    return rows


def group_means(specs: list[ModelSpec], res: similarity.SimilarityResult, *, higher_is_similar: bool) -> dict[str, np.ndarray]:
    """Mean similarity over pairs sharing the corpus only / the architecture only, on all songs and per replicate."""
    pairs = [(i, j) for i, j in itertools.combinations(range(len(specs)), 2) if specs[i].tagger and specs[j].tagger]
    corpus = [(i, j) for i, j in pairs if specs[i].corpus == specs[j].corpus and specs[i].name != specs[j].name]
    arch = [(i, j) for i, j in pairs if specs[i].name == specs[j].name and specs[i].corpus != specs[j].corpus]
    if not corpus or not arch:
        return {}
    sign = 1.0 if higher_is_similar else -1.0

    def mean(M: np.ndarray, sel) -> np.ndarray:
        return np.mean([M[..., i, j] for i, j in sel], axis=0)

    return {"same_corpus_other_arch": np.array([mean(res.value, corpus), *mean(res.boot, corpus)]),
            "same_arch_other_corpus": np.array([mean(res.value, arch), *mean(res.boot, arch)]),
            "corpus_minus_arch": sign * np.array([mean(res.value, corpus) - mean(res.value, arch),
                                                  *(mean(res.boot, corpus) - mean(res.boot, arch))])}


def check(cfg: DictConfig) -> None:
    """Before any run opens (``experiment.check``): the model list, the measures and every embeddings file."""
    ex = cfg.experiment
    specs = parse_models(list(ex.models), cfg.get("model"))
    for name in [ex.measures] if isinstance(ex.measures, str) else list(ex.measures):
        similarity.measure(name, sigma=float(ex.rbf_sigma), k=ex.get("knn_k", 10))
    for spec in specs:
        if spec.name == "file" or (spec.name == "model" and cfg.model.get("name") == "embeddings"):
            build_model(model_cfg(cfg, spec))  # reads and checks the file: a bad one is one sentence


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    """Embed with every listed model, compare all pairs, log heat maps, CSVs and metrics."""
    ex = cfg.experiment
    specs = parse_models(list(ex.models), cfg.get("model"))
    measures = [ex.measures] if isinstance(ex.measures, str) else list(ex.measures)
    ms = [similarity.measure(name, sigma=float(ex.rbf_sigma), k=ex.get("knn_k", 10)) for name in measures]
    n_boot, n_perm, ci = int(ex.n_boot), int(ex.n_perm), float(ex.ci)
    clip_groups([], str(ex.get("group", "artist")))  # a bad unit stops here, before any model is loaded
    if not 0 < ci < 1:
        raise LabError(f"experiment.ci={ci} must be between 0 and 1 (e.g. 0.95)")
    dataset = quiet = None  # decoded only for models that embed audio (an embeddings file brings its own items)
    embs = {}
    for spec in specs:
        c = model_cfg(cfg, spec)
        loaded = build_model(c)  # memoised: one model in memory at a time
        if loaded.precomputed:
            ds = dataset_for(c, loaded)
        elif dataset is None:
            ds = dataset = build_dataset(cfg.dataset)
            quiet = copy.copy(dataset)  # the same clips without the dataset's notes: say them once, not once per model
            quiet.notes = []
        else:
            ds = quiet
        emb = embed(c, ds, loaded, tracker=None)
        log_embedded(tracker, ds, emb, loaded, prefix=f"{spec.key}.")
        embs[spec] = emb
    ids = aligned([list(embs[s].ids) for s in specs])
    dropped = max(len(e.ids) for e in embs.values()) - len(ids)
    if dropped:
        tracker.warn(f"{dropped} songs were embedded by some models but not all; compared on the {len(ids)} common songs")
    spaces = []
    for spec in specs:
        row = {cid: r for r, cid in enumerate(embs[spec].ids)}
        spaces.append(np.asarray(embs[spec].X)[[row[i] for i in ids]])
    labels = [s.label for s in specs]
    # the clips of the audio dataset where there is one (they know their artists), else the first file's items
    by_id = {c.id: c for c in (dataset.clips if dataset is not None else embs[specs[0]].clips)}
    unit = str(ex.get("group", "artist"))
    groups = clip_groups([by_id[i] for i in ids], unit)  # the bootstrap redraws artists (or recordings) whole
    tracker.set_tags({"models": ",".join(labels), "measures": ",".join(measures), "n_songs": len(ids), "group": unit})
    scores: dict[str, float] = {"n_songs": float(len(ids)), "n_models": float(len(specs))}
    for m in ms:
        log.info("%s between %d models on %d songs (%d bootstrap resamples, %d permutations)", m.label, len(specs), len(ids), n_boot, n_perm)
        res = similarity.similarity_matrix(spaces, m, n_boot=n_boot, n_perm=n_perm, seed=int(cfg.seed), groups=groups)
        lo, hi = res.interval(ci) if n_boot else (np.full_like(res.value, np.nan),) * 2
        q = 100 * ci if m.higher_is_similar else 100 * (1 - ci)  # the chance level a real similarity must beat
        rows = []
        for i, j in itertools.combinations_with_replacement(range(len(specs)), 2):
            nul = res.null[:, i, j] if n_perm else np.array([np.nan])
            rows.append({"model_a": labels[i], "model_b": labels[j], "measure": m.name, "value": round(float(res.value[i, j]), 4),
                         "ci_low": round(float(lo[i, j]), 4), "ci_high": round(float(hi[i, j]), 4),
                         "null_mean": round(float(np.mean(nul)), 4), f"null_q{q:g}": round(float(np.percentile(nul, q)), 4),
                         "dim_a": spaces[i].shape[1], "dim_b": spaces[j].shape[1], "n_songs": len(ids), "n_boot": n_boot})
            if i != j:
                scores[f"{m.name}/{specs[i].key}.vs.{specs[j].key}"] = float(res.value[i, j])
        tracker.log_csv(rows, f"{m.name}.csv")
        tracker.log_npz(f"{m.name}.npz", value=res.value, boot=res.boot, null=res.null, models=np.array(labels), ids=np.array(ids))
        vmax = 1.0 if m.higher_is_similar else float(max(np.nanmax(res.value), 1e-9))
        chance = np.percentile(res.null, q, axis=0) if n_perm else None  # (k, k): what shuffled pairings reach
        where = dataset.name if dataset is not None else ", ".join(sorted({e.clips[0].path.rsplit("/", 1)[-1] for e in embs.values()}))
        title = (f"{m.label} of song embeddings, {where} ({len(ids)} songs)\n"
                 f"cells: value [{ci:.0%} basic bootstrap interval over {unit}s, {n_boot} resamples]"
                 + (f"; chance = {q:g}th percentile of {n_perm} shuffled pairings" if n_perm else ""))
        tracker.log_figure(plots.similarity_heatmap(res.value, labels, title=title, label=m.label, lo=lo, hi=hi,
                                                    higher_is_similar=m.higher_is_similar, vmax=vmax, chance=chance,
                                                    vmin=min(0.0, float(np.nanmin(res.value)))), f"{m.name}.png")
        if n_perm:
            scores |= {f"{m.name}/chance/{specs[i].key}.vs.{specs[j].key}": float(chance[i, j])
                       for i, j in itertools.combinations(range(len(specs)), 2)}
        con = contrasts(specs, res, higher_is_similar=m.higher_is_similar, ci=ci)
        if con:
            tracker.log_csv(con, f"{m.name}_contrasts.csv")
        for name, v in group_means(specs, res, higher_is_similar=m.higher_is_similar).items():
            scores[f"{m.name}/{name}"] = float(v[0])
            if n_boot:
                scores[f"{m.name}/{name}_lo"], scores[f"{m.name}/{name}_hi"] = (float(x) for x in similarity.basic_interval(v[0], v[1:], ci))
    tracker.log_metrics(scores)
    return scores
