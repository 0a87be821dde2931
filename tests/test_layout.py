"""The house rules, read from the source with ast (every import, also inside functions):

- ``ui/``, ``pages/`` and ``app.py`` reach the engine only through the package root (the facade)
  and the rooms' ``__init__``s, and take only names those export (``__all__``); they never import
  torch;
- the engine never imports streamlit;
- a room imports only rooms on its own floor or below (docs/ARCHITECTURE.md), and no engine
  modules import each other in a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "resque_core"
APP_FILES = sorted([ROOT / "app.py", *(ROOT / "ui").glob("*.py"), *(ROOT / "pages").glob("*.py")])

# Floors, bottom up. The package root (the facade) sits on top of the engine; __main__ is the CLI.
FLOORS = {
    "errors": 0,
    "_util": 0,
    "_version": 0,
    "_typed_json": 0,
    "kinds": 0,
    "limits": 0,
    "jobs": 0,
    "model": 1,
    "data": 1,
    "measure": 1,
    "store": 1,
    "executor": 1,
    "scoring": 2,
    "plans": 3,
    "retrain": 4,
    "cost": 5,
    "ranking": 6,
    "validation": 6,
    "calibrating": 6,
    "report": 7,
    "cli": 7,
    "__main__": 7,
    "": 8,
}


@cache
def engine_modules() -> dict[str, Path]:
    """Dotted name -> file of every engine module (a package under its own name)."""
    out = {}
    for path in sorted(ENGINE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def rooms() -> set[str]:
    return {p.parent.name for p in ENGINE.glob("*/__init__.py")}


def imports(path: Path, module: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, imported module, names taken from it) for every import in ``path``; relative
    imports are resolved against ``module`` (the file's dotted name)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            out.append((node.lineno, target, tuple(a.name for a in node.names)))
    return out


@cache
def exported(module: str) -> frozenset[str]:
    """The ``__all__`` of an engine package's ``__init__``, read from its source."""
    tree = ast.parse(engine_modules()[module].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            try:
                return frozenset(ast.literal_eval(node.value))
            except ValueError:  # computed (the data room's export table): ask the module
                import importlib

                return frozenset(importlib.import_module(module).__all__)
    return frozenset()


def engine_graph() -> dict[str, set[str]]:
    """Module -> engine modules it imports (``from pkg import sub`` counts as importing sub)."""
    mods = engine_modules()
    graph = {}
    for name, path in mods.items():
        edges = set()
        for _, target, names in imports(path, name):
            if target != "resque_core" and not target.startswith("resque_core."):
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in mods]
            edges.update(subs)
            if len(subs) < len(names) or not names:
                edges.add(target)
        graph[name] = edges - {name}
    return graph


def room_of(module: str) -> str:
    """The room of an engine module: its subpackage or root module; "" for the package root."""
    return module.split(".")[1] if "." in module else ""


def app_import_problems(path: Path, *, root: Path = ROOT) -> list[str]:
    """What is wrong with the engine imports of an app file, one line each."""
    problems = []
    for line, target, names in imports(path, f"{path.parent.name}.{path.stem}"):
        where = f"{path.relative_to(root)}:{line}"
        top = target.split(".")[0]
        if top == "torch":
            problems.append(f"{where} imports torch")
        if top != "resque_core":
            continue
        room = target.partition(".")[2]
        if room and (room not in rooms() or "." in room):
            problems.append(f"{where} imports {target}: use resque_core or a room's __init__")
            continue
        public = exported(target)
        for name in names:
            if name not in public and not (target == "resque_core" and name in rooms()):
                problems.append(f"{where} takes {name} from {target}, which does not export it")
    return problems


def test_every_engine_module_is_on_a_floor():
    unplaced = {m for m in engine_modules() if room_of(m) not in FLOORS}
    assert unplaced == set()


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_app_files_use_the_facade_and_the_rooms_only(path):
    assert app_import_problems(path) == []


def test_the_app_rule_catches_a_module_import(tmp_path):
    # The checker itself: a page reaching into a module, or taking an unexported name, fails.
    page = tmp_path / "pages" / "bad.py"
    page.parent.mkdir()
    page.write_text(
        "from resque_core.data.shifts import parse_shift\n"
        "from resque_core.scoring import _integer\n"
        "from resque_core import plans\n"
        "import torch\n"
    )
    problems = [p.split(" ", 1)[1] for p in app_import_problems(page, root=tmp_path)]
    assert problems == [
        "imports resque_core.data.shifts: use resque_core or a room's __init__",
        "takes _integer from resque_core.scoring, which does not export it",
        "takes plans from resque_core, which does not export it",
        "imports torch",
    ]


def test_the_engine_never_imports_streamlit_or_the_app():
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for name, path in engine_modules().items()
        for line, target, _ in imports(path, name)
        if target.split(".")[0] in ("streamlit", "ui", "pages")
    ]
    assert found == []


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a room on a higher floor than the importer's, one line each."""
    upward = []
    for module, targets in sorted(graph.items()):
        room = room_of(module)
        for target in sorted(targets):
            other = room_of(target)
            if other != room and FLOORS[other] > FLOORS[room]:
                upward.append(
                    f"{module} (floor {FLOORS[room]}) imports {target} (floor {FLOORS[other]})"
                )
    return upward


def test_rooms_import_only_their_floor_or_below():
    assert upward_imports(engine_graph()) == []


def test_the_floor_rule_catches_an_upward_import():
    graph = {
        "resque_core.data.images": {"resque_core.scoring.scorer", "resque_core.errors"},
        "resque_core.ranking": {"resque_core.validation"},  # same floor: allowed
        "resque_core.scoring.scorer": {"resque_core"},  # the facade is above every room
    }
    assert upward_imports(graph) == [
        "resque_core.data.images (floor 1) imports resque_core.scoring.scorer (floor 2)",
        "resque_core.scoring.scorer (floor 2) imports resque_core (floor 8)",
    ]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_engine_modules():
    assert cycles(engine_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_package_and_the_cli_parser_import_without_torch():
    code = (
        "import sys, resque_core\n"
        "from resque_core.cli import build_parser\n"
        "build_parser()\n"
        "heavy = sorted({'torch', 'numpy', 'streamlit'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_the_facade_resolves_every_name_it_exports():
    import resque_core

    assert [n for n in resque_core.__all__ if not hasattr(resque_core, n)] == []
    assert set(dir(resque_core)) >= set(resque_core.__all__)


def test_no_engine_file_is_over_600_lines():
    long = {
        name: n
        for name, path in engine_modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}, f"split these by job: {long}"
