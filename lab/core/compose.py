"""The lab config composed outside ``python -m lab``, for the helper commands."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout: conf/ beside lab/, ../shared beside it
CONF_DIR = REPO_ROOT / "conf"


def compose_from_args(overrides: list[str]) -> DictConfig:
    """The lab config composed with command-line style overrides (``hydra.*`` ones are ignored).

    Lets helper commands (``python -m lab.models``, ``python -m lab.report``) resolve paths
    exactly as ``python -m lab`` would for the same arguments.
    """
    from hydra import compose, initialize_config_dir

    keep = [o for o in overrides if not o.lstrip("+~").startswith("hydra") and not o.startswith("-")]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name="config", overrides=keep)
