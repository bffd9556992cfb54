"""Deep dreaming a genre: optimise a waveform until a frozen tagger embeds it at a target vector.

The study's section 3.2.2 (after Inceptionism, Mordvintsev et al. 2015): fix the tagger's weights,
start from Gaussian noise, and descend the gradient of

    loss(x) = MSE(mean_w embed(x_w), target) + reg_weight * R(x)

with respect to the waveform ``x`` (windows ``x_w`` of the model's input length), through the
model's own differentiable front end (STFT -> mel -> dB for fcn/musicnn/crnn/attention, the
harmonic filterbank for hcnn, raw samples for sample/se). ``target`` is normally the mean song
embedding of one genre.

Conventions
-----------
- Audio is mono float32 at the model's rate (16 kHz for the whole zoo), ``n_windows * input_length``
  samples long.
- Parameterisation: ``x = tanh(v)`` and the optimiser updates ``v``, so ``x`` stays in (-1, 1)
  at every step without clipping (a clip would zero the gradient of every clipped sample).
  A starting waveform ``x0`` is mapped by ``v0 = atanh(clip(x0, -0.999, 0.999))``.
- The model is frozen: eval mode (BatchNorm uses its running statistics, dropout is off) and
  ``requires_grad=False`` on every parameter, so no weight gradient is ever computed.
- Regularisers ``R`` (optional, ``regularizer=`` none | flatness | tv), on the power spectrogram
  ``P[f, t]`` (n_fft 512, hop 256 = the mel front end's STFT):

  * ``flatness``: mean over frames of the spectral flatness
    ``exp(mean_f log(P + eps)) / (mean_f P + eps)`` (Wiener entropy, in (0, 1]; white noise is
    about 0.56, a sum of few sinusoids is near 0): pushes energy into few bins, i.e. tones
    instead of hiss.
  * ``tv``: total variation over time of the dB spectrogram, ``mean |D[f, t+1] - D[f, t]| / 10``
    with ``D = 10 log10(P + eps)``: penalises frame-to-frame flicker (in units of 10 dB).

- The post-filter :func:`energy_gate` is the study's "naive thresholding of the energy".

Checkpoints (``torch.save`` to a temporary file, then ``os.replace``) hold the parameter ``v``,
the optimiser state, the step, the loss history, the torch RNG state and the target, so a killed
dream resumes at its last checkpoint and continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import torch

from lab.core.errors import LabError
from lab.core.storage import atomic_write
from lab.models.base import Tagger

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd")
REGULARIZERS = ("none", "flatness", "tv")
INIT_CLIP = 0.999  # atanh(1) is infinite: a full-scale start is pulled in by 0.1%
SPEC_EPS = 1e-10  # power floor of the regularisers (= the front end's -100 dB floor)


@dataclass
class DreamSettings:
    """Options of one dream; mirrored by the ``dream:`` section of ``conf/experiment/dream.yaml``."""

    steps: int = 10_000  # the study's budget
    lr: float = 0.01  # on the tanh pre-activation v, not on x
    optimizer: str = "adam"
    init: str = "noise"  # "noise" or "song:<path>"
    noise_amplitude: float = 0.1  # std of the Gaussian start, in full-scale units
    seed: int = 0  # noise seed
    n_windows: int = 1  # windows whose mean embedding is optimised (a song embedding is a mean)
    regularizer: str = "none"
    reg_weight: float = 0.0
    log_every: int = 50  # steps between loss records (and MLflow metrics)
    checkpoint_every: int = 500  # steps between checkpoints; 0 = never
    device: str = "cpu"
    progress: bool = True

    def validate(self) -> None:
        """Raise :class:`LabError` with one sentence on the first bad value."""
        for key in ("steps", "n_windows", "log_every"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise LabError(f"dream.{key}={v!r} must be a positive integer")
        if isinstance(self.checkpoint_every, bool) or not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 0:
            raise LabError(f"dream.checkpoint_every={self.checkpoint_every!r} must be an integer >= 0 (0 = no checkpoints)")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise LabError(f"dream.lr={self.lr!r} must be a positive number")
        if not (isinstance(self.noise_amplitude, (int, float)) and 0 < self.noise_amplitude <= 1):
            raise LabError(f"dream.noise_amplitude={self.noise_amplitude!r} must be in (0, 1] (full scale = 1)")
        if self.optimizer not in OPTIMIZERS:
            raise LabError(f"dream.optimizer={self.optimizer!r} is unknown; choose one of {', '.join(OPTIMIZERS)}")
        if self.regularizer not in REGULARIZERS:
            raise LabError(f"dream.regularizer={self.regularizer!r} is unknown; choose one of {', '.join(REGULARIZERS)}")
        if not (isinstance(self.reg_weight, (int, float)) and self.reg_weight >= 0):
            raise LabError(f"dream.reg_weight={self.reg_weight!r} must be a number >= 0")
        if not (self.init == "noise" or (self.init.startswith("song:") and len(self.init) > 5)):
            raise LabError(f"dream.init={self.init!r} must be 'noise' or 'song:<audio file>'")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise LabError(f"dream.seed={self.seed!r} must be an integer >= 0")

    @property
    def song_path(self) -> Path | None:
        """The start song of ``init=song:<path>``, else None."""
        return Path(self.init[len("song:"):]).expanduser() if self.init.startswith("song:") else None


@dataclass
class DreamResult:
    """A finished (or stopped) dream."""

    waveform: np.ndarray  # [shape=(n_windows * input_length,)] float32 in (-1, 1), exactly as optimised
    embedding: np.ndarray  # [shape=(dim,)] float32: mean window embedding of ``waveform``
    tags: np.ndarray  # [shape=(50,)] float32: mean window tag probabilities
    history: list[tuple[int, float, float]]  # (step, loss, mse) every log_every steps and at the end
    step: int  # steps done in total (incl. earlier sessions)
    start_step: int  # where this session began (> 0 after a resume)
    steps_per_s: float  # this session's rate (nan if no step ran)
    seconds: float  # this session's wall time in the loop
    initial_loss: float  # loss of the starting waveform (step 0)
    final_loss: float  # loss of ``waveform`` (after the last update)
    final_mse: float  # its MSE term alone


def freeze(model: Tagger) -> Tagger:
    """Put ``model`` in eval mode with ``requires_grad=False`` on every parameter; returns it."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, refusing an unavailable CUDA device with one sentence."""
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise LabError(f"dream.device={name!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LabError(f"dream.device={name} but torch sees no CUDA device here; use dream.device=cpu")
    return dev


def initial_waveform(settings: DreamSettings, length: int, *, song: np.ndarray | None = None) -> torch.Tensor:
    """Starting waveform [shape=(length,)] float32: seeded Gaussian noise, or ``song`` cut/zero-padded."""
    if song is not None:
        y = np.zeros(length, dtype=np.float32)
        n = min(length, len(song))
        y[:n] = song[:n]
        return torch.from_numpy(y)
    g = torch.Generator().manual_seed(settings.seed)  # CPU generator: the same start on any device
    return settings.noise_amplitude * torch.randn(length, generator=g)


def _power_spectrogram(x: torch.Tensor) -> torch.Tensor:
    """(B, n) -> (B, 257, T) power, n_fft 512 / hop 256 / Hann, as the mel front end."""
    window = torch.hann_window(512, device=x.device)
    s = torch.stft(x, 512, hop_length=256, window=window, center=True, pad_mode="reflect", return_complex=True)
    return s.real.square() + s.imag.square()


def regularizer(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The music-likeness penalty ``R(x)`` for windows ``x`` [shape=(B, n)]; formulas in the module doc."""
    if kind == "none":
        return x.new_zeros(())
    p = _power_spectrogram(x)
    if kind == "flatness":
        geo = torch.exp(torch.log(p + SPEC_EPS).mean(dim=1))  # (B, T)
        return (geo / (p.mean(dim=1) + SPEC_EPS)).mean()
    if kind == "tv":
        db = 10.0 * torch.log10(p + SPEC_EPS)
        return (db[..., 1:] - db[..., :-1]).abs().mean() / 10.0
    raise LabError(f"dream.regularizer={kind!r} is unknown; choose one of {', '.join(REGULARIZERS)}")


def embed_waveform(model: Tagger, x: torch.Tensor, n_windows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x [shape=(n_windows * L,)] -> (mean embedding (dim,), mean tags (n_tags,)); differentiable.

    ``model`` is a tagger or any differentiable model of :mod:`lab.models.protocol` (a user's torch
    network); one without tags gives an empty tag vector.
    """
    windows = x.reshape(n_windows, model.info.input_length)  # (n_windows, L), no copy
    out = model.forward_features(windows)
    tags = out.get("tags")
    return out["embedding"].mean(0), (tags.mean(0) if tags is not None else out["embedding"].new_zeros(0))


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save(state)`` to ``path`` atomically (temporary file in the same folder + ``os.replace``)."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, *, target: np.ndarray, length: int) -> dict | None:
    """The checkpoint at ``path`` if it exists and belongs to this target and length, else None."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain containers only
    except Exception:  # noqa: BLE001 - a damaged checkpoint means starting over, not failing
        log.warning("dream checkpoint %s is unreadable; starting from step 0", path)
        return None
    if state["v"].numel() != length or not np.array_equal(state["target"].numpy(), target):
        log.warning("dream checkpoint %s belongs to another target or length; starting from step 0", path)
        return None
    return state


def _make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr) if name == "adam" else torch.optim.SGD(params, lr=lr)


def dream(
    model: Tagger,
    target: np.ndarray,
    settings: DreamSettings,
    *,
    checkpoint: str | os.PathLike | None = None,
    song: np.ndarray | None = None,
    on_log: Callable[[int, dict[str, float], np.ndarray], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> DreamResult:
    """Optimise a waveform so that ``model`` embeds it at ``target``.

    Parameters
    ----------
    model : Tagger
        Frozen here (:func:`freeze`) and moved to ``settings.device``.
    target : np.ndarray [shape=(dim,)]
        The embedding to reach, e.g. a genre's mean song embedding.
    settings : DreamSettings
    checkpoint : path, optional
        Resume from this file if it holds a dream of the same target and length; write it every
        ``settings.checkpoint_every`` steps and at the end.
    song : np.ndarray [shape=(n,)], optional
        Start waveform for ``init=song:...`` (decoded at the model's rate by the caller).
    on_log : callable(step, {"loss", "mse", "reg", "steps_per_s"}, embedding), optional
        Called every ``log_every`` steps and at the last step with the loss terms and the
        embedding [shape=(dim,)] of the waveform before that step's update (e.g. for MLflow).
    on_step : callable(step), optional
        Called after every step (tests use it to simulate a kill).

    Returns
    -------
    DreamResult
    """
    settings.validate()
    device = resolve_device(settings.device)
    # A private copy: the caller's model (memoised by lab.extract.pipeline) keeps its flags and device.
    model = freeze(copy.deepcopy(model)).to(device)
    if device.type == "cuda":
        # cuDNN refuses RNN backward in eval mode ("can only be called in training mode"). An RNN
        # without inter-layer dropout computes the same function in train mode (it has no
        # batch statistics), so only such RNNs (crnn's GRU) are switched; weights stay frozen.
        for m in model.modules():
            if isinstance(m, torch.nn.RNNBase) and m.dropout == 0:
                m.train()
    assert not any(p.requires_grad for p in model.parameters()), "the dreaming model must be frozen"
    target = np.asarray(target, dtype=np.float32)
    if target.shape != (model.info.embedding_dim,):
        raise LabError(f"target shape {target.shape} must be ({model.info.embedding_dim},) for {model.info.name}")
    length = settings.n_windows * model.info.input_length
    tgt = torch.from_numpy(target).to(device)
    ckpt = Path(checkpoint) if checkpoint is not None else None

    state = load_checkpoint(ckpt, target=target, length=length) if ckpt is not None else None
    if state is None:
        x0 = initial_waveform(settings, length, song=song).clamp(-INIT_CLIP, INIT_CLIP)
        v = torch.atanh(x0).to(device).requires_grad_(True)
        opt = _make_optimizer(settings.optimizer, [v], settings.lr)
        step, history = 0, []
    else:
        v = state["v"].to(device).requires_grad_(True)
        opt = _make_optimizer(settings.optimizer, [v], settings.lr)
        opt.load_state_dict(state["optimizer"])
        step, history = int(state["step"]), list(state["history"])
        torch.set_rng_state(state["rng"])
        log.info("resuming dream from %s at step %d", ckpt, step)

    def loss_fn() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.tanh(v)
        emb, _ = embed_waveform(model, x, settings.n_windows)
        mse = torch.mean((emb - tgt) ** 2)
        reg = regularizer(x.reshape(settings.n_windows, -1), settings.regularizer) if settings.reg_weight > 0 else mse.new_zeros(())
        return mse + settings.reg_weight * reg, mse, reg, emb

    def save() -> None:
        if ckpt is not None:
            save_checkpoint(ckpt, {"v": v.detach().cpu(), "optimizer": opt.state_dict(), "step": step,
                                   "history": history, "rng": torch.get_rng_state(), "target": torch.from_numpy(np.asarray(target)),
                                   "initial_loss": initial_loss, "settings": asdict(settings)})

    if state is None:
        with torch.no_grad():
            initial_loss = loss_fn()[0].item()
    else:
        initial_loss = float(state["initial_loss"])

    start_step, t0 = step, time.perf_counter()
    bar = None
    if settings.progress and step < settings.steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.steps, initial=step, desc=f"dream {model.info.name}", unit="step", dynamic_ncols=True)
    try:
        while step < settings.steps:
            opt.zero_grad(set_to_none=True)
            loss, mse, reg, emb = loss_fn()
            loss.backward()
            opt.step()
            step += 1
            if step % settings.log_every == 0 or step == settings.steps:
                # the loss is that of the waveform *before* this step's update (no extra forward pass)
                rate = (step - start_step) / max(time.perf_counter() - t0, 1e-9)
                record = {"loss": loss.item(), "mse": mse.item(), "reg": reg.item(), "steps_per_s": rate}
                history.append((step, record["loss"], record["mse"]))
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.3g}", steps_per_s=f"{rate:.2f}")
                if on_log is not None:
                    on_log(step, record, emb.detach().cpu().numpy())
            if bar is not None:
                bar.update(1)
            if settings.checkpoint_every and step % settings.checkpoint_every == 0:
                save()
            if on_step is not None:
                on_step(step)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    save()
    with torch.no_grad():
        final_loss, final_mse, _, _ = loss_fn()
        x = torch.tanh(v)
        emb, tags = embed_waveform(model, x, settings.n_windows)
    done = step - start_step
    return DreamResult(
        waveform=x.detach().cpu().numpy().astype(np.float32), embedding=emb.cpu().numpy(), tags=tags.cpu().numpy(),
        history=history, step=step, start_step=start_step, seconds=seconds,
        steps_per_s=done / seconds if done else math.nan, initial_loss=initial_loss,
        final_loss=final_loss.item(), final_mse=final_mse.item(),
    )


def energy_gate(y: np.ndarray, *, threshold_db: float = -30.0, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """The study's "naive thresholding of the energy": zero quiet STFT bins, resynthesise.

    ``S = STFT(y)`` (Hann, ``n_fft``, ``hop``); every bin with ``|S| < peak * 10**(threshold_db/20)``,
    ``peak = max |S|`` over the whole clip, is set to 0; ``y' = iSTFT(S)`` (same length as ``y``).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float
    threshold_db : float < 0
        Bins more than ``-threshold_db`` dB below the loudest bin are removed.

    Returns
    -------
    y_gated : np.ndarray [shape=(n,)], float32 (not renormalised)
    """
    if threshold_db >= 0:
        raise LabError(f"threshold_db={threshold_db} must be negative (dB below the loudest bin)")
    s = librosa.stft(np.asarray(y, dtype=np.float32), n_fft=n_fft, hop_length=hop)
    mag = np.abs(s)
    s[mag < mag.max() * 10 ** (threshold_db / 20)] = 0
    return librosa.istft(s, hop_length=hop, n_fft=n_fft, length=len(y)).astype(np.float32)


def normalize_peak(y: np.ndarray, peak_db: float = -1.0) -> np.ndarray:
    """``y`` scaled so its peak sits at ``peak_db`` dBFS (for listening; silent input is returned as is)."""
    p = float(np.max(np.abs(y))) if y.size else 0.0
    return (y * (10 ** (peak_db / 20) / p)).astype(np.float32) if p > 0 else y.astype(np.float32)


def settings_from(section: dict) -> DreamSettings:
    """:class:`DreamSettings` from a config mapping; unknown keys raise one sentence."""
    known = set(DreamSettings.__dataclass_fields__)
    extra = [k for k in section if k not in known]
    if extra:
        raise LabError(f"dream.{extra[0]} is not a dream option; known: {', '.join(sorted(known))}")
    s = DreamSettings(**dict(section))
    s.validate()
    return s


__all__ = ["DreamSettings", "DreamResult", "dream", "energy_gate", "freeze", "regularizer", "settings_from",
           "normalize_peak", "embed_waveform", "initial_waveform"]
