"""The folder tree is the architecture: imports point down the floors only.

Floors (README, Design):

1. vocabulary: ``types``, ``errors``, ``seeding``
2. algorithms: ``transforms``, ``policies``, ``timing``, ``problems``, ``theory``,
   ``diagnostics`` (pure: no clock, no print, no files, no ray/matplotlib)
3. execution: ``engine``, ``recorder``, ``checkpoint``, ``io``, ``sim``, ``runtime``
4. ``experiments``  5. ``reports``  6. ``cli``, ``api``

A module may import clipasync modules of its own floor or below, never above; the
top-level packages form no import circle; an import inside a function names a
clipasync module only when that module needs an optional extra (ray, torch,
matplotlib) at import time, so importing clipasync stays cheap.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "clipasync"

FLOORS: dict[str, int] = {
    "types": 1,
    "errors": 1,
    "seeding": 1,
    "transforms": 2,
    "policies": 2,
    "timing": 2,
    "problems": 2,
    "theory": 2,
    "diagnostics": 2,
    "engine": 3,
    "recorder": 3,
    "checkpoint": 3,
    "state_codec": 3,
    "io": 3,
    "reading": 3,
    "sim": 3,
    "runtime": 3,
    "experiments": 4,
    "reports": 5,
    "cli": 6,
    "api": 6,
}
OPTIONAL_EXTRAS = {"ray", "torch", "matplotlib"}
#: Libraries the pure floors (1–2) never import; torch only inside ``problems``.
IMPURE = {"ray", "matplotlib", "logging", "rich", "typer", "tqdm", "yaml", "pydantic"}
#: Calls the pure floors never make.
IMPURE_CALLS = ("print(", "time.time(", "perf_counter(", "time.monotonic(", "open(")
#: Where a pure module reads a file on purpose: trace replay and the read-only
#: datasets shipped by system or PyPI packages.
READS_FILES = {"timing.py", "problems/datasets"}


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def floor_of(module: str) -> int | None:
    """Floor of ``clipasync.<top>...``; ``None`` for the package facade itself."""
    parts = module.split(".")
    if parts[0] != "clipasync" or len(parts) == 1:
        return None
    return FLOORS.get(parts[1], 0)


def all_modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


@dataclass(frozen=True)
class Import:
    module: str  # the clipasync module named
    line: int
    in_function: bool


def clipasync_imports(source: str, this_module: str) -> Iterator[Import]:
    """Yield every import of a clipasync module in ``source`` (relative ones too)."""
    tree = ast.parse(source)
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    in_function.add(id(sub))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this_module.split(".")[: -node.level]
                names = [".".join([*base, node.module or ""]).rstrip(".")]
            elif node.module:
                names = [node.module]
                if node.module == "clipasync":
                    # ``from clipasync import sim`` names a module; anything else
                    # (``from clipasync import run``) goes through the facade.
                    names = [
                        f"clipasync.{a.name}"
                        if module_path(f"clipasync.{a.name}")
                        else "clipasync"
                        for a in node.names
                    ]
        for name in names:
            if name == "clipasync" or name.startswith("clipasync."):
                yield Import(name, node.lineno, id(node) in in_function)


def is_type_checking_block(source: str, line: int) -> bool:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        ):
            end = node.end_lineno or node.lineno
            if node.lineno <= line <= end:
                return True
    return False


def top_level_libraries(source: str) -> set[str]:
    """Third-party top-level names imported at module level."""
    out: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module.split(".")[0])
    return out


def module_path(module: str) -> Path | None:
    rel = Path(*module.split("."))
    for cand in (SRC / rel.with_suffix(".py"), SRC / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def needs_extra(module: str) -> bool:
    """Whether importing ``module`` (or the module a name lives in) needs an extra."""
    path = module_path(module) or module_path(module.rsplit(".", 1)[0])
    if path is None:
        return False
    return bool(top_level_libraries(path.read_text()) & OPTIONAL_EXTRAS)


def violations(path: Path, source: str | None = None) -> list[str]:
    """Every layering rule this module breaks, as one line each."""
    text = path.read_text() if source is None else source
    me = module_name(path)
    mine = floor_of(me)
    out: list[str] = []
    for imp in clipasync_imports(text, me):
        target = floor_of(imp.module)
        where = f"{path.relative_to(SRC)}:{imp.line}"
        if target is None:
            if mine is not None:
                out.append(f"{where} imports the clipasync facade; name the module")
            continue
        if target == 0:
            out.append(f"{where} imports {imp.module}, which has no floor")
        elif mine is not None and target > mine:
            out.append(f"{where} (floor {mine}) imports {imp.module} (floor {target})")
        if (
            imp.in_function
            and not is_type_checking_block(text, imp.line)
            and not needs_extra(imp.module)
        ):
            out.append(f"{where} imports {imp.module} inside a function")
    return out


@pytest.mark.parametrize("path", all_modules(), ids=lambda p: module_name(p))
def test_module_sits_on_a_floor_and_imports_only_down(path: Path) -> None:
    assert floor_of(module_name(path)) != 0, f"{path} is on no floor"
    assert violations(path) == []


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in all_modules():
        me = module_name(path).split(".")
        if len(me) < 2:
            continue
        for imp in clipasync_imports(path.read_text(), module_name(path)):
            parts = imp.module.split(".")
            if len(parts) > 1 and parts[1] != me[1]:
                graph.setdefault(me[1], set()).add(parts[1])
    return graph


def test_top_level_packages_form_no_circle() -> None:
    graph = _package_graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join([*trail, node, nxt]))
            if state.get(nxt) is None:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def _pure(path: Path) -> bool:
    return floor_of(module_name(path)) in (1, 2)


def _reads_files(path: Path) -> bool:
    rel = path.relative_to(PKG).as_posix()
    return any(rel == r or rel.startswith(r + "/") for r in READS_FILES)


@pytest.mark.parametrize(
    "path", [p for p in all_modules() if _pure(p)], ids=lambda p: module_name(p)
)
def test_pure_floors_import_no_io_libraries_and_make_no_io_calls(path: Path) -> None:
    text = path.read_text()
    libs = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            libs |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            libs.add(node.module.split(".")[0])
    banned = IMPURE | (
        {"torch"} if not module_name(path).startswith("clipasync.problems") else set()
    )
    assert not libs & banned, f"{path.name} imports {sorted(libs & banned)}"
    for call in IMPURE_CALLS:
        if call == "open(" and _reads_files(path):
            continue
        assert call not in text, f"{path.name} calls {call}"


# -- the checker itself can fail -------------------------------------------------


def test_a_planted_upward_import_is_caught() -> None:
    planted = PKG / "policies" / "planted.py"
    source = "from clipasync.experiments.runner import expand\n"
    assert violations(planted, source) == [
        "clipasync/policies/planted.py:1 (floor 2) imports "
        "clipasync.experiments.runner (floor 4)"
    ]


def test_a_planted_in_function_import_is_caught() -> None:
    planted = PKG / "reports" / "planted.py"
    source = "def f():\n    from clipasync.experiments.runner import expand\n"
    assert violations(planted, source) == [
        "clipasync/reports/planted.py:2 imports clipasync.experiments.runner "
        "inside a function"
    ]
    lazy_extra = (
        "def f():\n    from clipasync.problems.torch_adaptor import TorchProblem\n"
    )
    assert violations(planted, lazy_extra) == []


def test_a_planted_facade_import_is_caught() -> None:
    planted = PKG / "sim" / "planted.py"
    assert violations(planted, "from clipasync import run\n") == [
        "clipasync/sim/planted.py:1 imports the clipasync facade; name the module"
    ]
