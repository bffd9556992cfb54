"""Music beyond the training domain (section 3.3 of the study, its Figure 5 with numbers).

The reference dataset (the ``dataset`` group, e.g. GTZAN) and one or more extra sets of music
(folders named on the command line) are embedded together by one tagger. The job draws the joint
t-SNE map (and a UMAP map where ``umap-learn`` is installed) with the new sets highlighted, and
turns the study's reading of that map into numbers per set (see :mod:`lab.studies.out_of_domain.placement`):
compactness (silhouette, spread against the genres', permutation p-values), placement (reference
genres ranked by centroid distance with a bootstrap stability; kNN self-share), the position of a
fusion set between its two parents, and what the tagger says (most frequent top tags, top genre
tags).

Sets come from the ``ood`` mapping, name -> folder or name -> {root, parents}::

    python -m lab experiment=out_of_domain dataset=gtzan dataset.root=PATH +ood.carnatic=PATH
    python -m lab experiment=out_of_domain ... \\
        ood='{carnatic: A, gaana: B, carnatic_rock: {root: C, parents: [carnatic, rock]}}'

``experiment.exclude_reference`` (globs over the reference's clip ids) holds reference songs out of
the reference genres, e.g. the rock songs a mashup set was built from, so a set is never placed
against a centroid made of its own audio. Each folder is flat or nested (all files below it belong to the set). Recordings are cut into
non-overlapping clips of ``experiment.clip_seconds`` (default 30 s); a tail shorter than
``experiment.min_clip_seconds`` is dropped, and a file shorter than that is skipped and reported.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from lab.core.errors import LabError
from lab.datasets import CompositeDataset, Dataset, ExcerptDataset
from lab.datasets.folder import load_folder
from lab.extract.pipeline import build_dataset, build_model, dataset_for, embed
from lab.models.protocol import model_label
from lab.stats import plots
from lab.stats.projection import cached_tsne
from lab.stats.tables import to_markdown
from lab.studies.out_of_domain import placement
from lab.studies.out_of_domain.report import table_rows

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")  # safe in MLflow metric names, file names and clip ids


@dataclasses.dataclass(frozen=True)
class SetSpec:
    """One extra set: a name, the folder holding its audio, and for a fusion set its two parents."""

    name: str
    root: str
    parents: tuple[str, str] | None = None


def _fold(name: str) -> str:
    """Names that differ only in case or ``-``/``_`` are the same name to a reader of the map."""
    return re.sub(r"[-_]", "", name.lower())


def parse_sets(ood: Mapping[str, Any] | None, *, reference_labels: Sequence[str], reference_name: str) -> list[SetSpec]:
    """Check the ``ood`` mapping and turn it into set specs (folders resolved, names and parents checked).

    Parameters
    ----------
    ood : mapping name -> PATH or name -> {root: PATH, parents: [a, b]}
    reference_labels : the reference dataset's labels (genres); a parent may name one of them.
    reference_name : the reference dataset's name (it is a part of the joint dataset too).
    """
    if not ood:
        raise LabError("experiment=out_of_domain needs at least one extra set, e.g. +ood.carnatic=../shared/music/carnatic")
    taken = {_fold(g): f"reference genre {g!r}" for g in reference_labels}
    taken.setdefault(_fold(reference_name), f"the reference dataset {reference_name!r}")
    specs = []
    for name, value in ood.items():
        name = str(name)
        if not NAME_RE.match(name):
            raise LabError(f"set name {name!r} must start with a letter and hold only letters, digits, '_' and '-'")
        if _fold(name) in taken:
            raise LabError(f"set name {name!r} clashes with {taken[_fold(name)]}; give the set another name")
        taken[_fold(name)] = f"set {name!r}"
        value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        if isinstance(value, str):
            value = {"root": value}
        if not isinstance(value, Mapping) or not value.get("root"):
            raise LabError(f"ood.{name} must be a folder path or {{root: PATH, parents: [a, b]}}, got {value!r}")
        unknown = set(value) - {"root", "parents"}
        if unknown:
            raise LabError(f"ood.{name} has unknown key(s) {', '.join(sorted(unknown))}; only root and parents are read")
        root = Path(to_absolute_path(str(value["root"]))).expanduser()
        if not root.is_dir():
            raise LabError(f"ood.{name}={value['root']} is not a folder; give a folder of audio files (flat or nested)")
        parents = value.get("parents")
        if parents is not None:
            parents = tuple(str(p) for p in parents)
            if len(parents) != 2 or parents[0] == parents[1]:
                raise LabError(f"ood.{name}.parents={list(parents)} must name two different sets or reference genres")
        specs.append(SetSpec(name=name, root=str(root), parents=parents))
    known = set(reference_labels) | {s.name for s in specs}
    for s in specs:
        for p in s.parents or ():
            if p == s.name or p not in known:
                raise LabError(f"ood.{s.name}.parents names {p!r}, which is neither another set nor a reference genre "
                               f"({', '.join(sorted(known - {s.name}))})")
    return specs


def build_sets(specs: Sequence[SetSpec], *, clip_seconds: float, min_clip_seconds: float,
               extensions: Sequence[str]) -> tuple[dict[str, Dataset], list[dict[str, str]]]:
    """Each set's folder as a dataset of clips cut from its recordings, and the files too short to cut.

    Returns (name -> dataset, rows of ``set, path, reason, detail`` for every file that gave no clip).
    """
    if not 0 < min_clip_seconds <= clip_seconds:
        raise LabError(f"min_clip_seconds={min_clip_seconds:g} must be in (0, clip_seconds={clip_seconds:g}]")
    sets, dropped = {}, []
    for s in specs:
        base = load_folder(s.root, name=s.name, extensions=tuple(extensions))
        cut = ExcerptDataset(base, seconds=clip_seconds, min_seconds=min_clip_seconds)
        dropped += [{"set": s.name, "path": c.path, "reason": reason, "detail": detail} for c, reason, detail in cut.skipped]
        if not cut.clips:
            raise LabError(f"set {s.name!r} ({s.root}) gives no clip of at least {min_clip_seconds:g} s "
                           f"({len(base.clips)} audio files, all shorter or unreadable)")
        sets[s.name] = cut
    return sets, dropped


def joint_dataset(reference: Dataset, sets: Mapping[str, Dataset]) -> CompositeDataset:
    """Reference items keep their genre labels; every item of a set is labelled with the set's name."""
    label_by = {reference.name: "label"} | {name: "part" for name in sets}
    return CompositeDataset(f"{reference.name}+{'+'.join(sets)}", {reference.name: reference, **sets}, label_by=label_by)


