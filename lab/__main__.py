"""``python -m lab``: the Hydra entry point (configs in the repository's ``conf/``)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def _main(cfg: DictConfig) -> float | None:
    from lab.app import main  # imported late so `--help` and config errors stay fast

    scores = main(cfg)
    return scores.get("accuracy") if scores else None


if __name__ == "__main__":
    _main()
