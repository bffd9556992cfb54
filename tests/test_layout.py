"""The house rules of ``lab/`` (issue 18), read from the code's own imports so they stay true.

* a unit is ``lab.<package>`` or a top-level module; no two units import each other, directly or
  round a longer circle;
* data flows one way, audio -> embeddings -> study -> tracker: every import goes to a unit on the
  same or a lower layer of :data:`LAYERS`, never to one above it;
* each study folder stands alone: ``lab.studies.<a>`` never imports ``lab.studies.<b>``;
* only ``lab.tracking`` imports MLflow;
* ``lab/`` has at most 12 top-level entries, and every experiment config names code in its study folder.

Imports inside functions count too: a late import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

LAB = ROOT / "lab"

# Lower layers never import higher ones. Same-layer units may not import each other either,
# except where listed in SAME_LAYER (a deliberate, one-way dependency).
LAYERS = {
    "lab.core": 0,
    "lab.datasets": 1, "lab.models": 1, "lab.stats": 1,
    "lab.extract": 2, "lab.tracking": 2,
    "lab.studies": 3,
    "lab.app": 4, "lab.report": 4, "lab.bench": 4,
    "lab.__main__": 5, "lab": 5,  # python -m lab: the entry point, above the app it starts
}
SAME_LAYER: set[tuple[str, str]] = set()


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of the ``lab`` modules ``path`` imports (relative imports resolved)."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from lab import tracking` imports lab.tracking
    return {m for m in out if m == "lab" or m.startswith("lab.")}


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _study(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["lab", "studies"] and len(parts) > 2 else None


def _modules(root: Path = ROOT) -> dict[str, Path]:
    return {_module_name(p, root): p for p in sorted((root / "lab").rglob("*.py"))}


MODULES = _modules()
KNOWN_UNITS = {_unit(m) for m in MODULES}


def _edges(modules: dict[str, Path] = MODULES, root: Path = ROOT) -> set[tuple[str, str, str]]:
    """(importing module, imported unit, imported module) for every import between units."""
    edges = set()
    for mod, path in modules.items():
        for imp in _imports(path, root):
            target = imp  # `from lab.x import name` also yields lab.x.name: walk up to a real module
            while target not in modules and target.count(".") > 1:
                target = target.rsplit(".", 1)[0]
            if _unit(mod) != _unit(target) or target == "lab":
                edges.add((mod, _unit(target), target))
    return edges


def find_circle(edges: set[tuple[str, str, str]]) -> list[str] | None:
    """A circle of units (first unit repeated at the end), or None."""
    graph: dict[str, set[str]] = {}
    for mod, unit, _ in edges:
        if unit != "lab":
            graph.setdefault(_unit(mod), set()).add(unit)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (c := visit(v)):
                return c
        state[u] = 2
        stack.pop()
        return None

    for u in sorted(graph):
        if u not in state and (c := visit(u)):
            return c
    return None


def test_every_unit_has_a_layer():
    assert KNOWN_UNITS <= set(LAYERS), f"units without a layer in LAYERS: {sorted(KNOWN_UNITS - set(LAYERS))}"


def test_no_module_imports_from_a_layer_above_it():
    bad = []
    for mod, unit, target in _edges():
        a, b = LAYERS[_unit(mod)], LAYERS[unit]
        if unit == "lab":
            continue  # the package itself (__version__), imported by nobody that matters
        if b > a or (b == a and (_unit(mod), unit) not in SAME_LAYER):
            bad.append(f"{mod} (layer {a}) imports {target} (layer {b})")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def test_no_import_circle_between_units():
    circle = find_circle(_edges())
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_each_study_folder_stands_alone():
    bad = [f"{mod} imports {imp}" for mod, path in MODULES.items() for imp in _imports(path)
           if _study(mod) and _study(imp) and _study(imp) != _study(mod)]
    assert not bad, "\n".join(bad)


def test_only_tracking_talks_to_mlflow():
    users = []
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "mlflow" or n.startswith("mlflow.") for n in names) and _unit(mod) != "lab.tracking":
                users.append(mod)
    assert not users, f"modules outside lab.tracking importing mlflow: {sorted(set(users))}"


def test_lab_has_at_most_twelve_top_level_entries():
    entries = sorted(p.name for p in LAB.iterdir() if p.name != "__pycache__")
    assert len(entries) <= 12, entries


@pytest.mark.parametrize("conf", sorted((ROOT / "conf" / "experiment").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_experiment_names_code_in_one_study_folder(conf):
    e = yaml.safe_load(conf.read_text())["experiment"]
    targets = [e[k] for k in ("run", "check", "report") if e.get(k)]
    folders = {".".join(t.split(".")[:3]) for t in targets}
    assert len(folders) == 1 and next(iter(folders)).startswith("lab.studies."), targets
    for t in targets:
        module, _, fn = t.rpartition(".")
        assert module in MODULES, f"{conf.name}: {t} names no module"
        assert f"def {fn}(" in MODULES[module].read_text(), f"{conf.name}: {module} has no function {fn}"


def test_the_circle_check_finds_a_planted_circle_of_three(tmp_path):
    """The check is not blind: a -> b -> c -> a through a late import and a relative import is found."""
    (tmp_path / "lab" / "b").mkdir(parents=True)
    (tmp_path / "lab" / "__init__.py").write_text("")
    (tmp_path / "lab" / "a.py").write_text("from lab.b import thing\n")
    (tmp_path / "lab" / "b" / "__init__.py").write_text("from .inner import thing\n")
    (tmp_path / "lab" / "b" / "inner.py").write_text("def thing():\n    from lab import c\n")
    (tmp_path / "lab" / "c.py").write_text("import lab.a\n")
    circle = find_circle(_edges(_modules(tmp_path), tmp_path))
    assert circle is not None and set(circle) == {"lab.a", "lab.b", "lab.c"}
    assert find_circle(_edges(_modules(tmp_path) | {}, tmp_path) - {("lab.c", "lab.a", "lab.a")}) is None


def test_an_old_module_name_says_where_it_went():
    """Renamed commands and modules (issue 18) fail in one sentence that names the new spelling."""
    import importlib
    import subprocess
    import sys

    from lab.core.moved import MOVED

    p = subprocess.run([sys.executable, "-m", "lab.shift_check", "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode != 0 and p.stdout == ""
    (line,) = p.stderr.strip().splitlines()
    assert "run python -m lab.studies.transforms.check (same options)" in line
    with pytest.raises(ModuleNotFoundError, match=r"lab\.embed moved to lab\.extract\.embed"):
        importlib.import_module("lab.embed")
    for old, new in MOVED.items():
        assert old not in MODULES and not (LAB / old.split(".", 1)[1]).is_dir(), f"{old} still exists"
        assert new in MODULES, f"{old} points at {new}, which does not exist"
