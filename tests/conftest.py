"""Shared fixtures: a registry loaded from the checkout, tiny datasets, an isolated environment."""

from __future__ import annotations

import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tests.imdb_fixtures import make_imdb_archive, make_imdb_tree  # noqa: E402
from tests.isolation import home_env, isolate  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def isolated_session_env(tmp_path_factory):
    """A session-wide home for module- and session-scoped fixtures, which run before :func:`isolated_env`.

    Without it, a module fixture that trains (``zoo train`` records its run) wrote into the user's own
    ``~/.local/share/rnn-zoo/results.sqlite`` and failed on whatever another checkout had left there.
    """
    home = tmp_path_factory.mktemp("session-home")
    with home_env(home):
        yield home


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Keeps caches, results and saved runs of every test inside its tmp_path."""
    isolate(monkeypatch, tmp_path)


@pytest.fixture(scope="session")
def registry():
    """The registry with every enabled and installed plugin (the one :func:`tests.registered.registered` lists)."""
    from tests.registered import collection_registry

    return collection_registry()


@pytest.fixture(scope="session")
def tiny_imdb_archive(tmp_path_factory):
    """A small IMDB-layout ``.tar.gz``: 40 train and 40 test reviews."""
    return make_imdb_archive(tmp_path_factory.mktemp("imdb") / "aclImdb_v1.tar.gz", n_per_class=20)


@pytest.fixture(scope="session")
def tiny_imdb_tree(tmp_path_factory):
    """The same layout as an extracted ``aclImdb/`` folder."""
    return make_imdb_tree(tmp_path_factory.mktemp("imdb_tree"), n_per_class=20)


@pytest.fixture
def signals_enabled():
    """SIGINT and SIGTERM at Python's defaults for an in-process test.

    A shell starts background jobs with SIGINT ignored (CI scripts, `cmd &`), and zoo rightly keeps
    an ignored signal ignored; these tests are about what zoo does with a signal it may handle.
    """
    previous = {s: signal.signal(s, h) for s, h in ((signal.SIGINT, signal.default_int_handler),
                                                     (signal.SIGTERM, signal.SIG_DFL))}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)
