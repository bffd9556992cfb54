"""The one Hydra task behind python -m lab: config validation, pre-flight checks, the MLflow run around a study."""
