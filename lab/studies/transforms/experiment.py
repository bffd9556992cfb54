"""Pitch and tempo in the latent space (study section 3.2.1, Table 2).

For every song, embed the original and its shifted version (``shift=pitch|tempo``, made once by
:class:`lab.studies.transforms.shift.Shift` and cached), fit the configured map ``X_+ ~ A X + b``
(``transform=identity|translation|uniform_scaling|nonuniform_scaling|scaled_orthogonal|affine``,
:mod:`lab.studies.transforms.maps`) and report MSE, R^2 and nearest-neighbour accuracy held out (k-fold over
songs, the main numbers) and in sample, the achieved shift and the shift-direction cosine.

Every held-out number carries a group-bootstrap interval (:mod:`lab.studies.transforms.inference`);
each run also scores the translation and identity baselines on the same folds (paired differences),
the unpenalised version of a penalised map, the over-fitting gap (held out minus in sample), NN
accuracy as a function of the pool size, the no-shift case (``Y = X``) and a PCA-rank sweep
(:func:`statistics`). The penalty of ``uniform_scaling``, ``nonuniform_scaling`` and ``affine`` is
chosen by nested CV (``transform.ridge=cv``); ``transform.ridge=0`` is the study's unpenalised fit.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import soundfile as sf
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from lab.core.errors import LabError
from lab.datasets import clip_groups
from lab.datasets.derived import TransformedDataset
from lab.extract.pipeline import build_dataset, build_model, embed, log_embedded
from lab.studies.transforms import inference as I
from lab.studies.transforms import maps as T
from lab.studies.transforms import shift as shift_mod
from lab.studies.transforms.shift import Shift, semitones

log = logging.getLogger(__name__)


def check(cfg: DictConfig) -> None:
    """Pre-run check of this study's options (``experiment.check``): one sentence on the first bad value."""
    ex = cfg.experiment
    for key, lo in (("folds", 2), ("audio_examples", 0), ("n_boot", 0), ("n_perm", 1)):
        v = ex.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise LabError(f"experiment.{key}={v!r} must be an integer >= {lo}")
    v = ex.get("example_seconds")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise LabError(f"experiment.example_seconds={v!r} must be a number > 0")
    v = ex.get("level")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        raise LabError(f"experiment.level={v!r} must be in (0, 1), e.g. 0.95")
    for key, lo in (("pca_ranks", 1), ("pool_sizes", 2)):
        vals = ex.get(key) or []
        if isinstance(vals, (str, int)) or any(isinstance(x, bool) or not isinstance(x, int) or x < lo for x in vals):
            raise LabError(f"experiment.{key}={vals!r} must be a list of integers >= {lo} (or [])")
    clip_groups([], str(ex.get("group", "artist")))
    s = cfg.shift
    shift_mod.validate(str(s.kind), s.amount, str(s.backend), str(s.get("length", "loop")))
    map_spec(cfg)


def map_spec(cfg: DictConfig) -> T.MapSpec:
    """The configured map and its fitting protocol (``transform.ridge``/``pca_rank``, ``experiment.ridge.*``)."""
    t, r = cfg.transform, cfg.experiment.get("ridge") or {}
    ridge = t.get("ridge")
    if ridge is None or ridge is False:
        ridge = 0.0
    elif isinstance(ridge, str) and ridge != "cv":
        raise LabError(f"transform.ridge={ridge!r} must be 'cv' (nested CV over experiment.ridge.alphas), a number >= 0 or false")
    alphas = r.get("alphas")
    return T.spec_from(str(t.name), ridge=ridge, pca_rank=t.get("pca_rank"), shrink_to=str(r.get("shrink_to", "identity")),
                       alphas=list(alphas) if alphas else None, inner_folds=r.get("inner_folds", 5))


def make_shift(cfg: DictConfig, dataset, sr: int) -> Shift:
    """The configured :class:`Shift`, keyed on the dataset's own fingerprints."""
    s = cfg.shift
    return Shift(str(s.kind), float(s.amount), str(s.backend), cache_dir=to_absolute_path(str(cfg.paths.derived)),
                 sr=sr, length=str(s.get("length", "loop")), fingerprint=dataset.fingerprint,
                 min_seconds=float(getattr(dataset, "min_seconds", 1.0)), measure=bool(s.get("measure", True)))