def check_options(e: DictConfig) -> None:
    """The experiment's numeric options, each with a one-sentence error."""
    for key, low in (("knn", 1), ("n_perm", 1), ("n_boot", 1), ("top_tags", 1), ("tags_per_item", 1), ("umap_neighbors", 2)):
        v = e.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise LabError(f"experiment.{key}={v!r} must be an integer >= {low}")
    clip, keep = e.get("clip_seconds"), e.get("min_clip_seconds")
    if not isinstance(clip, (int, float)) or isinstance(clip, bool) or clip <= 0:
        raise LabError(f"experiment.clip_seconds={clip!r} must be a positive number of seconds")
    if not isinstance(keep, (int, float)) or isinstance(keep, bool) or not 0 < keep <= clip:
        raise LabError(f"experiment.min_clip_seconds={keep!r} must be in (0, clip_seconds={clip:g}]")


def hold_out(reference: Dataset, patterns: Sequence[str] | None) -> tuple[Dataset, list[str]]:
    """The reference dataset without the clips whose id matches any glob in ``patterns``, and those ids.

    A set built from reference songs (a mashup of a GTZAN rock song and a Carnatic recording) must
    not be placed against a centroid that contains those very songs: that would pull it towards its
    parent by construction. Each pattern must match at least one clip (a typo would otherwise hold
    out nothing), and every genre must keep at least 2 songs.
    """
    if not patterns:
        return reference, []
    if isinstance(patterns, str):
        raise LabError(f"experiment.exclude_reference={patterns!r} must be a list of clip-id patterns, e.g. '[rock/rock.00000.wav]'")
    ids = [c.id for c in reference.clips]
    drop: set[str] = set()
    for pat in patterns:
        hit = fnmatch.filter(ids, str(pat))
        if not hit:
            raise LabError(f"experiment.exclude_reference has {pat!r}, which matches no clip of {reference.name} "
                           f"(ids look like {ids[0]!r})")
        drop |= set(hit)
    keep = [i for i, c in enumerate(reference.clips) if c.id not in drop]
    left = reference.subset(keep)
    for g in reference.labels:
        n = sum(c.label == g for c in left.clips)
        if n < 2:
            raise LabError(f"experiment.exclude_reference leaves {n} song(s) of genre {g!r}; placement needs at least 2 per genre")
    return left, sorted(drop)


