"""Datasets by name: ``gtzan``, ``folder`` and the built-in ``synth``."""

from __future__ import annotations

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from lab.datasets.base import Clip, Dataset
from lab.datasets.folder import load_folder
from lab.datasets.gtzan import load_gtzan
from lab.datasets.synth import SynthDataset
from lab.errors import LabError

__all__ = ["Clip", "Dataset", "build_dataset"]


def build_dataset(cfg: DictConfig) -> Dataset:
    """The dataset described by the ``dataset`` config group."""
    name = cfg.name
    if name == "synth":
        return SynthDataset(n_per_class=cfg.n_per_class, seconds=cfg.seconds, seed=cfg.seed, min_seconds=cfg.min_seconds)
    if cfg.get("root") in (None, "", "???"):
        raise LabError(f"dataset={name} needs dataset.root=PATH (the folder holding the audio)")
    root = to_absolute_path(str(cfg.root))
    if name == "gtzan":
        split_dir = cfg.get("split_dir")
        return load_gtzan(root, min_seconds=cfg.min_seconds, split=cfg.get("split", "all"),
                          split_dir=to_absolute_path(split_dir) if split_dir else None)
    if name == "folder":
        return load_folder(root, min_seconds=cfg.min_seconds, extensions=tuple(cfg.extensions), name=cfg.get("label", "folder"))
    raise LabError(f"dataset={name!r} is unknown; choose gtzan, folder or synth")
