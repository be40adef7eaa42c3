"""The package's layout: data flows forward, no import cycles, modules of one job and a readable size."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "custseg"
MAX_LINES = 600


def module_name(path: Path) -> str:
    """``stages/read.py`` is ``stages.read``; a package's ``__init__.py`` is the package."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """The custseg modules a module imports, at its top or inside functions (``stages.read``, ``record``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("custseg"):
            base = node.module.removeprefix("custseg").removeprefix(".")
            for alias in node.names:
                # `from custseg.stages import read` imports the module stages.read; `import Store` a name.
                candidate = f"{base}.{alias.name}" if base else alias.name
                found.add(candidate if candidate in MODULES else base)
        elif isinstance(node, ast.Import):
            found |= {alias.name.removeprefix("custseg.") for alias in node.names if alias.name.startswith("custseg.")}
    return found - {module_name(path), ""}


def test_no_import_cycles_even_inside_functions():
    graph = {name: imported_modules(path) for name, path in MODULES.items()}
    assert set().union(*graph.values()) <= set(MODULES)
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
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


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