def check(cfg: DictConfig) -> None:
    """Pre-flight: options, held-out reference songs, and the sets' names, folders and parents, before any MLflow run."""
    check_options(cfg.experiment)
    loaded = build_model(cfg)
    if loaded.precomputed:  # an embeddings file: its part column names the sets
        if cfg.experiment.get("exclude_reference"):
            raise LabError("experiment.exclude_reference holds audio clips out of the reference; with an embeddings file "
                           "leave those rows out of the file instead")
        file_sets(dataset_for(cfg, loaded), cfg.get("ood"))
        return
    reference, _ = hold_out(build_dataset(cfg.dataset), cfg.experiment.get("exclude_reference"))
    parse_sets(cfg.get("ood"), reference_labels=reference.labels, reference_name=reference.name)


def file_sets(items: Dataset, ood: Mapping[str, Any] | None) -> tuple[Dataset, list[SetSpec], list[str]]:
    """The sets of an embeddings file: items whose ``part`` is not empty belong to the set it names.

    Returns (the items relabelled — a set's items carry the set's name, reference items their genre —,
    the set specs, with ``parents`` from ``ood.<set>.parents`` where given, and the reference genres).
    """
    path = items.root
    if not any(c.part for c in items.clips):
        raise LabError(f"experiment=out_of_domain on an embeddings file needs a 'part' (or 'set') column naming each "
                       f"item's set ('' for the reference items), but {path} has none")
    names = sorted({c.part for c in items.clips if c.part})
    reference = sorted({c.label for c in items.clips if not c.part})
    if not reference:
        raise LabError(f"{path}: every item belongs to a set; out-of-domain placement needs reference items (empty part) with genre labels")
    ood = OmegaConf.to_container(ood, resolve=True) if OmegaConf.is_config(ood) else dict(ood or {})
    unknown = sorted(set(ood) - set(names))
    if unknown:
        raise LabError(f"ood.{unknown[0]} names no set of {path} (its sets: {', '.join(names)})")
    taken = {_fold(g): g for g in reference}
    specs = []
    for name in names:
        if not NAME_RE.match(name):
            raise LabError(f"{path}: set name {name!r} must start with a letter and hold only letters, digits, '_' and '-'")
        if _fold(name) in taken:
            raise LabError(f"{path}: set name {name!r} clashes with reference genre {taken[_fold(name)]!r}; rename the set")
        value = ood.get(name) or {}
        parents = tuple(str(p) for p in value.get("parents") or ()) if isinstance(value, Mapping) else ()
        if parents and (len(parents) != 2 or parents[0] == parents[1] or any(p not in set(reference) | set(names) - {name} for p in parents)):
            raise LabError(f"ood.{name}.parents={list(parents)} must name two different sets or reference genres of {path}")
        specs.append(SetSpec(name=name, root=path, parents=parents or None))
    relabelled = items.subset(range(len(items.clips)))
    relabelled.clips = [dataclasses.replace(c, label=c.part) if c.part else c for c in items.clips]
    return relabelled, specs, reference


