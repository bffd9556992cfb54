"""Pitch and tempo in the latent space (study section 3.2.1, Table 2).

For every song, embed the original and its shifted version (``shift=pitch|tempo``, made once by
:class:`lab.studies.transforms.shift.Shift` and cached), fit the configured map ``X_+ ~ A X + b``
(``transform=identity|translation|uniform_scaling|nonuniform_scaling|scaled_orthogonal|affine``,
:mod:`lab.studies.transforms.maps`) and report MSE, R^2 and nearest-neighbour accuracy held out (k-fold over
songs, the main numbers) and in sample, the achieved shift and the shift-direction cosine.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import soundfile as sf
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from lab.core.errors import LabError
from lab.datasets.derived import TransformedDataset
from lab.extract.pipeline import build_dataset, build_model, embed, log_embedded
from lab.studies.transforms import maps as T
from lab.studies.transforms import shift as shift_mod
from lab.studies.transforms.shift import Shift, semitones

log = logging.getLogger(__name__)


def check(cfg: DictConfig) -> None:
    """Pre-run check of this study's options (``experiment.check``): one sentence on the first bad value."""
    ex = cfg.experiment
    for key, lo in (("folds", 2), ("audio_examples", 0)):
        v = ex.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise LabError(f"experiment.{key}={v!r} must be an integer >= {lo}")
    v = ex.get("example_seconds")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise LabError(f"experiment.example_seconds={v!r} must be a number > 0")
    s = cfg.shift
    shift_mod.validate(str(s.kind), s.amount, str(s.backend), str(s.get("length", "loop")))
    T.fitter(str(cfg.transform.name))
    ridge = cfg.transform.get("ridge", 0.0)
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or ridge < 0:
        raise LabError(f"transform.ridge={ridge!r} must be a number >= 0")


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
    groups = np.array([c.source_id for c in clips])
    options = {"ridge": float(cfg.transform.get("ridge", 0.0) or 0.0)}

    scores = T.cross_validate(name, X, Y, groups=groups, k=k, seed=int(cfg.seed), **options)
    scores |= T.shift_direction(X, Y, seed=int(cfg.seed))
    P = T.out_of_fold(name, X, Y, groups=groups, k=k, seed=int(cfg.seed), **options)

    # What the engine really did, measured when each shifted file was made (lab.studies.transforms.shift.achieved).
    measured = [shift.measured(c) or {} for c in clips]
    ach = {key: np.array([m.get(key, np.nan) for m in measured], dtype=float)
           for key in ("tempo_ratio", "pitch_ratio", "beat_tempo_ratio", "seconds")}
    scores |= _quantiles("achieved_tempo_ratio", ach["tempo_ratio"]) | _quantiles("achieved_pitch_ratio", ach["pitch_ratio"])
    if np.isfinite(ach["seconds"]).any():
        scores["shift_seconds_per_song"] = float(np.nanmean(ach["seconds"]))

    scores |= {"n_pairs": float(len(i0)), "dim": float(X.shape[1]), "folds": float(min(k, len(set(groups)))),
               "n_params": float(T.n_parameters(name, X.shape[1])),
               "shifts_computed": float(shift.computed), "shifts_reused": float(shift.reused)}
    tracker.set_tags({"transform": name, "shift_kind": shift.kind, "shift_amount": f"{shift.amount:g}",
                      "shift_semitones": f"{semitones(shift.amount):.2f}" if shift.kind == "pitch" else "0",
                      "shift_backend": shift.version, "shift_length": shift.length, "n_pairs": len(i0)})
    tracker.log_metrics(scores)

    err = ((P - Y) ** 2).sum(1)
    d2 = (P * P).sum(1)[:, None] - 2 * P @ Y.T + (Y * Y).sum(1)[None, :]  # (n, n) without an (n, n, dim) array
    tracker.log_csv([{"id": c.id, "label": c.label, "source": c.source_id, "cv_sq_error": round(float(e), 6),
                      "cv_nn_hit": int(np.argmin(row) == i), "cv_rank_of_own": int((row < row[i]).sum()) + 1,
                      "achieved_tempo_ratio": round(float(ach["tempo_ratio"][i]), 4),
                      "achieved_pitch_ratio": round(float(ach["pitch_ratio"][i]), 4)}
                     for i, (c, e, row) in enumerate(zip(clips, err, d2))], "songs.csv")
    tracker.log_npz("embeddings.npz", X=X.astype(np.float32), Y=Y.astype(np.float32), P_cv=P.astype(np.float32),
                    ids=np.array([c.id for c in clips]), labels=np.array([c.label for c in clips]))
    if int(ex.audio_examples) > 0:
        by_label: dict[str, object] = {}
        for c in clips:
            by_label.setdefault(c.label, c)
        log_audio_examples(tracker, dataset, shifted, list(by_label.values())[: int(ex.audio_examples)], sr=sr,
                           seconds=float(ex.example_seconds))
    log.info("%s %s x%g (%s): held-out MSE %.3f, R2 %.3f, NN %.3f (chance %.3f); in-sample MSE %.3f",
             loaded.name, shift.kind, shift.amount, name, scores["cv.mse"], scores["cv.r2"], scores["cv.nn_accuracy"],
             scores["chance_nn_accuracy"], scores["in_sample.mse"])
    return {k: v for k, v in scores.items() if k.startswith(("cv.", "in_sample."))} | {"n_pairs": float(len(i0))}
