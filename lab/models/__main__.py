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


def parse_args(argv: list[str]) -> tuple[bool, list[str]]:
    """(``--available`` given, Hydra overrides); ``--help`` prints usage, an unknown flag stops with one sentence."""
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m lab.models",
        description="Which of the seven taggers have their checkpoint on this machine, and where each is expected.",
        epilog="e.g. python -m lab.models paths.weights=../shared/weights   |   python -m lab.models --available")
    p.add_argument("--available", action="store_true", help="print only the names of models whose checkpoint exists")
    p.add_argument("overrides", nargs="*", help="the same key=value overrides python -m lab takes (e.g. paths.weights=DIR)")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        p.error(f"unknown option {unknown[0]}; the options are --available and --help, the rest are key=value overrides")
    return args.available, args.overrides


def main(argv: list[str]) -> int:
    available_only, overrides = parse_args(argv)
    cfg = compose_from_args(overrides)
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
