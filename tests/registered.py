"""What the registry-driven tests run over: every registered component, plugins included.

One registry, loaded once per test process from the checkout's
``registry.toml`` and the installed plugins, serves both the collection-time
parametrisation (``@pytest.mark.parametrize("cell", registered("cell"))``) and
the ``registry`` fixture of ``conftest.py``. A newly registered component is
then covered by every test that runs over its kind, without touching a test.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence


@functools.cache
def collection_registry():
    """The registry with every enabled and installed plugin (built once)."""
    from zoo_core.registry import build_registry

    return build_registry()


def registered(kind: str, patterns: str | Sequence[str] = "*") -> list[str]:
    """Sorted names of the registered components (or models) of ``kind`` matching ``patterns``."""
    return collection_registry().list(kind, patterns)


def tiny_params(cls) -> dict:
    """The ``tiny`` value of each hyperparameter ``cls`` declares with one: the sizes the tests build it at."""
    return {p.name: p.tiny for p in cls.hparams if p.tiny is not None}
