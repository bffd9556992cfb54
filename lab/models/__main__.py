"""``python -m lab.models [--available] [overrides...]``: which checkpoints this machine has.

Prints each model's facts and whether its checkpoint is at the configured path (resolved from
the same overrides ``python -m lab`` takes, e.g. ``paths.weights=DIR``). With ``--available``
prints only the names of models whose checkpoint file exists (used by ``multirun.sh``).
"""

from __future__ import annotations

import sys

from hydra.utils import to_absolute_path

from lab.compose import compose_from_args
from lab.models import REGISTRY, model_info
from lab.models.weights import UPSTREAM_URL, checkpoint_path


def main(argv: list[str]) -> int:
    available_only = "--available" in argv
    cfg = compose_from_args([a for a in argv if a != "--available"])
    wdir = to_absolute_path(str(cfg.paths.weights))
    rows = []
    for name in REGISTRY:
        path = checkpoint_path(name, f"jamendo/{name}/best_model.pth", wdir)
        rows.append((name, model_info(name), path, path.is_file()))
    if available_only:
        print(" ".join(name for name, _, _, ok in rows if ok))
        return 0
    print(f"{'model':10} {'dim':>4} {'window':>8}  checkpoint")
    for name, info, path, ok in rows:
        print(f"{name:10} {info.embedding_dim:>4} {info.input_length / info.sample_rate:>7.2f}s  "
              f"{'ok     ' if ok else 'MISSING'} {path}" + ("" if ok else f"  (from {UPSTREAM_URL.format(model=name)})"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
