"""The pure layer never imports I/O, plotting, Ray or torch (DESIGN.md §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clipasync"
PURE = [
    "types.py",
    "errors.py",
    "transforms.py",
    "timing.py",
    "seeding.py",
    "engine.py",
    "recorder.py",
    "sim.py",
    "theory.py",
    "policies",
    "diagnostics",
]
FORBIDDEN = {"ray", "matplotlib", "torch", "logging", "rich", "typer", "tqdm", "yaml"}


def modules():
    for entry in PURE:
        path = SRC / entry
        yield from (sorted(path.glob("*.py")) if path.is_dir() else [path])


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: p.name)
def test_pure_modules_import_no_io_libraries(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: p.name)
def test_pure_modules_do_not_print_or_read_clocks(path):
    text = path.read_text()
    for bad in (
        "print(",
        "time.time(",
        "perf_counter(",
        "open(" if path.name != "timing.py" else "\0",
    ):
        assert bad not in text, f"{path.name} uses {bad}"
