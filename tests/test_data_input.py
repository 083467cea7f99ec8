"""Data and text input as a hostile user feeds it: bad sources, nonsense labels, Unicode, files, empty text.

Every bad source is one ``ZooError`` (one line, exit status 2 from the CLI)
with nothing left in the cache; text is normalised and tokenised the same way
in training and prediction; one input line is one review.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import zoo
from tests.imdb_fixtures import write_imdb_tree
from zoo_core import data
from zoo_core.config import DataConfig, ModelSpec, RunSpec
from zoo_core.errors import ZooError
from zoo_core.results import ResultsDB
from zoo_core.settings import load_settings

CHECKOUT = Path(__file__).resolve().parents[1]


def settings_for(tmp_path: Path, search_path=()):
    return dataclasses.replace(load_settings(), cache_dir=tmp_path / "cache", search_path=tuple(search_path))


def load(source, tmp_path, **config):
    return data.load_dataset(DataConfig(source=str(source), **config), settings_for(tmp_path), progress=False)


def cache_files(folder: Path) -> list[str]:
    """What a cache folder holds besides the checksum memo (prepared data, partial files)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "checksums.json") if folder.is_dir() else []


def built(tmp_path: Path, build) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    return build(folder)


# -- missing data ------------------------------------------------------------------------------------
def registry_without_data(tmp_path: Path) -> Path:
    """The checkout's registry.toml with a search path that finds nothing."""
    text = (CHECKOUT / "registry.toml").read_text(encoding="utf-8")
    text = re.sub(r"search_path = \[[^\]]*\]", 'search_path = ["nowhere/aclImdb_v1.tar.gz"]', text)
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [
    ["train", "elman-last", "--epochs", "1"],
    ["rank", "elman-last", "--epochs", "1"],
    ["data", "stats"],
    ["data", "info"],
])
def test_missing_data_is_found_before_any_run_and_suggests_what_exists(tmp_path, command):
    registry_file = registry_without_data(tmp_path)
    db = tmp_path / "results.sqlite"
    extra = ["--results", db] if command[0] == "rank" else []
    result = zoo("--registry", registry_file, *command, *extra, expect=2)
    assert result.output.count("\n") == 1 and result.output.startswith("Error: no IMDB data found")
    assert "`zoo data download`" in result.output and "--download" not in result.output
    if db.exists():
        assert ResultsDB(db).runs() == []


def test_rank_with_a_missing_data_path_leaves_no_failed_run(tmp_path):
    db = tmp_path / "results.sqlite"
    result = zoo("rank", "elman-last", "--epochs", "1", "--data", tmp_path / "gone.tar.gz", "--results", db, expect=2)
    assert result.output.count("\n") == 1 and "gone.tar.gz" in result.output
    assert not db.exists() or ResultsDB(db).runs() == []
