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

from tests.bad_sources import BAD_SOURCES, npz, ragged
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


# -- bad sources -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, build, message", BAD_SOURCES, ids=[row[0] for row in BAD_SOURCES])
def test_a_bad_source_is_one_zoo_error_and_caches_nothing(tmp_path, name, build, message):
    source = built(tmp_path, build)
    with pytest.raises(ZooError) as err:
        load(source, tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert cache_files(tmp_path / "cache") == []


CLI_ROWS = ["review id beyond int range (archive)", "npz labels are strings", "npz header claims 10^12 ints",
            "word index is malformed JSON", "only positive reviews"]


@pytest.mark.parametrize("name", CLI_ROWS)
def test_a_bad_source_is_one_line_and_exit_2_from_a_real_zoo_process(tmp_path, name):
    _, build, message = next(row for row in BAD_SOURCES if row[0] == name)
    source = built(tmp_path, build)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "zoo_core.cli", "data", "info", "--data", str(source)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    *progress, last = done.stderr.splitlines()
    assert last.startswith("Error: ") and message in last and done.stdout == ""
    assert all(line.startswith("tokenising ") for line in progress)  # the progress bar's label, nothing else
    assert cache_files(tmp_path / "cache" / "rnn-zoo") == []


# Odd but meaningful sources load, with the meaning they have (and a bounded word table).
@pytest.mark.parametrize("name, build, unknown", [
    ("float labels that are exactly 0.0 and 1.0", npz(y_train=np.array([1.0, 0.0, 1.0, 0.0])), 0),
    ("bool labels", npz(y_train=np.array([True, False, True, False])), 0),
    ("a word rank beyond any vocabulary", npz(x_train=ragged([[10**12, 1], [3, 1, 4], [2, 2], [5]])), 1),
])
def test_odd_but_meaningful_npz_sources_load(tmp_path, name, build, unknown):
    ds = load(built(tmp_path, build), tmp_path, val_fraction=0.0, split="random")
    assert sorted(ds.train.labels.tolist()) == [0, 0, 1, 1]
    assert int(np.sum(ds.train.ids == data.UNK)) == unknown
    assert len(ds.vocab) <= ds.config.num_words


def test_a_training_split_of_one_class_after_limit_is_refused(tmp_path):
    tree = write_imdb_tree(tmp_path, {"train/pos": ["good", "fine"], "train/neg": ["bad", "dull"],
                                      "test/pos": ["good"], "test/neg": ["bad"]})
    with pytest.raises(ZooError, match=r"training split holds only (positive|negative) reviews \(1 in all\)"):
        load(tree, tmp_path, limit=1, val_fraction=0.0)


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
