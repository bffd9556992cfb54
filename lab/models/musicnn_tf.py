"""The ``musicnn`` package's own models (Pons & Serra 2019) in PyTorch: ``model=musicnn_tf``.

Jordi Pons' ``musicnn`` package (PyPI, ISC licence) ships the MagnaTagATune- and Million-Song-trained
``musicnn`` checkpoints inside its wheel as TensorFlow 1 checkpoints, and pins an old NumPy and
TensorFlow. The lab reads those checkpoints with NumPy (:mod:`lab.models.tf_checkpoint`) into
this re-implementation of ``musicnn/models.py: build_musicnn`` — same architecture family as the
lab's own ``model=musicnn`` (minzwon's re-implementation, trained on MTG-Jamendo or MTAT), other
code and training. TensorFlow is never imported. Install the package without its pins::

    pip install --no-deps musicnn        # ~29 MB wheel; only its checkpoint files and tag lists are read

Pipeline, as ``musicnn/extractor.py`` (version 0.1.0) computes it:

* the whole clip at 16 kHz -> librosa mel spectrogram (n_fft 512, hop 256, 96 Slaney mels, power 2,
  centred frames with reflect padding, librosa 0.7's defaults) -> float16 -> ``log10(10000 x + 1)``;
* cut into non-overlapping patches of 187 frames (3 s) from frame 0, the tail dropped (a clip
  shorter than one patch is padded with silence);
* per patch: batch norm -> front end (timbral convolutions 7x38 and 7x67 over the padded input,
  temporal convolutions 128/64/32 x 1 with TensorFlow's 'same' padding, each ReLU -> batch norm ->
  max over frequency) -> mid end (three 7-tap convolutions over the 561 front-end channels,
  64 filters, two residual) -> back end (max and mean over time of the 753 channels, interleaved
  as TensorFlow flattens them, batch norm, dense 200 + ReLU + batch norm = the embedding ("penultimate"),
  dense 50 + sigmoid = the tags);
* the clip's embedding and tags: the mean over its patches (the lab's song embedding is a mean of windows too).

Batch norms use TensorFlow's epsilon (0.001). Inference only (``differentiable=False``: the front end
is librosa). Identity for the cache: the checkpoint file's SHA-256 and this module's source.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import to_absolute_path
from torch import nn

from lab.core.errors import LabError
from lab.core.storage import file_sha256, text_sha256
from lab.models.base import TaggerSpec
from lab.models.protocol import Built, source_digest
from lab.models.tf_checkpoint import read_checkpoint

log = logging.getLogger(__name__)

SR, N_FFT, HOP, N_MELS, N_FRAMES = 16000, 512, 256, 96, 187
EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default epsilon
CHECKPOINTS = {"MTT_musicnn": "MTT_LABELS", "MSD_musicnn": "MSD_LABELS"}
INSTALL = "pip install --no-deps musicnn"


def _bn(n: int, dims: int) -> nn.Module:
    return (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(n, eps=EPS)


def _same(k: int) -> tuple[int, int]:
    """TensorFlow 'same' padding of a stride-1 kernel of size ``k``: the odd sample goes after."""
    return (k - 1) // 2, k - 1 - (k - 1) // 2


class PonsMusicnn(nn.Module):
    """``build_musicnn`` of musicnn 0.1.0 on log-mel patches [shape=(B, 187, 96)]."""

    def __init__(self, n_classes: int = 50, mid: int = 64, units: int = 200) -> None:
        super().__init__()
        self.bn_in = _bn(1, 2)
        self.timbral = nn.ModuleList([nn.Conv2d(1, 204, (7, int(0.4 * N_MELS))), nn.Conv2d(1, 204, (7, int(0.7 * N_MELS)))])
        self.timbral_bn = nn.ModuleList([_bn(204, 2), _bn(204, 2)])
        self.temporal = nn.ModuleList([nn.Conv2d(1, 51, (k, 1)) for k in (128, 64, 32)])
        self.temporal_bn = nn.ModuleList([_bn(51, 2) for _ in range(3)])
        front = 2 * 204 + 3 * 51  # 561
        self.mid = nn.ModuleList([nn.Conv1d(front, mid, 7), nn.Conv1d(mid, mid, 7), nn.Conv1d(mid, mid, 7)])
        self.mid_bn = nn.ModuleList([_bn(mid, 1) for _ in range(3)])
        pooled = 2 * (front + 3 * mid)  # max and mean of 753 channels
        self.pool_bn = _bn(pooled, 1)
        self.dense = nn.Linear(pooled, units)
        self.dense_bn = _bn(units, 1)
        self.out = nn.Linear(units, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 187, 96) log-mel patches -> ((B, 200) penultimate embedding, (B, 50) tag probabilities)."""
        h = self.bn_in(x.unsqueeze(1))  # (B, 1, T, F): TensorFlow's NHWC with H = time, W = frequency
        feats = []
        padded = F.pad(h, (0, 0, 3, 3))  # time only: the frequency axis is pooled away afterwards
        for conv, bn in zip(self.timbral, self.timbral_bn):
            feats.append(bn(torch.relu(conv(padded))).amax(dim=3))  # (B, 204, T)
        for conv, bn in zip(self.temporal, self.temporal_bn):
            feats.append(bn(torch.relu(conv(F.pad(h, (0, 0, *_same(conv.kernel_size[0])))))).amax(dim=3))  # (B, 51, T)
        front = torch.cat(feats, dim=1)  # (B, 561, T)
        m1 = self.mid_bn[0](torch.relu(self.mid[0](F.pad(front, (3, 3)))))
        m2 = self.mid_bn[1](torch.relu(self.mid[1](F.pad(m1, (3, 3))))) + m1
        m3 = self.mid_bn[2](torch.relu(self.mid[2](F.pad(m2, (3, 3))))) + m2
        mids = torch.cat([front, m1, m2, m3], dim=1)  # (B, 753, T)
        pooled = torch.stack([mids.amax(dim=2), mids.mean(dim=2)], dim=2).flatten(1)  # TF flattens (753, 2): interleaved
        emb = self.dense_bn(torch.relu(self.dense(self.pool_bn(pooled))))
        return emb, torch.sigmoid(self.out(emb))


