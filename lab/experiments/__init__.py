"""Studies: one module each, ``run(cfg, tracker) -> dict[str, float]``, named by ``conf/experiment/<name>.yaml``."""
