"""Dream study (the study's section 3.2.2, Figure 4): the input a tagger finds most "genre".

For each requested genre (``genre=disco``; ``genre=all`` = every genre of the dataset, one MLflow
run each, nested under the job's run) the target is the mean song embedding of that genre, read
through the embedding cache; :func:`lab.studies.dream.dreaming.dream` optimises a waveform towards it. Each dream's
run logs the loss path (``loss``, ``mse``, ``reg``, ``steps_per_s``, ``dist.<genre>`` and
``target_rank`` every ``dream.log_every`` steps), then the distances to every genre mean
(``genre_distances.csv``), the tagger's top tags, the raw WAV exactly as optimised
(``dream_raw.wav``, 16 kHz float32, not renormalised: embedding the file again gives the dream's
embedding), the energy-gated WAV (``dream_gated.wav``, peak-normalised for listening), their
spectrograms, and the transfer table: the dream embedded by the *other* available taggers and
ranked against *their* genre means (``transfer.csv``).

**Target and judge on different songs** (``experiment.target_split=halves``, the default): within
each genre, half the songs (whole groups: artists where known, else recordings) make the dream's target mean
and the other half the genre means that the dreaming model and every other tagger judge it
against, so "the dream lands on its genre" is not scored on the songs it was made from
(``split.csv``). ``none`` is the study's protocol (all songs on both sides). **Control:** the
starting waveform itself (the seed's noise, or the start song) is judged by every tagger too
(``kind=start`` rows of ``transfer.csv``, ``start_nearest.<model>`` tags): a dream "judged as disco" by
a tagger that already calls the noise disco says nothing. ``python -m lab.report --experiment dream``
turns a sweep over genres and seeds into transfer matrices (:mod:`lab.studies.dream.report`).

A dream is identified by a hash of everything that changes it (``dream_key``): re-running the
same command resumes from its checkpoint under ``experiment.checkpoint_dir`` and logs into the
same MLflow run.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import soundfile as sf
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from lab import tracking
from lab.core.compose import CONF_DIR
from lab.core.errors import LabError
from lab.datasets import clip_groups
from lab.datasets.audio import AudioError
from lab.datasets.audio import load as load_audio
from lab.extract.pipeline import LoadedModel, build_dataset, build_model, embed
from lab.models import REGISTRY
from lab.models.weights import find_checkpoint
from lab.stats import plots
from lab.studies.dream.dreaming import (
    INIT_CLIP,
    DreamResult,
    DreamSettings,
    dream,
    energy_gate,
    initial_waveform,
    normalize_peak,
    settings_from,
)

log = logging.getLogger(__name__)



# --- validation ----------------------------------------------------------------------------------

def _checkpoint_file(model_cfg: DictConfig, weights_dir: str) -> Path | None:
    """The model's checkpoint on the weights search path, or None when it is not installed."""
    try:
        return find_checkpoint(model_cfg.name, model_cfg.get("corpus", "jamendo"), weights_dir, subpath=model_cfg.get("checkpoint"))
    except LabError:
        return None


def check(cfg: DictConfig) -> None:
    """Pre-run check (``experiment.check``): a bad request costs one sentence and no MLflow run."""
    validate(cfg, build_dataset(cfg.dataset).labels)


def validate(cfg: DictConfig, genres: list[str]) -> tuple[list[str], DreamSettings]:
    """The genres to dream and the settings; one sentence on a bad request."""
    settings = settings_from(OmegaConf.to_container(cfg.dream, resolve=True))
    e = cfg.experiment
    gate = e.gate_threshold_db
    if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not gate < 0:
        raise LabError(f"experiment.gate_threshold_db={gate!r} must be a negative number (dB below the loudest bin)")
    if isinstance(e.top_tags, bool) or not isinstance(e.top_tags, int) or not 1 <= e.top_tags <= 50:
        raise LabError(f"experiment.top_tags={e.top_tags!r} must be an integer in [1, 50]")
    unknown = [m for m in e.transfer if m not in REGISTRY] if not isinstance(e.transfer, str) else [e.transfer]
    if unknown:
        raise LabError(f"experiment.transfer has {unknown[0]!r}, which is not a model; use a list of {', '.join(REGISTRY)}")
    clip_groups([], str(e.get("group", "artist")))
    if e.get("target_split", "none") not in SPLITS:
        raise LabError(f"experiment.target_split={e.get('target_split')!r} must be one of {', '.join(SPLITS)}")
    ss = e.get("split_seed", 0)
    if isinstance(ss, bool) or not isinstance(ss, int) or ss < 0:
        raise LabError(f"experiment.split_seed={ss!r} must be an integer >= 0")
    song = settings.song_path
    if song is not None and not Path(to_absolute_path(str(song))).is_file():
        raise LabError(f"dream.init=song:{song} does not exist; give an audio file path (e.g. song:../shared/music/gtzan_mini/genres/classical/classical.00000.wav)")
    if cfg.model.name in REGISTRY and cfg.model.pretrained:  # a tagger's checkpoint; other models were built by preflight
        if _checkpoint_file(cfg.model, to_absolute_path(str(cfg.paths.weights))) is None:
            raise LabError(f"model={cfg.model.name} has no checkpoint on the weights search path, so there is nothing to dream with; "
                           f"use a model whose checkpoint is installed (python -m lab.models lists them)")
    genre = str(cfg.genre)
    if genre == "all":
        return list(genres), settings
    if genre not in genres:
        raise LabError(f"genre={genre!r} is not in dataset={cfg.dataset.name}; choose one of {', '.join(genres)} or all")
    return [genre], settings


