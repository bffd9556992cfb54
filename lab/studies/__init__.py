"""One folder per study, each with its run(cfg, tracker) (experiment.py), its own maths, and its tables (report.py)."""
