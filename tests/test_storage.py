"""Storage under abuse: damaged results databases, damaged saved runs, bad --save/--results places.

Every case works on real files (real SQLite databases, a really trained and
saved run) damaged as in tests/storage_cases.py. Bad input must give one
``Error:`` line naming the file, exit status 2, and lose nothing of the user's.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cli_helpers import TINY_RANK
from tests.storage_cases import database_cases, rechecksum, saved_run_cases, table_columns
from tests.test_results import FakeResult, make_run
from zoo_core.cli import cli
from zoo_core.errors import ZooError
from zoo_core.results import ResultsDB

REPO = Path(__file__).resolve().parent.parent
# Root may write anything; without these capabilities it is held to the file modes like anyone else.
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
needs_unprivileged = pytest.mark.skipif(bool(UNPRIVILEGED) and not shutil.which("setpriv"),
                                        reason="root without setpriv cannot be held to file modes")


def zoo(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def assert_one_error_line(result, *expected: str) -> str:
    """Exit 2, no traceback, and a last (only error) line ``Error: ...`` holding each of ``expected``."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{result.output}")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and sum(line.startswith("Error:") for line in lines) == 1, (
        result.output)
    assert "Traceback" not in result.output
    for text in expected:
        assert str(text) in lines[-1], lines[-1]
    return lines[-1]


