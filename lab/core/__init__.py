"""What every job uses and that depends on nothing else in the lab: errors, the config registry and composer, atomic files, digests and locks."""
