"""``python -m lab``: the Hydra entry point (configs in the repository's ``conf/``)."""

import re
import sys

import hydra
from omegaconf import DictConfig

# ``cluster_count=20`` (or ``=7,10,15``) reads naturally but Hydra takes a group option as a
# string: turn it into the value override it means.
_K = re.compile(r"^cluster_count=(\d+(,\d+)*)$")


def _rewrite(argv: list[str]) -> list[str]:
    return [f"cluster_count.k={m.group(1)}" if (m := _K.match(a)) else a for a in argv]


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def _main(cfg: DictConfig) -> float | None:
    from lab.app.task import main  # imported late so `--help` and config errors stay fast

    scores = main(cfg)
    return scores.get("accuracy") if scores else None


if __name__ == "__main__":
    sys.argv[1:] = _rewrite(sys.argv[1:])
    _main()
