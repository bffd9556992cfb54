"""Every command in README.md and docs/ is one a fresh clone beside ../shared accepts as written.

Commands are read from the pages' ```bash blocks (continuation lines joined, ``#`` comments and
environment prefixes dropped). Without running the studies (that is what the pages' own numbers
came from), each is checked as far as can be known before any work:

* ``python -m lab ...``: every override parses, each job of a sweep composes (Hydra's compose API,
  the first value of each swept key), passes the lab's validation, names an existing experiment,
  and every ``../shared`` path it names exists;
* ``python -m lab.<module> ...``: the module exists and its ``--help`` lists every ``--option`` used;
* ``bash multirun.sh ...``: its settings are known to it and its Hydra overrides compose.
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MULTIRUN_SETTINGS = {"BUDGET", "SEEDS", "MODELS", "JOBS", "SWEEP_ID", "TRANSFORMS", "BASELINES", "OOD", "PYTHON"}


def commands(page: Path) -> list[str]:
    """The shell commands in ``page``'s bash code blocks, one string each."""
    out, block = [], None
    for line in page.read_text().splitlines():
        if line.strip().startswith("```"):
            block = [] if block is None and line.strip() in ("```bash", "```sh", "```console") else None
            continue
        if block is None:
            continue
        text = line.split(" # ")[0].rstrip() if not line.lstrip().startswith("#") else ""
        if out and out[-1].endswith("\\"):
            out[-1] = out[-1][:-1].rstrip() + " " + text.strip()
        elif text.strip():
            out.append(text.strip())
    return out


ALL = [(p, c) for p in PAGES for c in commands(p)]


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):  # VAR=value python -m ...
        argv = argv[1:]
    return argv


def _jobs(overrides: list[str]) -> list[str]:
    """The overrides of the first job of a sweep (``a=x,y`` -> ``a=x``), as Hydra's parser reads them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("hydra")])
    out = []
    for o in parsed:
        if o.is_sweep_override():
            first = next(iter(o.sweep_string_iterator()))
            out.append(f"{o.get_key_element()}={first}")
        else:
            out.append(o.input_line)
    return out


def _check_lab_overrides(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lab.__main__ import _rewrite
    from lab.app import config

    job = _jobs(_rewrite([o for o in overrides if not o.startswith("-")]))  # -m, --help, --cfg job: Hydra's own flags
    for o in job:
        value = o.split("=", 1)[-1]
        for path in re.findall(r"(\.\./shared/[^\s,\]}'\"]+)", value):
            assert (ROOT / path).exists(), f"{o}: {path} does not exist beside a fresh clone"
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="config", overrides=job)
    GlobalHydra.instance().clear()
    config.validate(cfg)
    return cfg


@functools.cache
def _help(module: str) -> str:
    p = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, f"python -m {module} --help failed: {p.stderr[-500:]}"
    return p.stdout


@pytest.mark.parametrize("page, command", ALL, ids=[f"{p.relative_to(ROOT)}:{i}" for i, (p, _) in enumerate(ALL)])
def test_command_runs_as_written_from_a_fresh_clone(page, command):
    argv = _argv(command)
    if len(argv) >= 3 and argv[0] == "python" and argv[1] == "-m":
        module = argv[2]
        if module == "lab":
            _check_lab_overrides(argv[3:])
        elif module.startswith("lab."):
            options = {a.split("=")[0] for a in argv[3:] if a.startswith("--")}
            helptext = _help(module)
            missing = [o for o in options if o not in helptext]
            assert not missing, f"python -m {module} does not take {missing}"
            for path in re.findall(r"(\.\./shared/[^\s,]+)", command):
                assert (ROOT / path).exists(), f"{path} does not exist beside a fresh clone"
    elif argv[:2] == ["bash", "multirun.sh"]:
        words = argv[2:]
        settings = [w for w in words if re.match(r"^[A-Z][A-Z0-9_]*=", w)]
        assert {w.split("=")[0] for w in settings} <= MULTIRUN_SETTINGS, settings
        tokens = shlex.split(command)
        prefix = tokens[: tokens.index("bash")]  # settings given as environment variables
        assert {w.split("=")[0] for w in prefix} <= MULTIRUN_SETTINGS | {"LAB_WEIGHTS_DIR", "MLFLOW_TRACKING_URI"}, prefix
        _check_lab_overrides(["experiment=clustering", *[w for w in words if w not in settings]])


def test_every_page_has_commands_and_the_readme_fits_a_couple_of_screens():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
    studies = {p.stem for p in (ROOT / "docs" / "studies").glob("*.md")}
    folders = {p.name for p in (ROOT / "lab" / "studies").iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert folders <= studies, f"study folders without a docs page: {folders - studies}"
    assert len(ALL) > 50


def test_links_between_pages_resolve():
    bad = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                bad.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not bad, bad


@pytest.mark.parametrize("budget", ["quick", "full"])
def test_every_budget_of_multirun_composes_its_dream_and_similarity_jobs(budget):
    """``BUDGET=full`` (the paper's protocol: hours of dreaming) is never run in the suite; its settings at least compose."""
    text = (ROOT / "multirun.sh").read_text()
    line = re.search(rf"^\s*{budget}\)(.*?);;", text, flags=re.M | re.S).group(1)
    dream = shlex.split(re.search(r"DREAM=\((.*?)\)", line).group(1))
    sim = shlex.split(re.search(r"SIM=\((.*?)\)", line).group(1))
    data = ["dataset=gtzan", "dataset.root=../shared/music/gtzan_mini"]
    assert dream and any(o.startswith("dream.steps=") for o in dream)
    cfg = _check_lab_overrides(["experiment=dream", *dream, *data])
    from lab.stats.genres import GTZAN_ORDER
    from lab.studies.dream.experiment import validate

    todo, settings = validate(cfg, list(GTZAN_ORDER))  # the dream's own checks, run before any model loads
    assert settings.steps == int(next(o for o in dream if o.startswith("dream.steps=")).split("=")[1])
    assert len(todo) == (10 if "genre=all" in dream else 1)
    _check_lab_overrides(["experiment=similarity", *sim, *data])