def zoo_unprivileged(*args, env=None):
    """``zoo ARGS`` as a real process held to file modes (root included): ``CompletedProcess``."""
    command = UNPRIVILEGED + [sys.executable, "-m", "zoo_core.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, **(env or {})})


# -- a damaged results database ---------------------------------------------------------------
def _schema_columns() -> list[tuple[str, str]]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return table_columns(ResultsDB(Path(folder) / "results.sqlite").path)


DATABASE_CASES = database_cases(_schema_columns())


@pytest.fixture(scope="module")
def good_db(tmp_path_factory) -> Path:
    """A results file with finished runs of two specs and one interrupted run."""
    db = ResultsDB(tmp_path_factory.mktemp("good-db") / "results.sqlite")
    for seed in range(2):
        db.record(make_run(seed=seed), FakeResult(test_accuracy=0.7 + seed / 10))
        db.record(make_run(seed=seed, cell="gru"), FakeResult(test_accuracy=0.8))
    db.mark(db.claim(make_run(cell="lstm")), "interrupted", "Ctrl-C")
    return db.path


def test_the_good_database_reads(good_db):
    assert zoo("runs", "--results", good_db).exit_code == 0
    assert zoo("leaderboard", "--results", good_db).exit_code == 0


@pytest.mark.parametrize("name, tamper", DATABASE_CASES, ids=[c[0] for c in DATABASE_CASES])
def test_a_damaged_database_is_one_line_naming_it(name, tamper, good_db, tmp_path):
    path = tmp_path / "results.sqlite"
    shutil.copy(good_db, path)
    tamper(path)
    for command in ("runs", "leaderboard"):
        assert_one_error_line(zoo(command, "--results", path), path)
    with pytest.raises(ZooError) as caught:
        ResultsDB(path).done_keys()  # what `zoo rank` does first
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_new_database_appears_whole_so_an_empty_file_is_never_taken_for_one(tmp_path):
    path = tmp_path / "results.sqlite"
    ResultsDB(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite"] and path.stat().st_size > 0
    path.write_bytes(b"")  # emptied by a full disk, a bad copy, `> results.sqlite` ...
    with pytest.raises(ZooError, match="is an empty file, not an rnn-zoo results database; delete it"):
        ResultsDB(path)
    assert path.stat().st_size == 0  # left as it was


def _v1_database(path: Path) -> None:
    """A schema-1 file as rnn-zoo wrote it before ``proc_start`` and ``diverged``: one good run, one NaN."""
    from zoo_core import results

    db = ResultsDB(path)
    good = db.record(make_run(seed=0), FakeResult())
    nan = db.record(make_run(seed=1), FakeResult(status="nan"))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET status = 'finished' WHERE id = ?", (nan,))
    conn.execute("ALTER TABLE runs DROP COLUMN proc_start")
    conn.execute("ALTER TABLE runs DROP COLUMN pruned_at")
    conn.execute("ALTER TABLE runs DROP COLUMN members_json")
    conn.execute("DELETE FROM schema_version")
    conn.execute("INSERT INTO schema_version VALUES (1, ?)", (results.now(),))
    conn.commit()
    conn.close()
    return good, nan


def test_a_schema_1_file_reads_as_it_is_and_migrates_on_write(tmp_path):
    from zoo_core import results

    path = tmp_path / "v1.sqlite"
    good, nan = _v1_database(path)
    reader = ResultsDB(path, readonly=True)
    assert reader.schema_version() == 1  # a reader changes nothing
    assert [r.id for r in reader.finished()] == [good] and [r.id for r in reader.diverged()] == [nan]

    writer = ResultsDB(path)
    assert writer.schema_version() == results.SCHEMA_VERSION
    assert {r.id: r.status for r in writer.runs()} == {good: "finished", nan: "diverged"}
    assert writer.claim(make_run(seed=1)) is None  # a diverged run is not trained again


def test_a_schema_2_file_reads_as_it_is_and_migrates_on_write(tmp_path):
    # Schema 3 added pruned_at (`zoo runs --prune`): a file from before has none, and no run of it was pruned.
    from zoo_core import results

    path = tmp_path / "v2.sqlite"
    db = ResultsDB(path)
    kept = db.record(make_run(seed=0), FakeResult())
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE runs DROP COLUMN pruned_at")
    conn.execute("ALTER TABLE runs DROP COLUMN members_json")
    conn.execute("DELETE FROM schema_version")
    conn.execute("INSERT INTO schema_version VALUES (2, ?)", (results.now(),))
    conn.commit()
    conn.close()
    reader = ResultsDB(path, readonly=True)
    assert reader.schema_version() == 2 and [r.pruned_at for r in reader.runs()] == [None]
    writer = ResultsDB(path)
    assert writer.schema_version() == results.SCHEMA_VERSION
    writer.mark_pruned(kept)
    assert writer.get(kept).pruned_at is not None and writer.get(kept).status == "finished"


# -- a results database that cannot be written ---------------------------------------------
@pytest.fixture
def read_only_db(good_db, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    shutil.copy(good_db, folder / "results.sqlite")
    os.chmod(folder / "results.sqlite", 0o444)
    os.chmod(folder, 0o555)
    yield folder / "results.sqlite"
    os.chmod(folder, 0o755)


@needs_unprivileged
def test_reads_work_on_a_read_only_database_and_leave_nothing_behind(read_only_db):
    for command in ("runs", "leaderboard"):
        done = zoo_unprivileged(command, "--results", read_only_db, "--format", "csv")
        assert done.returncode == 0 and "gru" in done.stdout, done.stderr
    assert sorted(p.name for p in read_only_db.parent.iterdir()) == ["results.sqlite"]


@needs_unprivileged
def test_rank_into_a_read_only_database_stops_before_training(read_only_db, tiny_imdb_archive):
    done = zoo_unprivileged("rank", "elman-last", *TINY_RANK, "--data", tiny_imdb_archive,
                            "--results", read_only_db)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert str(read_only_db) in lines[0] and "not writable" in lines[0]


# -- bad places for results ---------------------------------------------------------------------
def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file.txt"
    path.write_text("mine\n")
    return path


RESULTS_PLACES = [  # (name, path from tmp_path, what the line says)
    ("empty", lambda tmp: "", "--results needs a file path"),
    ("blank", lambda tmp: "  ", "--results needs a file path"),
    ("under /proc", lambda tmp: "/proc/zoo/results.sqlite", "/proc/zoo"),
    ("in /proc", lambda tmp: "/proc/results.sqlite", "/proc/results.sqlite"),
    ("under a file", lambda tmp: _a_file(tmp) / "results.sqlite", "a-file.txt"),
    ("a folder", lambda tmp: tmp, "is a folder"),
]


@pytest.mark.parametrize("name, place, expected", RESULTS_PLACES, ids=[c[0] for c in RESULTS_PLACES])
@pytest.mark.parametrize("command", [["rank", "elman-last", *TINY_RANK], ["runs"], ["leaderboard"],
                                     ["predict", "best", "fun"]], ids=lambda c: c[0])
def test_a_bad_results_place_is_one_line_before_any_work(name, place, expected, command, tmp_path,
                                                         tiny_imdb_archive):
    data = ["--data", tiny_imdb_archive] if command[0] == "rank" else []
    result = zoo(*command, *data, "--results", place(tmp_path))
    assert_one_error_line(result, expected)
    assert "training" not in result.output
    assert not (tmp_path / "share").exists()  # no run was saved


def test_rank_refuses_a_runs_folder_it_cannot_create_before_training(tmp_path, tiny_imdb_archive):
    a_file = _a_file(tmp_path)
    result = zoo("rank", "elman-last", *TINY_RANK, "--data", tiny_imdb_archive, "--results",
                 tmp_path / "results.sqlite", "--runs", a_file / "runs")
    assert_one_error_line(result, "runs folder", "a-file.txt")
    assert ResultsDB(tmp_path / "results.sqlite").runs() == []  # nothing claimed, nothing left running


# -- where --save may write ---------------------------------------------------------------------
TRAIN = ["train", "elman-last", "--limit", "40", "--epochs", "1", "--maxlen", "20", "--set", "cell.units=4",
         "--set", "encoder.dim=4", "-q"]


def _users_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "thesis"
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.txt").write_text("three years of work\n")
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return folder


SAVE_PLACES = [  # (name, make the --save argument in tmp_path, what the line says)
    ("empty", lambda tmp: "", "--save needs a folder name"),
    ("blank", lambda tmp: "   ", "--save needs a folder name"),
    ("a folder of the user's files", _users_folder, "not empty"),
    ("the same with a trailing slash", lambda tmp: f"{_users_folder(tmp)}/", "not empty"),
    ("a file", _a_file, "is a file"),
    ("under a file", lambda tmp: _a_file(tmp) / "run", "a-file.txt is a file"),
    ("under /proc", lambda tmp: "/proc/zoo-run", "/proc"),
    ("/proc itself", lambda tmp: "/proc", "not empty"),
]


@pytest.mark.parametrize("name, place, expected", SAVE_PLACES, ids=[c[0] for c in SAVE_PLACES])
def test_a_bad_save_place_is_refused_before_training_and_nothing_is_lost(name, place, expected, tmp_path,
                                                                         tiny_imdb_archive):
    target = place(tmp_path)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    result = zoo(*TRAIN, "--data", tiny_imdb_archive, "--save", target)
    assert_one_error_line(result, expected)
    assert "epoch" not in result.output  # refused before training
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_save_dot_in_a_folder_of_the_users_files_is_refused(tmp_path, tiny_imdb_archive, monkeypatch):
    folder = _users_folder(tmp_path)
    monkeypatch.chdir(folder)
    assert_one_error_line(zoo(*TRAIN, "--data", tiny_imdb_archive, "--save", "."), "not empty")
    assert (folder / "thesis.txt").is_file() and (folder / "sub" / "data.csv").is_file()


@needs_unprivileged
def test_save_into_a_read_only_folder_is_refused_before_training(tmp_path, tiny_imdb_archive):
    folder = tmp_path / "read-only"
    folder.mkdir()
    os.chmod(folder, 0o555)
    try:
        done = zoo_unprivileged(*TRAIN, "--data", tiny_imdb_archive, "--save", folder / "run")
    finally:
        os.chmod(folder, 0o755)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and lines[-1].startswith("Error: ") and "epoch" not in done.stderr, done.stderr
    assert str(folder) in lines[-1] and "Permission denied" in lines[-1]


def test_overwrite_needs_save(tiny_imdb_archive):
    assert_one_error_line(zoo(*TRAIN, "--data", tiny_imdb_archive, "--overwrite"), "--overwrite goes with --save")


# -- a saved run, and saved runs damaged -----------------------------------------------------------
@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, tiny_imdb_archive) -> Path:
    """A tiny run trained once and saved with ``zoo train --save`` into an empty folder."""
    home = tmp_path_factory.mktemp("saved")
    (home / "run").mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(home / "cache"))
        result = zoo(*TRAIN, "--data", tiny_imdb_archive, "--save", home / "run")
    assert result.exit_code == 0, result.output
    return home / "run"


def test_a_saved_run_records_checksums_of_its_files(saved_run):
    from zoo_core.runs import sha256_of

    meta = json.loads((saved_run / "run.json").read_text())
    names = {"vocab.json"} | {f"weights/{p.name}" for p in (saved_run / "weights").iterdir()}
    assert set(meta["checksums"]) == names
    assert all(meta["checksums"][name] == sha256_of(saved_run / name) for name in names)


def test_a_run_saved_before_checksums_still_loads(saved_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(saved_run, old)
    meta = json.loads((old / "run.json").read_text())
    del meta["checksums"]
    (old / "run.json").write_text(json.dumps(meta))
    by_new = json.loads(zoo("predict", saved_run, "fun film", "--format", "json").stdout)
    by_old = json.loads(zoo("predict", old, "fun film", "--format", "json").stdout)
    assert by_old == by_new


def test_overwrite_replaces_only_the_runs_own_files(saved_run, tmp_path, tiny_imdb_archive):
    folder = tmp_path / "run"
    shutil.copytree(saved_run, folder)
    (folder / "notes.txt").write_text("my notes\n")
    before = json.loads((folder / "run.json").read_text())

    result = zoo(*TRAIN, "--data", tiny_imdb_archive, "--save", folder)
    assert_one_error_line(result, "already holds a saved run", "--overwrite")
    assert json.loads((folder / "run.json").read_text()) == before

    result = zoo(*TRAIN, "--data", tiny_imdb_archive, "--save", folder, "--overwrite", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "run.json", "vocab.json", "weights"]
    assert json.loads((folder / "run.json").read_text())["run"]["seed"] == 7
    assert zoo("predict", folder, "fun").exit_code == 0  # its checksums fit its new files


SAVED_RUN_CASES = saved_run_cases()


@pytest.mark.parametrize("name, tamper", SAVED_RUN_CASES, ids=[c[0] for c in SAVED_RUN_CASES])
def test_a_damaged_saved_run_is_one_line_naming_it(name, tamper, saved_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(saved_run, folder)
    tamper(folder)
    assert_one_error_line(zoo("predict", folder, "fun", "--format", "json"), folder)


def test_a_changed_vocabulary_is_caught_by_its_checksum_naming_the_file(saved_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(saved_run, folder)
    payload = json.loads((folder / "vocab.json").read_text())
    payload["words"] = payload["words"][:3] + payload["words"][3:][::-1]  # same words, shuffled
    (folder / "vocab.json").write_text(json.dumps(payload))
    assert_one_error_line(zoo("predict", folder, "fun"), folder / "vocab.json", "checksum")
    rechecksum(folder)  # a consistent folder: nothing to tell a shuffled vocabulary by
    assert zoo("predict", folder, "fun").exit_code == 0


# -- runs a rank could not do -------------------------------------------------------------------
def test_a_rank_that_ends_with_a_run_held_elsewhere_says_so_and_exits_1(registry, tmp_path, tiny_imdb_archive):
    from tests.test_results import _insert_running
    from zoo_core import ranking, results

    path = tmp_path / "results.sqlite"
    args = ["rank", "elman-last", "--seeds", "2", *TINY_RANK, "--data", tiny_imdb_archive, "--results", path]
    flags = {"limit": 40, "epochs": 1, "maxlen": 20, "source": str(tiny_imdb_archive)}
    held = ranking.plan_runs(registry, ["elman-last"], None, [1], ["cell.units=4", "encoder.dim=4"], flags)[0]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _insert_running(ResultsDB(path), held, results.provenance()["host"], other.pid, results.now(),
                        results.process_start(other.pid))
        result = zoo(*args, env={"XDG_DATA_HOME": str(tmp_path / "share")})
    finally:
        other.kill()
        other.wait()
    assert result.exit_code == 1, result.output
    assert "1 trained, 1 skipped" in result.stderr
    assert f"elman-last seed 1: still running in process {other.pid}" in result.stderr


def test_a_diverged_run_is_named_at_the_end_of_a_rank_and_kept_off_the_leaderboard(registry, tiny_imdb_archive,
                                                                                   tmp_path, monkeypatch):
    import dataclasses

    from zoo_core import ranking
    from zoo_core.training import train

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    flags = {"limit": 40, "epochs": 1, "maxlen": 20, "source": str(tiny_imdb_archive)}
    runs = ranking.plan_runs(registry, ["elman-last"], None, range(2), ["cell.units=4", "encoder.dim=4"], flags)
    db = ResultsDB(tmp_path / "results.sqlite")

    def seed_1_diverges(run, *args, **kwargs):
        if run.seed == 1:  # an lr no flag accepts, to make the loss overflow for sure
            run = dataclasses.replace(run, train=dataclasses.replace(run.train, lr=1e30, optimizer="sgd",
                                                                     clip_norm=0.0, batch_size=8))
        return train(run, *args, **kwargs)

    from zoo_core.registry import build_registry

    outcome = ranking.rank(runs, build_registry(), db, echo=lambda line: None,
                           train=seed_1_diverges)
    assert len(outcome.trained) == 2 and not outcome.failed
    assert len(outcome.missing) == 1 and outcome.missing[0].startswith("elman-last seed 1: diverged")
    assert sorted(r.status for r in db.runs()) == ["diverged", "finished"]

    board = zoo("leaderboard", "--format", "json", "--results", db.path)
    assert board.exit_code == 0 and json.loads(board.stdout)[0]["seeds"] == 1
    assert "1 diverged run(s)" in board.stderr
    assert "diverged" in zoo("runs", "--status", "diverged", "--results", db.path).stdout
    diverged = db.diverged()[0]
    assert_one_error_line(zoo("predict", diverged.id, "fun", "--results", db.path), "diverged", diverged.run_dir)


def test_a_bare_word_is_a_run_name_even_where_a_folder_has_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "best").mkdir()
    assert_one_error_line(zoo("predict", "best", "fun", "--results", tmp_path / "none.sqlite"), "no results yet")
    assert_one_error_line(zoo("predict", "./best", "fun"), "run.json is missing")
