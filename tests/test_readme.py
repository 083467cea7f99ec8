"""The README shows what ships: its example plugin is the tested one, verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "plugins" / "zoo-example-plugin"


def readme_block(first_line: str) -> str:
    """The body of the README's fenced code block whose first line is ``first_line`` (that line left out)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```\w*\n" + re.escape(first_line) + r"\n(.*?)```", readme, re.S)
    assert match, f"no README code block starting with {first_line!r}"
    return match.group(1)


@pytest.mark.parametrize("first_line, path", [
    ("# pyproject.toml", PLUGIN / "pyproject.toml"),
    ("# zoo_example_plugin/__init__.py", PLUGIN / "zoo_example_plugin" / "__init__.py"),
], ids=["pyproject.toml", "__init__.py"])
def test_the_readme_example_plugin_is_the_shipped_one(first_line, path):
    assert readme_block(first_line) == path.read_text(encoding="utf-8")