def place(X: np.ndarray, labels: np.ndarray, tags: np.ndarray, tag_names: Sequence[str], specs: Sequence[SetSpec],
          reference: Sequence[str], *, k: int, top: int, per_item: int = 3, watch: Sequence[str] = (), n_boot: int,
          n_perm: int, seed: int, n_sources: Mapping[str, int] | None = None) -> tuple[dict[str, float], list[dict], list[dict]]:
    """All numbers of the study for every set (and the genres' own, as a yardstick).

    Returns (metrics named ``<set>.<metric>``, one summary row per set and per reference genre,
    one row per (set, reference genre) with centroid distance and rank). ``n_sources`` gives the
    number of recordings behind each set's clips.
    """
    metrics: dict[str, float] = {}
    rows, dist_rows = [], []
    genre_centres = placement.centroids(X, labels, reference)
    # Typical genre-to-genre distance: a set nearer to no genre than this forms its own region.
    gap = np.linalg.norm(genre_centres[:, None] - genre_centres[None], axis=-1)
    genre_gap = float(np.median(gap[np.triu_indices(len(reference), 1)])) if len(reference) > 1 else float("nan")
    for name in [s.name for s in specs] + list(reference):
        spec = next((s for s in specs if s.name == name), None)
        sel = labels == name
        comp = placement.compactness(X, labels, name, reference)
        knn = placement.knn_self_share(X, labels, name, k=k)
        row: dict[str, Any] = {"set": name, "kind": "set" if spec else "reference", "n_items": int(sel.sum()),
                               "silhouette": comp["silhouette"], "spread_ratio": comp["spread_ratio"], **knn}
        if spec:
            row["n_sources"] = int((n_sources or {}).get(name, row["n_items"]))
            ranking = placement.rank_reference(X, labels, name, reference)
            boot = placement.bootstrap(X, labels, name, reference, parents=spec.parents, n_boot=n_boot, seed=seed)
            row |= placement.permutation_test(X, labels, name, k=k, n_perm=n_perm, seed=seed)
            # tag summaries where the model has tags (a user model or an embeddings file may have none),
            # genre-tag shares where it has genre tags (genre---*, the Jamendo taggers)
            top_tags = placement.top_tags(tags[sel], tag_names, top=top, per_item=per_item) if len(tag_names) else []
            ranks = {t: float(np.median(placement.tag_ranks(tags[sel], tag_names, t))) for t in watch if t in tag_names}
            has_genre_tags = any(t.startswith(placement.GENRE_PREFIX) for t in tag_names)
            shares, top_genres = (placement.genre_tag_shares(tags[sel], tag_names, reference) if has_genre_tags
                                  else ({g: float("nan") for g in reference}, []))
            row |= {"nearest": ranking[0][0], "nearest_distance": ranking[0][1],
                    "nearest_stability": boot["nearest_stability"],
                    "isolation": ranking[0][1] / genre_gap,
                    "ranking": " > ".join(g for g, _ in ranking[:5]),
                    "top_tags": ", ".join(f"{t} {s:.2f}" for t, s in top_tags),
                    "top_genre_tags": ", ".join(f"{g} {s:.2f}" for g, s in top_genres[:top]),
                    "watched_tag_ranks": ", ".join(f"{t} {r:g}" for t, r in ranks.items())}
            metrics |= {f"{name}.tag_rank.{t}": r for t, r in ranks.items()}
            if spec.parents:
                fus = placement.fusion_position(X, labels, name, spec.parents)
                row |= {"parents": " + ".join(spec.parents), "position": fus["position"], "offset": fus["offset"],
                        **{k_: v for k_, v in boot.items() if k_ != "nearest_stability"}}
            for rank, (g, d) in enumerate(ranking, start=1):
                dist_rows.append({"set": name, "genre": g, "rank": rank, "distance": d, "relative": d / genre_gap,
                                  "genre_tag_share": shares[g]})
                metrics[f"{name}.dist.{g}"] = d
            metrics |= {f"{name}.genre_tag_share.{g}": v for g, v in shares.items() if np.isfinite(v)}
            for key in ("n_items", "n_sources", "silhouette", "silhouette_p", "spread_ratio", "knn_self_share", "knn_self_share_p",
                        "knn_self_fraction", "nearest_distance",
                        "nearest_stability", "isolation", "position", "offset", "position_lo", "position_hi", "offset_lo", "offset_hi"):
                if key in row:
                    metrics[f"{name}.{key}"] = float(row[key])
        rows.append(row)
    ref_rows = pd.DataFrame([r for r in rows if r["kind"] == "reference"])
    for key in ("silhouette", "spread_ratio", "knn_self_share", "knn_self_fraction"):
        metrics[f"reference.{key}"] = float(ref_rows[key].mean())
    metrics["reference.genre_gap"] = genre_gap
    return metrics, rows, dist_rows


