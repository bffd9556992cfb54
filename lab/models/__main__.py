"""``python -m lab.models [--available] [--corpus C] [overrides...]``: which checkpoints this machine has.

Prints, for every training corpus and architecture, the model's facts and the checkpoint found on
the search path (``paths.weights``, then ``<repo>/weights``, then ``<repo>/../shared/weights``),
resolved from the same overrides ``python -m lab`` takes (e.g. ``paths.weights=DIR``). With
``--available`` prints only the names of models whose checkpoint for ``--corpus`` (default
jamendo) exists (used by ``multirun.sh``).
"""

from __future__ import annotations

import argparse
import sys

from hydra.utils import to_absolute_path

from lab.core.compose import compose_from_args
from lab.core.errors import LabError
from lab.models import model_info
from lab.models.weights import CORPORA, CORPUS_NAMES, DEFAULT_CORPUS, UPSTREAM_URL, find_checkpoint, search_path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab.models", description="List the taggers, their training corpora "
                                "and which checkpoints are found on the weights search path.",
                                epilog="example: python -m lab.models paths.weights=/data/weights")
    p.add_argument("--available", action="store_true", help="print only the names of models with a checkpoint")
    p.add_argument("--corpus", default=DEFAULT_CORPUS, choices=list(CORPORA), help="corpus for --available (default jamendo)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides as for python -m lab, e.g. paths.weights=DIR")
    return p


def main(argv: list[str]) -> int:
    """Print the table (or the available names); returns the exit code."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unknown option {unknown[0]}; the options are --available, --corpus and --help, the rest are key=value overrides")
    cfg = compose_from_args(args.overrides)
    wdir = to_absolute_path(str(cfg.paths.weights))
    rows = []
    for corpus, models in CORPORA.items():
        for name in models:
            try:
                path, ok = find_checkpoint(name, corpus, wdir), True
            except LabError:
                path, ok = None, False
            rows.append((corpus, name, model_info(name), path, ok))
    if args.available:
        print(" ".join(name for corpus, name, _, _, ok in rows if ok and corpus == args.corpus))
        return 0
    print("checkpoint search path: " + " -> ".join(str(d) for d in search_path(wdir)))
    print(f"{'corpus':8} {'model':10} {'dim':>4} {'window':>8}  checkpoint")
    for corpus, name, info, path, ok in rows:
        where = str(path) if ok else f"MISSING (from {UPSTREAM_URL.format(corpus=corpus, model=name)})"
        print(f"{corpus:8} {name:10} {info.embedding_dim:>4} {info.input_length / info.sample_rate:>7.2f}s  "
              f"{'ok     ' if ok else ''}{where}")
    print("corpora: " + "; ".join(f"{c} = {CORPUS_NAMES[c]} ({', '.join(m)})" for c, m in CORPORA.items())
          + "; choose with model=<name> model.corpus=<corpus>")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
