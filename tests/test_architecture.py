"""The layout is the architecture: rooms import downward only, no cycles, no private names.

docs/architecture.md draws the graph that :data:`ALLOWED` encodes; the checks read every
module's imports with ``ast``, function-level imports included, so a late import cannot
hide an upward dependency or a circle.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "capjax"

ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "plots": set(),
    "data": {"base"},
    "capacitance": {"base"},
    "signals": {"base", "capacitance"},
    "bayes": {"base", "plots"},
    "records": {"base"},
    "training": {"base", "data", "capacitance", "signals", "records"},
    "predictors": {"base", "bayes", "records", "signals"},
    "scoring": {"base", "predictors"},
    "selection": {"base", "bayes", "records"},
    "workflows": {"base", "bayes", "data", "plots", "predictors", "records", "scoring", "selection", "training"},
    "cli": {"base", "predictors", "scoring", "training", "workflows"},
}
"""Room -> the rooms it may import (docs/architecture.md)."""

HEAVY = ("orbax", "matplotlib", "tensorflow_datasets", "sklearn")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(target module, imported names)`` of every capjax import in ``path``, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("capjax")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("capjax"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.append((sub, []) if sub in MODULES else (node.module, [a.name]))
    return out


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_lives_in_a_known_room():
    rooms = {_room(m) for m in MODULES} - {None}
    assert rooms == set(ALLOWED), "a room was added or removed: update ALLOWED and docs/architecture.md"


def test_rooms_import_downward_only():
    bad = []
    for module, path in MODULES.items():
        room = _room(module)
        if room is None:  # the package root re-exports every room
            continue
        for target, _ in _imports(path):
            other = _room(target)
            if other is not None and other != room and other not in ALLOWED[room]:
                bad.append(f"{module} imports {target}")
    assert not bad, bad


def test_no_import_cycles_counting_function_level_imports():
    graph = {m: {t for t, _ in _imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(t):] + [m, t]))
            if t not in state:
                visit(t, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_no_private_name_is_imported_across_modules():
    bad = [
        f"{module} imports {target}.{name}"
        for module, path in MODULES.items()
        for target, names in _imports(path)
        for name in names
        if name.startswith("_") and target != module
    ]
    assert not bad, bad


def test_modules_stay_small():
    # the package root is a list of one concept (the public names), so it may be long
    big = {m: n for m, p in MODULES.items() if m != "capjax" and (n := len(p.read_text().splitlines())) > 500}
    assert not big, big


def test_import_is_light_and_the_registry_whole():
    code = (
        "import sys, capjax; capjax.PREDICTORS['combined']; capjax.beta_eff; "
        f"print(len(capjax.PREDICTORS), [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    n, heavy = out.stdout.strip().split(" ", 1)
    assert int(n) >= 28 and heavy == "[]"


def test_matplotlib_backend_is_left_alone(tmp_path):
    code = (
        "import matplotlib; matplotlib.use('svg'); import capjax; "
        f"capjax.plots.plot_trajectories({{'a': ([1, 2], [3, 4])}}, r'{tmp_path / 'a.png'}'); "
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "svg" and (tmp_path / "a.png").stat().st_size > 1000