def state_from_checkpoint(variables: dict[str, np.ndarray], model: PonsMusicnn) -> dict[str, torch.Tensor]:
    """The TensorFlow variables (default layer names, in build order) as ``model``'s state dict."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    state: dict[str, torch.Tensor] = {}

    def bn(prefix: str, i: int) -> None:
        name = "batch_normalization" + (f"_{i}" if i else "")
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"), ("running_var", "moving_variance")):
            state[f"{prefix}.{ours}"] = t(variables[f"{name}/{theirs}"])
        state[f"{prefix}.num_batches_tracked"] = torch.zeros((), dtype=torch.int64)

    def conv(prefix: str, i: int, dims: int) -> None:
        name = "conv2d" + (f"_{i}" if i else "")
        k = variables[f"{name}/kernel"]  # (kh, kw, in, out)
        state[f"{prefix}.weight"] = t(k.transpose(3, 2, 0, 1)) if dims == 2 else t(k[:, :, 0, :].transpose(2, 1, 0))
        state[f"{prefix}.bias"] = t(variables[f"{name}/bias"])

    bn("bn_in", 0)
    for j in range(2):
        conv(f"timbral.{j}", j, 2)
        bn(f"timbral_bn.{j}", j + 1)
    for j in range(3):
        conv(f"temporal.{j}", j + 2, 2)
        bn(f"temporal_bn.{j}", j + 3)
    for j in range(3):
        conv(f"mid.{j}", j + 5, 1)
        bn(f"mid_bn.{j}", j + 6)
    bn("pool_bn", 9)
    state["dense.weight"], state["dense.bias"] = t(variables["dense/kernel"].T), t(variables["dense/bias"])
    bn("dense_bn", 10)
    state["out.weight"], state["out.bias"] = t(variables["dense_1/kernel"].T), t(variables["dense_1/bias"])
    return state


PAD_MODE = "reflect"  # librosa's default before 0.10, when the package was made; 0.10+ pads with zeros


def log_mel(y: np.ndarray, pad_mode: str = PAD_MODE) -> np.ndarray:
    """musicnn's input: [shape=(frames, 96)] ``log10(10000 * float16(mel power) + 1)`` of 16 kHz audio ``y``.

    The float16 rounding is the package's; the product is taken in float32, as NumPy 1.x promoted it
    (in float16, NumPy 2's rule, 10000 x overflows to infinity for the loudest ~1 % of bins).
    """
    mel = librosa.feature.melspectrogram(y=np.asarray(y, np.float32), sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS,
                                         pad_mode=pad_mode).T
    return np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)


def patches(rep: np.ndarray) -> np.ndarray:
    """Non-overlapping 187-frame patches from frame 0, tail dropped [shape=(P, 187, 96)]; silence-padded if shorter."""
    if len(rep) < N_FRAMES:
        rep = np.pad(rep, ((0, N_FRAMES - len(rep)), (0, 0)))
    n = (len(rep) - N_FRAMES) // N_FRAMES + 1
    return np.stack([rep[i * N_FRAMES : (i + 1) * N_FRAMES] for i in range(n)])


class MusicnnTF(nn.Module):
    """The package's checkpoint as an :class:`~lab.models.protocol.EmbeddingModel` (whole clips, tags)."""

    differentiable = False

    def __init__(self, net: PonsMusicnn, info: TaggerSpec) -> None:
        super().__init__()
        self.net = net.eval()
        self.info = info

    def embed_and_tag(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n_samples) clips at 16 kHz -> ((B, 200) mean penultimate, (B, 50) mean tag probabilities) over patches."""
        embs, tags = [], []
        device = next(self.net.parameters()).device  # the spectrogram is librosa's (CPU); the network may sit on a GPU
        for y in x.detach().cpu().numpy():
            e, t = self.net(torch.from_numpy(patches(log_mel(y))).to(device))
            embs.append(e.mean(0))
            tags.append(t.mean(0))
        return torch.stack(embs).to(x.device), torch.stack(tags).to(x.device)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        e, t = self.embed_and_tag(x)
        return {"embedding": e, "tags": t}


def package_dir(path: str | None = None) -> Path:
    """The installed ``musicnn`` package folder (found without importing it: its modules import TensorFlow)."""
    if path:
        p = Path(to_absolute_path(str(path)))
        if not p.is_dir():
            raise LabError(f"model.package={path} is not a folder; give the musicnn package folder (holding MTT_musicnn/)")
        return p
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise LabError(f"model=musicnn_tf needs the musicnn package's checkpoints: {INSTALL} (it is not installed here)")
    return Path(list(spec.submodule_search_locations)[0])


def tag_list(folder: Path, checkpoint: str) -> list[str]:
    """``MTT_LABELS`` / ``MSD_LABELS`` of the package's configuration.py, read as text (no import)."""
    tree = ast.parse((folder / "configuration.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == CHECKPOINTS[checkpoint] for t in node.targets):
            return [str(v) for v in ast.literal_eval(node.value)]
    raise LabError(f"{folder / 'configuration.py'} has no {CHECKPOINTS[checkpoint]}; is it the musicnn package?")


def build_musicnn_tf(*, name: str = "musicnn_tf", corpus: str = "mtat", package: str | None = None, id: str | None = None,
                     pretrained: bool = True, seed: int = 0) -> Built:
    """The ``musicnn`` package's checkpoint trained on ``corpus`` (``mtat``: MTT_musicnn, ``msd``: MSD_musicnn) in PyTorch."""
    checkpoint = {"mtat": "MTT_musicnn", "msd": "MSD_musicnn"}.get(corpus)
    if checkpoint is None:
        raise LabError(f"model.corpus={corpus!r} must be mtat or msd (the musicnn package's MTT_musicnn and MSD_musicnn)")
    folder = package_dir(package)
    prefix = f"{folder / checkpoint}/"  # the package saved its checkpoints with an empty file prefix: <dir>/.index
    if pretrained:
        from lab.models.weights import load_strict

        net = PonsMusicnn()
        load_strict(net, state_from_checkpoint(read_checkpoint(prefix), net), prefix)
        identity = text_sha256("musicnn_tf", checkpoint, file_sha256(prefix + ".data-00000-of-00001"), source_digest(PonsMusicnn))
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            net = PonsMusicnn()
        identity = text_sha256("musicnn_tf", f"random-{seed}", source_digest(PonsMusicnn))
    label = id or name
    info = TaggerSpec(f"{label}-{corpus}", SR, None, 200, "Pons & Serra 2019 (musicnn package, TF checkpoint read into PyTorch)")
    log.info("model=musicnn_tf: %s from %s%s", checkpoint, folder, "" if pretrained else " (random weights)")
    return Built(MusicnnTF(net, info), identity, tag_list(folder, checkpoint), label=label)