def item_rows(emb, labels: np.ndarray, tag_names: Sequence[str], specs: Sequence[SetSpec], reference: Sequence[str],
              X: np.ndarray, *, k: int) -> list[dict]:
    """One row per item of the new sets: where it came from, its nearest genre and neighbours, its top tags."""
    genre_idx = [j for j, t in enumerate(tag_names) if t.startswith(placement.GENRE_PREFIX)]
    centres = placement.centroids(X, labels, reference)
    nb = placement.knn_labels(X, k)
    by_name = {s.name: s for s in specs}
    pos_of = {s.name: placement.item_positions(X, *placement.centroids(X, labels, s.parents)) for s in specs if s.parents}  # (n,) each
    rows = []
    for i, (clip, lab) in enumerate(zip(emb.clips, labels)):
        if lab not in by_name:
            continue
        d = np.linalg.norm(centres - X[i], axis=1)
        row = {"id": clip.id, "set": lab, "source": clip.source_id, "path": clip.path, "offset_s": clip.offset,
               "duration_s": clip.duration, "n_windows": int(len(emb.windows[i])), "nearest_genre": reference[int(np.argmin(d))],
               "neighbours": " ".join(labels[nb[i]]), "top_tag": tag_names[int(emb.tags[i].argmax())] if len(tag_names) else "",
               "top_genre_tag": tag_names[genre_idx[int(emb.tags[i, genre_idx].argmax())]] if genre_idx else ""}
        if lab in pos_of:
            row["position"] = float(pos_of[lab][i])
        rows.append(row)
    return rows


