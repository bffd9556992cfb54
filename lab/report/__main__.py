"""``python -m lab.report``: see :mod:`lab.report`."""

import sys

from lab.report import main

sys.exit(main())
