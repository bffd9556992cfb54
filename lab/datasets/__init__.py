"""Datasets: each ``conf/dataset/<name>.yaml`` names its builder with ``_target_``.

Adding a dataset is one module here plus one YAML file; :func:`build_dataset` instantiates
whatever the config names, after resolving relative paths against the launch directory.
"""

from __future__ import annotations

from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from lab.core.errors import LabError
from lab.core.registry import instantiate_group
from lab.datasets.base import GROUP_UNITS, Clip, Dataset, ItemsDataset, clip_groups
from lab.datasets.derived import CompositeDataset, ExcerptDataset, TransformedDataset

__all__ = ["GROUP_UNITS", "Clip", "CompositeDataset", "Dataset", "ExcerptDataset", "ItemsDataset", "TransformedDataset",
           "build_dataset", "clip_groups"]

PATH_KEYS = ("root", "split_dir")  # config keys holding paths, resolved like Hydra's outputs


def build_dataset(cfg: DictConfig) -> Dataset:
    """The dataset described by a ``dataset`` config group (``_target_`` + its arguments)."""
    spec = OmegaConf.to_container(cfg, resolve=True)
    target = spec.pop("_target_", None)
    if target is None:
        raise LabError(f"dataset={spec.get('name')!r} has no _target_ naming its builder in conf/dataset/")
    for key in PATH_KEYS:
        if key in spec:
            if spec[key] in (None, "", "???"):
                raise LabError(f"dataset={spec.get('name')} needs dataset.{key}=PATH (the folder holding the audio)")
            spec[key] = to_absolute_path(str(spec[key]))
    if "parts" in spec:  # a composite: every part is itself a dataset config
        spec["parts"] = {name: build_dataset(OmegaConf.create(part)) for name, part in spec["parts"].items()}
    return instantiate_group({"_target_": target, **spec}, "dataset")
