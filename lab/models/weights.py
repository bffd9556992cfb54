"""Finding, verifying and strictly loading the official tagger checkpoints, per training corpus.

minzwon/sota-music-tagging-models trained the same architectures on three corpora; a checkpoint
lives at ``<corpus>/<model>/best_model.pth`` (the original repository's ``models/`` layout):

| corpus | tag list (output unit i = entry i) | architectures with a checkpoint we can load |
|---|---|---|
| ``jamendo`` (MTG-Jamendo top 50, the default) | ``lab/models/jamendo_tags.txt``, sorted | all seven |
| ``mtat`` (MagnaTagATune top 50) | ``<weights>/tags/mtat_tags.txt``, as stored | fcn, crnn, musicnn |
| ``msd`` (Million Song Dataset top 50) | ``<weights>/tags/msd_50tagList.txt``, as stored | fcn, crnn |

(MSD's musicnn has a 512-channel back end, a different architecture, so it is not offered.)

Search path: a checkpoint is looked up, first hit wins, in ``paths.weights`` (which defaults to
``$LAB_WEIGHTS_DIR``, else ``weights/``), then ``<repo>/weights``, then ``<repo>/../shared/weights``,
so the documented commands work on a fresh clone beside ``../shared`` with no variable set.
Checkpoints are plain state dicts in the legacy (pre-1.6) torch format, saved from CUDA tensors,
so they are read with ``map_location="cpu"`` and ``weights_only=True`` (no pickled code runs).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from lab.core.compose import REPO_ROOT
from lab.core.errors import LabError
from lab.core.storage import file_sha256

WEIGHTS_ENV = "LAB_WEIGHTS_DIR"
DEFAULT_CORPUS = "jamendo"
ALL_MODELS = ("fcn", "musicnn", "crnn", "attention", "hcnn", "sample", "se")
# corpus -> architectures whose checkpoint exists upstream in a layout our classes load strictly.
CORPORA: dict[str, tuple[str, ...]] = {
    "jamendo": ALL_MODELS,
    "mtat": ("fcn", "crnn", "musicnn"),
    "msd": ("fcn", "crnn"),
}
CORPUS_NAMES = {"jamendo": "MTG-Jamendo", "mtat": "MagnaTagATune", "msd": "Million Song Dataset"}
# Where the MTAT / MSD tag lists live under a weights folder (the repository's split/ files).
TAG_FILES = {"mtat": "tags/mtat_tags.txt", "msd": "tags/msd_50tagList.txt"}
# Where real users can fetch them by hand (git-LFS files of the original repository, MIT licence).
UPSTREAM_URL = "https://github.com/minzwon/sota-music-tagging-models/raw/master/models/{corpus}/{model}/best_model.pth"
# SHA-256 of the upstream files we could verify (the others are checked by strict key/shape load).
KNOWN_SHA256: dict[tuple[str, str], str] = {
    ("jamendo", "fcn"): "7bce08a66dbc70d096b0a330f44b4cacd9aa25519b83489fbb98f2164a194e2b",
    ("jamendo", "musicnn"): "66280f4859376377c47f64313c7ac889a3201fdb06a01bf6e94ac6e619081bb5",
    ("jamendo", "crnn"): "0a558989c0793f488cb677d188464c91f47c007f7c70473230e55537ca598215",
    ("mtat", "fcn"): "e89d751202d38c3ae69855782bc27010f87051958dbec64f5aa762364dbac271",
    ("mtat", "crnn"): "cd22fc70cafd06f8f2bfc7dd795abccb1f4b50d5b09094c39ad100baf87475a3",
    ("mtat", "musicnn"): "690ace3bb5d49d90dd38fe3ec05a1185350b3bc3742bd7ee941f56b649b2c893",
    ("msd", "fcn"): "6012aa7eecf864a8081faedca56af054521e8dfb9c5c98659a3dd5d3e1e66f21",
    ("msd", "crnn"): "ebb99855ed0c83f38845db9cfb383dd6fc70938bc58701dcb66e18af9ee7fbea",
}


def check_corpus(model: str, corpus: str) -> None:
    """Raise :class:`LabError` unless ``model`` has a checkpoint trained on ``corpus``."""
    if corpus not in CORPORA:
        raise LabError(f"model.corpus={corpus!r} is unknown; choose one of {', '.join(CORPORA)}")
    if model in ALL_MODELS and model not in CORPORA[corpus]:
        raise LabError(f"model={model} has no checkpoint trained on model.corpus={corpus}; "
                       f"{corpus} has {', '.join(CORPORA[corpus])} (other corpora: "
                       f"{', '.join(c for c in CORPORA if model in CORPORA[c])})")


def search_path(configured: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for checkpoints, in order, duplicates removed.

    ``configured`` (``paths.weights``, itself defaulting to ``$LAB_WEIGHTS_DIR`` or ``weights``)
    or, when not given, ``$LAB_WEIGHTS_DIR``; then ``<repo>/weights``; then ``<repo>/../shared/weights``.
    """
    first = configured or os.environ.get(WEIGHTS_ENV)
    dirs = ([Path(first).expanduser().absolute()] if first else []) + [REPO_ROOT / "weights", REPO_ROOT.parent / "shared" / "weights"]
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in {o.resolve() for o in out}:
            out.append(d)
    return out