# --- helpers -------------------------------------------------------------------------------------

SPLITS = ("none", "halves")


def genre_means(X: np.ndarray, labels: np.ndarray, keep: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """Sorted genres and their mean embeddings [shape=(n_genres, dim)], over the rows where ``keep`` is True (default all)."""
    labels = np.asarray(labels)
    keep = np.ones(len(labels), bool) if keep is None else np.asarray(keep, bool)
    genres = sorted(set(labels[keep].tolist()))
    return genres, np.stack([X[keep & (labels == g)].mean(0) for g in genres]).astype(np.float32)


def split_parts(clips, labels, *, how: str = "none", seed: int = 0, unit: str = "artist") -> tuple[np.ndarray, list[str]]:
    """Which songs make a genre's dream target and which judge it [shape=(n,)]: ``target``, ``score`` or ``both``.

    ``none`` (the study): every song is both, so a dream is scored against the mean it was made
    from. ``halves``: within each genre the groups (:func:`lab.datasets.clip_groups` with ``unit``:
    artists where known, else recordings) are shuffled with ``seed`` and the first ceil(G/2) make
    the target mean, the others the genre means every judge scores against -- no group is on both
    sides. A genre whose songs are all one artist (gtzan_mini: blues, classical, reggae, rock) can
    only be split by recording; it is, and it is returned in the second value so the run says so.
    """
    labels = np.asarray(labels)
    if how not in SPLITS:
        raise LabError(f"experiment.target_split={how!r} must be one of {', '.join(SPLITS)}")
    if how == "none":
        return np.full(len(labels), "both", dtype=object), []
    groups = clip_groups(clips, unit).astype(str)
    recordings = clip_groups(clips, "recording").astype(str)
    rng = np.random.default_rng(seed)
    parts = np.empty(len(labels), dtype=object)
    fallback = []
    for g in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == g)
        key = groups
        if len(np.unique(groups[rows])) < 2:
            key = recordings  # one artist: keep at least the recordings apart
            fallback.append(g)
        units = np.unique(key[rows])
        if len(units) < 2:
            raise LabError(f"experiment.target_split=halves needs at least 2 songs of genre {g!r}, got {len(units)}")
        target = set(rng.permutation(units)[: int(np.ceil(len(units) / 2))].tolist())
        parts[rows] = ["target" if key[i] in target else "score" for i in rows]
    return parts, fallback


def distances(e: np.ndarray, genres: list[str], means: np.ndarray, target: str) -> tuple[np.ndarray, int, str]:
    """Euclidean distances [shape=(n_genres,)] of embedding ``e`` to every genre mean, the rank of
    ``target`` (1 = nearest) and the nearest genre."""
    d = np.linalg.norm(means - e[None, :], axis=1)
    t = genres.index(target)
    return d, int((d < d[t]).sum()) + 1, genres[int(d.argmin())]


def dream_key(cfg: DictConfig, genre: str, weights_id: str, target: np.ndarray) -> str:
    """Hash of everything that changes a dream's path (not device, progress, logging cadence, and
    not ``steps``: raising ``dream.steps`` continues a finished dream in the same run)."""
    d = {"model": OmegaConf.to_container(cfg.model, resolve=True),
         "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
         "dream": {k: v for k, v in OmegaConf.to_container(cfg.dream, resolve=True).items()
                   if k not in ("steps", "device", "progress", "log_every", "checkpoint_every")},
         "genre": genre, "weights": weights_id, "target": hashlib.sha256(target.tobytes()).hexdigest()}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:32]


