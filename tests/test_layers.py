"""Layers point one way: the core never imports the command line, nor click.

The core (every ``zoo_core`` module outside ``zoo_core/cli/``) takes progress
bars and messages as callbacks (:mod:`zoo_core.progress`); the command line
passes terminal ones. Checked on the source with ``ast``, so an import inside
a function counts as much as one at the top.

``zoo_core/api.py`` (the zoo from Python) is a front end like the command line,
yet it is held to the core's rule: it sits beside the CLI, not on top of it, so
a notebook never loads click or the commands; it draws its own bars.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "zoo_core"
FORBIDDEN = ("zoo_core.cli", "click")
# Not core: the `zoo` console script, the layer above the command line. It sits outside zoo_core/cli/ because
# importing anything in that package runs its __init__ (click, the commands) first, and the launcher must hold
# Ctrl-C and SIGTERM before any of that is imported. Nothing imports it but the entry points.
ABOVE_THE_CLI = ("launcher.py",)


def core_modules() -> list[Path]:
    out = []
    for path in sorted(CORE.rglob("*.py")):
        relative = path.relative_to(CORE)
        if relative.parts[0] in ("cli", *ABOVE_THE_CLI):
            continue
        out.append(path)
    return out


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``, relative imports resolved against the package."""
    package = ".".join(("zoo_core",) + path.relative_to(CORE).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from zoo_core import cli` names the package through an attribute.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def test_nothing_in_the_core_imports_the_launcher():
    assert not [p for p in core_modules() for _, m in imported_modules(p) if m.startswith("zoo_core.launcher")]


def test_the_walk_finds_the_core_modules():
    names = {p.relative_to(CORE).as_posix() for p in core_modules()}
    assert {"training.py", "ranking.py", "specs.py", "progress.py", "tables.py", "api.py",
            "data/__init__.py", "data/sources.py", "cells/base.py"} <= names
    assert not any(n.startswith("cli/") for n in names)


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.relative_to(CORE).as_posix())
def test_core_module_imports_neither_the_cli_nor_click(path):
    bad = [f"{path.relative_to(CORE.parent)}:{line}: imports {module}" for line, module in imported_modules(path)
           if any(module == f or module.startswith(f + ".") for f in FORBIDDEN)]
    assert not bad, "\n".join(bad)


def test_every_cli_module_but_the_support_ones_is_the_command_it_is_named_after():
    """Adding a command is adding ``zoo_core/cli/<command>.py``: the package is listed, not a hand-kept tuple."""
    from zoo_core.cli import SUPPORT_MODULES, cli, command_modules

    modules = command_modules()
    assert modules and not set(modules) & SUPPORT_MODULES
    assert set(modules) == set(cli.commands), "each command module defines `zoo <its name>` and nothing else"