def weights_dir(configured: str | os.PathLike | None = None) -> Path:
    """The first folder of :func:`search_path` that exists (else the first one)."""
    dirs = search_path(configured)
    return next((d for d in dirs if d.is_dir()), dirs[0])


def find_checkpoint(model: str, corpus: str = DEFAULT_CORPUS, configured: str | os.PathLike | None = None,
                    subpath: str | None = None) -> Path:
    """Path of ``<dir>/<corpus>/<model>/best_model.pth`` in the first search-path folder holding it.

    Raises :class:`LabError` listing every place looked when none does.
    """
    rel = subpath or f"{corpus}/{model}/best_model.pth"
    dirs = search_path(configured)
    if configured and not dirs[0].is_dir() and dirs[0].resolve() not in (REPO_ROOT / "weights", Path.cwd().resolve() / "weights"):
        # a folder the user named that does not exist is a typo to report, not a reason to look elsewhere
        dirs = dirs[:1]
    candidates = [d / rel for d in dirs]
    for p in candidates:
        if p.is_file():
            return p
    raise LabError(missing_checkpoint_message(model, corpus, candidates))


def missing_checkpoint_message(model: str, corpus: str, looked: list[Path]) -> str:
    """One sentence: the paths searched, where to download from, and the random-weights escape."""
    which = f"model={model}" + ("" if corpus == DEFAULT_CORPUS else f" model.corpus={corpus}")
    also = f" (also looked in {', '.join(str(p) for p in looked[1:])})" if len(looked) > 1 else ""
    return (f"no checkpoint for {which} at {looked[0]}{also}; download it from "
            f"{UPSTREAM_URL.format(corpus=corpus, model=model)} into one of those paths (or set paths.weights=DIR "
            f"or {WEIGHTS_ENV}), or run with model.pretrained=false for random weights")


def tag_names(corpus: str = DEFAULT_CORPUS, weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Tag names in model-output order for ``corpus``.

    Jamendo: the packaged list, sorted (sklearn's ``LabelBinarizer`` sorted it at training time).
    MTAT / MSD: the repository's lists used as stored, read from ``tags/`` of the first
    search-path folder that holds them (never copied into the package).
    """
    if corpus not in CORPORA:
        raise LabError(f"model.corpus={corpus!r} is unknown; choose one of {', '.join(CORPORA)}")
    if corpus == "jamendo":
        text = resources.files("lab.models").joinpath("jamendo_tags.txt").read_text()
        return sorted(t.strip() for t in text.splitlines() if t.strip())
    looked = [d / TAG_FILES[corpus] for d in search_path(weights_dir)]
    path = next((p for p in looked if p.is_file()), None)
    if path is None:
        raise LabError(f"the {corpus} tag list is missing: looked for {', '.join(map(str, looked))}")
    names = [t.strip() for t in path.read_text().splitlines() if t.strip()]
    if len(set(names)) != len(names):
        raise LabError(f"tag list {path} repeats a tag name; it cannot be the model's output order")
    return names


def read_state_dict(path: Path, model: str, corpus: str = DEFAULT_CORPUS) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a CPU state dict, with one clear error if it is unusable."""
    if not path.is_file():
        raise LabError(missing_checkpoint_message(model, corpus, [path]))
    expected = KNOWN_SHA256.get((corpus, model))
    if expected is not None and file_sha256(path) != expected:
        raise LabError(
            f"checkpoint {path} does not match the official {model} weights trained on {corpus} (SHA-256 differs); "
            f"re-download it from {UPSTREAM_URL.format(corpus=corpus, model=model)}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile, OSError) as err:
        raise LabError(f"checkpoint {path} cannot be read as a torch state dict ({err.__class__.__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LabError(f"checkpoint {path} is not a plain state dict of tensors")
    return state


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a one-sentence summary of any mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise LabError(f"checkpoint {source} does not fit {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
