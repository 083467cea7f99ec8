"""Keeping every test's caches, results and runs out of the user's home."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

#: What a user (or a test runner) may have set that would point a test at real data, results or plugins, or
#: narrow its tables: a test that wants a width sets COLUMNS itself (pytest-xdist's workers inherit one).
ZOO_VARIABLES = ("ZOO_DATA", "ZOO_RESULTS", "ZOO_RUNS", "ZOO_PLUGINS", "ZOO_REGISTRY", "COLUMNS", "LINES")


def isolate(patch: pytest.MonkeyPatch, home: Path) -> None:
    """Points caches, results and runs into ``home`` and clears the variables in :data:`ZOO_VARIABLES`."""
    patch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    patch.setenv("XDG_DATA_HOME", str(home / "share"))
    for name in ZOO_VARIABLES:
        patch.delenv(name, raising=False)


@contextlib.contextmanager
def home_env(home: Path) -> Iterator[pytest.MonkeyPatch]:
    """``with home_env(home) as env:`` runs its block (a module fixture's training, say) isolated in ``home``."""
    with pytest.MonkeyPatch.context() as patch:
        isolate(patch, home)
        yield patch
