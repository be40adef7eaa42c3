"""The package's layout: data flows forward, no import cycles, modules of one job and a readable size."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "custseg"
MAX_LINES = 500
LONGER = {
    # The whole command line in one place: one function per command, each a library call plus presentation.
    "cli.py",
    # The report draws every stage's tables; its sections are one function each.
    "report.py",
    # The candidate segmentations, their search and the final fit are one estimator.
    "cluster.py",
    # The simulated shop: planted segments, products and behaviour, written in chunks.
    "simulate.py",
    # Every stage's wrapper (store its tables, summarise it for run.json), about 50 lines each.
    "stages.py",
    # The early prediction: first-order features, two classifiers, the temporal hold-out, batch prediction.
    "early.py",
}


def imported_modules(path: Path) -> set[str]:
    """The custseg modules a module imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("custseg"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found |= {alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists()}
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("custseg.")}
    return found - {path.stem}


def test_no_import_cycles_even_inside_functions():
    graph = {path.stem: imported_modules(path) for path in PACKAGE.glob("*.py")}
    cycles = []
    for start in graph:
        # Depth-first from each module: a path back to it is a cycle.
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, route = stack.pop()
            for imported in graph.get(module, ()):
                if imported == start:
                    cycles.append(" -> ".join([*route, start]))
                elif imported not in seen:
                    seen.add(imported)
                    stack.append((imported, [*route, imported]))
    assert not cycles


def test_modules_are_of_a_readable_size():
    sizes = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES and name not in LONGER} == {}


def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from custseg.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "print(sorted(m for m in ('sklearn', 'plotly', 'ibis', 'duckdb', 'pandas', 'openTSNE', 'fastapi') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
