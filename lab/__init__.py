"""lab: a research lab for probing the latent space of pretrained music taggers."""

import os
import sys

from lab.core.moved import MovedFinder

# MLflow 3 sends usage telemetry at exit; on machines without internet that waits for a network
# time-out (measured here: 26 s vs 9 s for one job). Opt out unless the user chose otherwise.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# Modules of the flat layout answer with their new names (lab/core/moved.py).
if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
    sys.meta_path.append(MovedFinder())

__version__ = "0.1.0"