def wav_bytes(y: np.ndarray, sr: int) -> bytes:
    """``y`` as a 32-bit float WAV: the samples are stored bit-exactly."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(y, dtype=np.float32), sr, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def _model_cfg(cfg: DictConfig, name: str) -> DictConfig:
    """``cfg`` with the model group switched to ``conf/model/<name>.yaml`` (pretrained, same corpus)."""
    other = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    out.model = other  # replaced, not merged: the dreaming model may be of another kind (model=custom)
    out.model.pretrained = True
    if "corpus" in cfg.model and "checkpoint" in other:
        out.model.checkpoint = str(other.checkpoint).replace("jamendo/", f"{cfg.model.corpus}/", 1)
    return out


def embed_audio(model, y: np.ndarray, sr: int | None = None) -> np.ndarray:
    """Mean embedding [shape=(dim,)] of ``y`` by the lab's window policy (non-overlapping, tail dropped).

    ``sr``: the rate of ``y`` when it may differ from the model's (a user model dreaming at 22.05 kHz
    judged by a 16 kHz tagger); ``y`` is resampled to the model's rate first.
    """
    import torch

    from lab.extract.windows import frame_windows

    if sr is not None and sr != model.info.sample_rate:
        import librosa

        y = librosa.resample(np.asarray(y, dtype=np.float32), orig_sr=sr, target_sr=model.info.sample_rate, res_type="soxr_hq")
    windows, _ = frame_windows(np.asarray(y, dtype=np.float32), model.info.input_length)
    with torch.inference_mode():
        e, _ = model.embed_and_tag(torch.from_numpy(windows))
        return e.mean(0).numpy()


class Transfer:
    """The other available taggers and their genre means, loaded once per job."""

    def __init__(self, cfg: DictConfig, tracker, score_ids: set[str] | None = None) -> None:
        """``score_ids``: the clips whose genre means judge a dream (default: every clip)."""
        self.judges: dict[str, tuple[object, list[str], np.ndarray]] = {}
        weights = to_absolute_path(str(cfg.paths.weights))
        dataset = build_dataset(cfg.dataset)
        for name in cfg.experiment.transfer:
            if name == cfg.model.name:
                continue
            mcfg = _model_cfg(cfg, name)
            if _checkpoint_file(mcfg.model, weights) is None:
                tracker.warn(f"transfer: model={name} skipped, no checkpoint on the weights search path")
                continue
            loaded = build_model(mcfg)
            emb = embed(mcfg, dataset, loaded, None)
            keep = None if score_ids is None else np.array([c.id in score_ids for c in emb.clips])
            genres, means = genre_means(emb.X, emb.labels, keep)
            self.judges[name] = (loaded.model, genres, means)

    def rows(self, y: np.ndarray, genre: str, made_by: str, sr: int | None = None) -> list[dict]:
        """One row per judging model: nearest genre and the target's rank for audio ``y`` at ``sr`` Hz (``genre=""``:
        no target, e.g. the starting noise; rank and target distance are then left empty)."""
        out = []
        for name, (model, genres, means) in self.judges.items():
            out.append(judged(embed_audio(model, y, sr), genres, means, genre, made_by, name))
        return out


def judged(e: np.ndarray, genres: list[str], means: np.ndarray, genre: str, made_by: str, judge: str) -> dict:
    """One row of ``transfer.csv``: where embedding ``e`` lands among ``judge``'s genre means."""
    d = np.linalg.norm(means - e[None, :], axis=1)
    row = {"genre": genre, "dreamed_by": made_by, "judged_by": judge, "nearest_genre": genres[int(d.argmin())],
           "target_rank": "", "dist_target": "", "dist_nearest": round(float(d.min()), 4)}
    if genre:
        t = genres.index(genre)
        row |= {"target_rank": int((d < d[t]).sum()) + 1, "dist_target": round(float(d[t]), 4)}
    return row


# --- one dream -----------------------------------------------------------------------------------

