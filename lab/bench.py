"""``python -m lab.bench``: the extraction speed benchmark, which lives in :mod:`lab.extract.bench`."""

import sys

from lab.extract.bench import main

if __name__ == "__main__":
    main(sys.argv[1:])
