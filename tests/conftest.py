"""Shared fixtures: a registry loaded from the checkout, tiny datasets, an isolated environment."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tests.imdb_fixtures import make_imdb_archive, make_imdb_tree  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Keeps caches, results and saved runs of every test inside its tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.delenv("ZOO_DATA", raising=False)
    monkeypatch.delenv("ZOO_RESULTS", raising=False)
    monkeypatch.delenv("ZOO_RUNS", raising=False)
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_REGISTRY", raising=False)


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