def _log_dream(t, cfg: DictConfig, res: DreamResult, genre: str, genres: list[str], means: np.ndarray,
               settings: DreamSettings, loaded: LoadedModel, transfer: Transfer, song: np.ndarray | None,
               target: np.ndarray) -> dict:
    """Log one finished dream; ``means`` are the genre means that judge it, ``target`` the vector it was made for."""
    own_model = loaded.model
    sr = own_model.info.sample_rate
    name = loaded.label or cfg.model.name
    d, rank, nearest = distances(res.embedding, genres, means, genre)
    t.log_csv([{"genre": g, "distance": round(float(x), 4), "rank": int((d < x).sum()) + 1, "target": g == genre}
               for g, x in zip(genres, d)], "genre_distances.csv")
    names = loaded.tag_names
    top = np.argsort(-res.tags)[: int(cfg.experiment.top_tags)]
    t.log_csv([{"rank": i + 1, "tag": names[j], "probability": round(float(res.tags[j]), 4)} for i, j in enumerate(top)],
              "top_tags.csv")
    t.log_csv([{"step": s, "loss": loss, "mse": mse} for s, loss, mse in res.history], "loss_history.csv")

    gated = energy_gate(res.waveform, threshold_db=float(cfg.experiment.gate_threshold_db))
    _, gated_rank, gated_nearest = distances(embed_audio(own_model, gated), genres, means, genre)
    t.log_bytes(wav_bytes(res.waveform, sr), "audio/dream_raw.wav")
    t.log_npz("dream_embedding.npz", embedding=res.embedding, tags=res.tags, target=target,
              genre_means=means, genres=np.array(genres))
    t.log_bytes(wav_bytes(normalize_peak(gated), sr), "audio/dream_gated.wav")
    title = f"{genre} dreamed by {name} ({res.step} steps, seed {settings.seed})"
    t.log_figure(plots.dream_spectrogram(res.waveform, sr=sr, title=f"{title}: raw"), "dream_raw.png")
    t.log_figure(plots.dream_spectrogram(gated, sr=sr, title=f"{title}: energy gate {cfg.experiment.gate_threshold_db} dB"),
                 "dream_gated.png")
    if song is not None:
        t.log_bytes(wav_bytes(song, sr), "audio/start_song.wav")

    rows = transfer.rows(res.waveform, genre, name, sr)
    rows.insert(0, {"genre": genre, "dreamed_by": name, "judged_by": name, "nearest_genre": nearest, "target_rank": rank,
                    "dist_target": round(float(d[genres.index(genre)]), 4), "dist_nearest": round(float(d.min()), 4)})
    t.log_csv(rows, "transfer.csv")
    metrics = {"final_loss": res.final_loss, "final_mse": res.final_mse, "initial_loss": res.initial_loss,
               "loss_reduction": res.initial_loss / max(res.final_loss, 1e-30), "target_rank": rank,
               "dist_target": float(d[genres.index(genre)]), "gated_target_rank": gated_rank,
               "total_steps": res.step, "session_steps": res.step - res.start_step,
               "session_seconds": res.seconds, "raw_peak": float(np.abs(res.waveform).max())}
    if np.isfinite(res.steps_per_s):
        metrics["session_steps_per_s"] = res.steps_per_s
    for r in rows[1:]:
        metrics[f"transfer_rank.{r['judged_by']}"] = r["target_rank"]
    t.log_metrics(metrics, step=res.step)
    t.set_tags({"nearest_genre": nearest, "gated_nearest_genre": gated_nearest,
                "resumed_from_step": res.start_step, "steps": res.step}
               | {f"transfer_nearest.{r['judged_by']}": r["nearest_genre"] for r in rows[1:]})
    return {"metrics": metrics, "rows": rows, "nearest": nearest}


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    """Dream each requested genre; log one nested MLflow run per dream and a summary on the job's run."""
    import torch

    # Bad requests stop here, before any audio is decoded (scanning the dataset lists its labels).
    dataset = build_dataset(cfg.dataset)
    todo, settings = validate(cfg, dataset.labels)
    loaded = build_model(cfg)
    emb = embed(cfg, dataset, loaded, tracker)
    labels = np.asarray(emb.labels)
    split = str(cfg.experiment.get("target_split", "none"))
    unit = str(cfg.experiment.get("group", "artist"))
    parts, fallback = split_parts(emb.clips, labels, how=split, seed=int(cfg.experiment.get("split_seed", 0)), unit=unit)
    if fallback:
        tracker.warn(f"target_split=halves: {', '.join(fallback)} have songs of one {unit} only; split by recording there")
    # the target of a dream and the means that judge it come from different songs when split=halves
    genres, target_means = genre_means(emb.X, labels, parts != "score")
    _, means = genre_means(emb.X, labels, parts != "target")
    tracker.log_csv([{"id": c.id, "label": lab, "group": g, "part": p, "split_by": "recording" if lab in fallback else unit}
                     for c, lab, g, p in zip(emb.clips, labels, clip_groups(emb.clips, unit), parts)], "split.csv")
    lost = [g for g in todo if g not in genres]
    if lost:
        raise LabError(f"genre={lost[0]} has no usable song in dataset={cfg.dataset.name} (all skipped), so it has no mean embedding")
    model, weights_id = loaded.model, loaded.weights_id
    sr, length = model.info.sample_rate, settings.n_windows * model.info.input_length
    song = None
    if settings.song_path is not None:
        try:
            song = load_audio(to_absolute_path(str(settings.song_path)), sr=sr)
        except AudioError as err:
            raise LabError(f"dream.init=song:{settings.song_path} cannot be used: {err.detail}") from None
        if len(song) < length:
            tracker.warn(f"start song lasts {len(song) / sr:.1f} s < {length / sr:.1f} s; zero-padded at the end")
    transfer = Transfer(cfg, tracker, None if split == "none" else {c.id for c, p in zip(emb.clips, parts) if p != "target"})
    ckpt_dir = Path(to_absolute_path(str(cfg.experiment.checkpoint_dir)))
    tracker.set_tags({"genre": cfg.genre, "noise_seed": settings.seed, "init": settings.init, "target_split": split,
                      "dream_steps": settings.steps, "split_group": unit,
                      "split_by_recording": ",".join(fallback) if fallback else "none"})
    # Control: where the starting waveform (the seed's noise, or the start song) already lands for every judge.
    start = initial_waveform(settings, length, song=song).clamp(-INIT_CLIP, INIT_CLIP).numpy()
    start_rows = [judged(embed_audio(model, start, sr), genres, means, "", cfg.model.name, cfg.model.name)]
    start_rows += transfer.rows(start, "", cfg.model.name, sr)
    for r in start_rows:
        r["kind"] = "start"
    tracker.set_tags({f"start_nearest.{r['judged_by']}": r["nearest_genre"] for r in start_rows})

    summary, all_rows = [], []
    for genre in todo:
        target = target_means[genres.index(genre)]
        key = dream_key(cfg, genre, weights_id, target)
        tags = tracking.run_tags(cfg) | {"genre": genre, "noise_seed": settings.seed, "init": settings.init,
                                         "regularizer": settings.regularizer, "weights": weights_id[:16],
                                         "embedding_dim": model.info.embedding_dim,
                                         "git_commit": tracking.git_commit()}
        params = tracking.flatten(OmegaConf.to_container(cfg, resolve=True)) | {"genre": genre}
        run_name = f"dream-{loaded.label or cfg.model.name}-{genre}-s{settings.seed}"
        with tracking.resumable_run(tracker, key=key, run_name=run_name, tags=tags, params=params) as (t, reopened):
            # A killed session may have logged steps past its last checkpoint; the resumed one
            # recomputes them bit-identically, so they are not logged twice.
            logged = tracking.last_metric_step(t, "loss") if reopened else 0
            if reopened:
                log.info("dream %s: continuing MLflow run %s (metrics logged up to step %d)", run_name, t.run_id, logged)

            def on_log(step: int, rec: dict[str, float], e: np.ndarray, t=t, genre=genre, logged=logged) -> None:
                if step <= logged:
                    return
                d, rank, _ = distances(e, genres, means, genre)
                t.log_metrics(rec | {f"dist.{g}": float(x) for g, x in zip(genres, d)} | {"target_rank": rank}, step=step)

            torch.manual_seed(settings.seed)
            res = dream(model, target, settings, checkpoint=ckpt_dir / f"{key}.pt", song=song, on_log=on_log)
            out = _log_dream(t, cfg, res, genre, genres, means, settings, loaded, transfer, song, target)
        summary.append({"genre": genre, "run_id": t.run_id, "nearest_genre": out["nearest"], **{
            k: round(float(v), 6) for k, v in out["metrics"].items()}})
        all_rows += [r | {"kind": "dream"} for r in out["rows"]]
    # A dream resumed at its last step runs no step, so it has no session_steps_per_s: the columns are
    # the union of every row's keys (a first row without one made DictWriter refuse the later rows).
    tracker.log_csv(summary, "dream_summary.csv", columns=list(dict.fromkeys(k for row in summary for k in row)))
    context = {"seed": settings.seed, "steps": settings.steps, "target_split": split, "init": settings.init}
    tracker.log_csv([r | context for r in all_rows + start_rows], "transfer.csv")
    ranks = np.array([s["target_rank"] for s in summary])
    result = {"n_dreams": float(len(summary)), "mean_target_rank": float(ranks.mean()),
              "n_nearest_target": float((ranks == 1).sum()),
              "mean_loss_reduction": float(np.mean([s["loss_reduction"] for s in summary]))}
    for judge in transfer.judges:
        r = np.array([row["target_rank"] for row in all_rows if row["judged_by"] == judge], dtype=float)
        result[f"transfer_n_nearest_target.{judge}"] = float((r == 1).sum())
    if len(summary) == 1:
        result |= {k: float(v) for k, v in summary[0].items() if isinstance(v, (int, float))}
    tracker.log_metrics(result)
    return result