def umap_2d(X: np.ndarray, *, seed: int, n_neighbors: int) -> np.ndarray | None:
    """2-D UMAP of ``X`` [shape=(n, dim)], or None when umap-learn is not installed (an optional extra)."""
    try:
        import umap
    except ImportError:
        return None
    return umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(X) - 1), random_state=seed, n_jobs=1).fit_transform(X)


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    """Embed reference + sets, map them, score each set; returns the metrics."""
    e, seed = cfg.experiment, int(cfg.seed)
    check_options(e)
    loaded = build_model(cfg)
    dropped: list[dict] = []
    held_out: list[str] = []
    if loaded.precomputed:  # an embeddings file: reference items and sets come from its label and part columns
        joint, specs, reference_labels = file_sets(dataset_for(cfg, loaded), cfg.get("ood"))
        reference_name = joint.name
    else:
        reference, held_out = hold_out(build_dataset(cfg.dataset), e.get("exclude_reference"))
        if held_out:
            tracker.log_csv([{"id": i} for i in held_out], "excluded_reference.csv")
            tracker.set_tags({"excluded_reference": ",".join(held_out)[:5000]})
        reference_labels, reference_name = reference.labels, reference.name
        specs = parse_sets(cfg.get("ood"), reference_labels=reference.labels, reference_name=reference.name)
        sets, dropped = build_sets(specs, clip_seconds=float(e.clip_seconds), min_clip_seconds=float(e.min_clip_seconds),
                                   extensions=list(e.extensions))
        if dropped:
            tracker.warn(f"{len(dropped)} file(s) of the new sets gave no clip (shorter than {e.min_clip_seconds:g} s or "
                         f"unreadable); listed in too_short_files.csv")
            tracker.log_csv(dropped, "too_short_files.csv")
        joint = joint_dataset(reference, sets)
    emb = embed(cfg, joint, loaded, tracker)
    labels = np.asarray(emb.labels)
    genres = [g for g in reference_labels if g in set(labels.tolist())]
    for s in specs:
        n = int((labels == s.name).sum())
        if n < 2:
            raise LabError(f"set {s.name!r} has {n} usable clip(s) after cutting and decoding; placement needs at least 2")
    # Clips cut from one recording are not independent: the number of recordings is the real sample size.
    n_sources = {s.name: len({c.source_id for c, lab in zip(emb.clips, labels) if lab == s.name}) for s in specs}
    k = int(e.knn)
    watch = list(e.watch_tags or [])
    who = model_label(cfg.model)
    if not loaded.tag_names:
        log.info("%s outputs no tags: the tag summaries are left out", who)
    for t in sorted(set(watch) - set(loaded.tag_names)) if loaded.tag_names else []:
        tracker.warn(f"experiment.watch_tags names {t!r}, which {who} does not output; left out")
    metrics, rows, dist_rows = place(emb.X, labels, emb.tags, loaded.tag_names, specs, genres, k=k, top=int(e.top_tags),
                                     per_item=int(e.tags_per_item), watch=watch,
                                     n_boot=int(e.n_boot), n_perm=int(e.n_perm), seed=seed, n_sources=n_sources)
    metrics["n_too_short"] = float(len(dropped))
    metrics["n_reference_held_out"] = float(len(held_out))
    tracker.log_metrics(metrics)
    tracker.set_tags({"ood_sets": ",".join(s.name for s in specs)}
                     | {f"ood.{r['set']}.{key}": r[key] for r in rows if r["kind"] == "set"
                        for key in ("nearest", "ranking", "top_tags", "top_genre_tags", "watched_tag_ranks", "parents") if key in r})
    tracker.log_csv(rows, "placement.csv", columns=_columns(rows))
    tracker.log_csv(dist_rows, "centroid_distances.csv")
    items = item_rows(emb, labels, loaded.tag_names, specs, genres, emb.X, k=k)
    tracker.log_csv(items, "items.csv", columns=_columns(items))
    tracker.log_text(to_markdown(table_rows(rows, model=who)), "placement.md")

    parents = {s.name: s.parents for s in specs if s.parents}
    what = f"{who} embeddings: {reference_name} ({int(np.isin(labels, genres).sum())} songs) + " + \
        ", ".join(f"{s.name} ({int((labels == s.name).sum())})" for s in specs)
    xy, _ = cached_tsne(emb.X, seed=seed, perplexity=float(e.tsne_perplexity), cache_dir=to_absolute_path(str(cfg.paths.cache)))
    names = [s.name for s in specs]
    tracker.log_figure(plots.placement_map(xy, labels, names, title=f"t-SNE of {what}", parents=parents), "tsne.png")
    arrays = {"tsne": xy}
    if e.umap:
        uv = umap_2d(emb.X, seed=seed, n_neighbors=int(e.umap_neighbors))
        if uv is None:
            tracker.warn("umap-learn is not installed, so no UMAP map (pip install -e '.[umap]')")
        else:
            tracker.log_figure(plots.placement_map(uv, labels, names, title=f"UMAP of {what}", parents=parents), "umap.png")
            arrays["umap"] = uv
    if e.save_embeddings:
        tracker.log_npz("embeddings.npz", X=emb.X, labels=labels, ids=np.array(emb.ids), paths=np.array(emb.paths),
                        sources=np.array(emb.sources), n_windows=emb.n_windows, tags=emb.tags, **arrays)
    for r in rows:
        if r["kind"] == "set":
            log.info("%s: silhouette %.2f (genres %.2f), nearest %s (stable in %.0f%% of resamples), kNN self-share %.2f%s",
                     r["set"], r["silhouette"], metrics["reference.silhouette"], r["nearest"], 100 * r["nearest_stability"],
                     r["knn_self_share"], f", position {r['position']:.2f} off {r['offset']:.2f}" if "position" in r else "")
    return metrics


def _columns(rows: list[dict]) -> list[str]:
    """Union of the rows' keys in first-seen order (set rows carry more columns than genre rows)."""
    return list(dict.fromkeys(k for r in rows for k in r))