def pair(orig, shifted) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into ``orig`` and ``shifted`` of the clips usable on both sides, in ``orig``'s order."""
    where = {c.id: j for j, c in enumerate(shifted.clips)}
    i0 = [i for i, c in enumerate(orig.clips) if c.id in where]
    return np.array(i0, dtype=int), np.array([where[orig.clips[i].id] for i in i0], dtype=int)


def _ogg(y: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1, 1), sr, format="OGG", subtype="VORBIS")
    return buf.getvalue()


def log_audio_examples(tracker, dataset, shifted, clips, *, sr: int, seconds: float) -> None:
    """Before/after pairs (first ``seconds`` of each, OGG Vorbis) as ``audio/<id>.{original,shifted}.ogg``."""
    n = int(seconds * sr)
    for clip in clips:
        name = clip.id.replace("/", "_").replace(":", "_")
        tracker.log_bytes(_ogg(dataset.load(clip, sr)[:n], sr), f"audio/{name}.original.ogg")
        tracker.log_bytes(_ogg(shifted.load(clip, sr)[:n], sr), f"audio/{name}.shifted.ogg")


def _quantiles(prefix: str, v: np.ndarray) -> dict[str, float]:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {}
    return {f"{prefix}_median": float(np.median(v)), f"{prefix}_p10": float(np.percentile(v, 10)),
            f"{prefix}_p90": float(np.percentile(v, 90))}


def _interval_metrics(prefix: str, ivs: dict) -> dict[str, float]:
    return {f"{prefix}.{m}_{end}": float(getattr(iv, end)) for m, iv in ivs.items() for end in ("lo", "hi")}


def _paired_metrics(prefix: str, d: dict, *, flip: bool = False) -> dict[str, float]:
    """``<prefix>.<score>`` = difference (A - B, or B - A with ``flip``) and its interval ends."""
    out = {}
    for m, v in d.items():
        diff, lo, hi = (-v["diff"], -v["hi"], -v["lo"]) if flip else (v["diff"], v["lo"], v["hi"])
        out |= {f"{prefix}.{m}": diff, f"{prefix}.{m}_lo": lo, f"{prefix}.{m}_hi": hi}
    return out


def statistics(spec: T.MapSpec, X: np.ndarray, Y: np.ndarray, fit: T.CrossFit, groups: np.ndarray, *, k: int, seed: int,
               n_boot: int, level: float, pool_sizes: list[int], pca_ranks: list[int]) -> dict[str, float]:
    """Everything that makes a Table-2 cell able to fail: intervals, paired baselines, pool curve, zero shift, PCA rank.

    * ``cv.<m>_lo``/``_hi`` and ``in_sample.<m>_lo``/``_hi``: group-bootstrap interval of each score
      (``n_boot`` = 0: none);
    * ``optimism.mse`` = held-out minus in-sample MSE and ``optimism.r2`` = in-sample minus held-out R^2,
      paired over the same redrawn groups, with intervals: the over-fitting a bigger map pays;
    * ``vs_translation.<m>``, ``vs_identity.<m>``: this map minus the baseline held out (same folds, same
      redraws), and ``vs_unregularised.<m>`` for a penalised map against the same map with ``ridge=0``;
    * ``cv.nn_pool.<m>``: expected NN accuracy among ``m`` candidates (exact up to n, beta-binomial beyond);
    * ``zero.cv.<m>``: the same protocol with no shift at all (``Y = X``), the curve's point at 0;
    * ``pca.<k>.cv.<m>``: the map fitted in the top-k principal subspace (translation outside).
    """
    out: dict[str, float] = {}
    rd = I.redraws(groups, n_boot=n_boot, seed=seed, level=level) if n_boot > 0 else None
    if rd is not None:
        out |= _interval_metrics("cv", I.intervals(fit.P_cv, Y, rd))
        out |= _interval_metrics("in_sample", I.intervals(fit.P_in, Y, rd))
        gap = I.paired(fit.P_cv, fit.P_in, Y, rd)  # held out minus in sample
        out |= _paired_metrics("optimism", {"mse": gap["mse"]}) | _paired_metrics("optimism", {"r2": gap["r2"]}, flip=True)
    baselines = [b for b in ("translation", "identity") if b != spec.name]
    if spec.penalised:
        baselines.append("unregularised")
    for base in baselines:
        other = spec.replace(ridge=0.0) if base == "unregularised" else T.MapSpec(base)
        P_b = T.out_of_fold(other, X, Y, groups=groups, k=k, seed=seed)
        if rd is not None:
            out |= _paired_metrics(f"vs_{base}", I.paired(fit.P_cv, P_b, Y, rd))
        else:
            a, b = T.evaluate(fit.P_cv, Y), T.evaluate(P_b, Y)
            out |= {f"vs_{base}.{m}": a[m] - b[m] for m in a}
    closer = T.closer_counts(fit.P_cv, Y)
    out["cv.own_percentile_median"] = float(np.median(closer / max(len(Y) - 1, 1)))
    out["cv.own_percentile_mean"] = float(np.mean(closer / max(len(Y) - 1, 1)))
    for m, row in I.pool_curve(closer, len(Y), pool_sizes, rd).items():
        out[f"cv.nn_pool.{m}"] = row["acc"]
        out[f"cv.nn_pool_model.{m}"] = row["model"]
        if "lo" in row:
            out[f"cv.nn_pool.{m}_lo"], out[f"cv.nn_pool.{m}_hi"] = row["lo"], row["hi"]
    zero = T.cross_fit(spec, X, X, groups=groups, k=k, seed=seed)
    out |= {f"zero.cv.{m}": v for m, v in T.evaluate(zero.P_cv, X).items()}
    if spec.name not in T.NO_PARAMETERS_TO_REDUCE:
        n_train = len(Y) - int(np.ceil(len(Y) / k))
        for rank in pca_ranks:
            if rank >= min(X.shape[1], n_train):
                continue  # at or beyond the full space: the unconstrained map, already the main result
            P_k = T.out_of_fold(spec.replace(pca_rank=int(rank)), X, Y, groups=groups, k=k, seed=seed)
            out |= {f"pca.{rank}.cv.{m}": v for m, v in T.evaluate(P_k, Y).items()}
            if rd is not None:
                out |= _interval_metrics(f"pca.{rank}.cv", {"r2": I.intervals(P_k, Y, rd)["r2"]})
    return out


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    """Fit one transform for one shift and model; log metrics, per-song CSV, arrays and audio examples."""
    ex, name = cfg.experiment, str(cfg.transform.name)
    check(cfg)  # also run by the app before the MLflow run opens
    k = int(ex.folds)
    dataset = build_dataset(cfg.dataset)
    loaded = build_model(cfg)
    sr = int(loaded.model.info.sample_rate)
    shift = make_shift(cfg, dataset, sr)
    shifted = TransformedDataset(dataset, shift)

    emb0 = embed(cfg, dataset, loaded, tracker)  # n_songs, n_skipped, n_padded, cache hits of the originals
    emb1 = embed(cfg, shifted, loaded, scale_like=emb0)  # standardised features (handcrafted): on the originals' scale
    log_embedded(tracker, shifted, emb1, loaded, prefix="shifted.")  # the same for the shifted clips
    i0, i1 = pair(emb0, emb1)
    if len(i0) < max(k, 2):
        raise LabError(f"only {len(i0)} songs are usable both original and shifted; "
                       f"transform fitting with folds={k} needs at least {max(k, 2)}")
    X, Y = emb0.X[i0].astype(np.float64), emb1.X[i1].astype(np.float64)
    clips = [emb0.clips[i] for i in i0]
    groups = clip_groups(clips, str(ex.get("group", "artist"))).astype(str)  # folds, redraws and sign flips never split one
    spec = map_spec(cfg)
    seed = int(cfg.seed)

    fit = T.cross_fit(spec, X, Y, groups=groups, k=k, seed=seed)
    P = fit.P_cv
    scores = T.scores_of(fit, Y)
    scores |= T.shift_direction(X, Y, groups=groups, n_perm=int(ex.n_perm), seed=seed)
    scores |= statistics(spec, X, Y, fit, groups, k=k, seed=seed, n_boot=int(ex.n_boot), level=float(ex.level),
                         pool_sizes=list(ex.get("pool_sizes") or []), pca_ranks=list(ex.get("pca_ranks") or []))

    # What the engine really did, measured when each shifted file was made (lab.studies.transforms.shift.achieved).
    measured = [shift.measured(c) or {} for c in clips]
    ach = {key: np.array([m.get(key, np.nan) for m in measured], dtype=float)
           for key in ("tempo_ratio", "pitch_ratio", "beat_tempo_ratio", "seconds")}
    scores |= _quantiles("achieved_tempo_ratio", ach["tempo_ratio"]) | _quantiles("achieved_pitch_ratio", ach["pitch_ratio"])
    if np.isfinite(ach["seconds"]).any():
        scores["shift_seconds_per_song"] = float(np.nanmean(ach["seconds"]))

    scores |= {"n_pairs": float(len(i0)), "n_groups": float(len(set(groups))), "dim": float(X.shape[1]),
               "folds": float(min(k, len(set(groups)))),
               "n_params": float(T.n_parameters(name, X.shape[1])),
               "shifts_computed": float(shift.computed), "shifts_reused": float(shift.reused)}
    tracker.set_tags({"transform": name, "ridge": spec.label, "shrink_to": spec.shrink_to if spec.penalised else "none",
                      "pca_rank": str(spec.pca_rank) if spec.pca_rank and name not in T.NO_PARAMETERS_TO_REDUCE else "full",
                      "group_by": str(ex.get("group", "artist")), "shift_kind": shift.kind, "shift_amount": f"{shift.amount:g}",
                      "shift_semitones": f"{semitones(shift.amount):.2f}" if shift.kind == "pitch" else "0",
                      "shift_backend": shift.version, "shift_length": shift.length, "n_pairs": len(i0)})
    tracker.log_metrics(scores)

    err, err_in = ((P - Y) ** 2).sum(1), ((fit.P_in - Y) ** 2).sum(1)
    closer = T.closer_counts(P, Y)
    tracker.log_csv([{"id": c.id, "label": c.label, "source": c.source_id, "group": g, "cv_sq_error": round(float(e), 6),
                      "in_sample_sq_error": round(float(ei), 6), "cv_nn_hit": int(cl == 0), "cv_rank_of_own": int(cl) + 1,
                      "cv_own_percentile": round(float(cl) / max(len(clips) - 1, 1), 4),
                      "achieved_tempo_ratio": round(float(ach["tempo_ratio"][i]), 4),
                      "achieved_pitch_ratio": round(float(ach["pitch_ratio"][i]), 4)}
                     for i, (c, g, e, ei, cl) in enumerate(zip(clips, groups, err, err_in, closer))], "songs.csv")
    tracker.log_npz("embeddings.npz", X=X.astype(np.float32), Y=Y.astype(np.float32), P_cv=P.astype(np.float32),
                    P_in=fit.P_in.astype(np.float32), groups=np.asarray(groups),
                    ids=np.array([c.id for c in clips]), labels=np.array([c.label for c in clips]))
    if int(ex.audio_examples) > 0:
        by_label: dict[str, object] = {}
        for c in clips:
            by_label.setdefault(c.label, c)
        log_audio_examples(tracker, dataset, shifted, list(by_label.values())[: int(ex.audio_examples)], sr=sr,
                           seconds=float(ex.example_seconds))
    log.info("%s %s x%g (%s, ridge %s): held-out MSE %.3f, R2 %.3f [%.3f, %.3f], NN %.3f (chance %.3f); in-sample MSE %.3f",
             loaded.name, shift.kind, shift.amount, name, spec.label, scores["cv.mse"], scores["cv.r2"],
             scores.get("cv.r2_lo", np.nan), scores.get("cv.r2_hi", np.nan), scores["cv.nn_accuracy"],
             scores["chance_nn_accuracy"], scores["in_sample.mse"])
    return {k: v for k, v in scores.items() if k.startswith(("cv.", "in_sample."))} | {"n_pairs": float(len(i0))}
