"""The results database: claims, records, schema versions and concurrent writers."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zoo_core import results
from zoo_core.config import ModelSpec, RunSpec, TrainConfig
from zoo_core.errors import ZooError
from zoo_core.results import ResultsDB

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class FakeResult:
    """What ``training.TrainResult`` carries, for the database's sake."""

    test_accuracy: float = 0.75
    status: str = "completed"
    params: int = 1234
    best_epoch: int = 1
    wall_time: float = 2.5
    tokens_per_sec: float = 1000.0
    message: str = ""

    @property
    def val(self):
        return {"accuracy": 0.7, "loss": 0.6, "auc": 0.8}

    @property
    def test(self):
        return {"accuracy": self.test_accuracy, "loss": 0.5, "auc": 0.9}

    @property
    def history(self):
        return [{"epoch": 1, "train_loss": 0.69, "val_loss": 0.6}]


def make_run(seed: int = 0, cell: str = "tanh", epochs: int = 1) -> RunSpec:
    return RunSpec(ModelSpec("embedding", cell, "last", "sigmoid1"), train=TrainConfig(epochs=epochs), seed=seed)


@pytest.fixture
def db(tmp_path):
    return ResultsDB(tmp_path / "results.sqlite")


def test_claim_then_finish_stores_everything(db):
    run = make_run(seed=3)
    run_id = db.claim(run)
    assert db.get(run_id).status == "running"
    db.finish(run_id, FakeResult(test_accuracy=0.81), run_dir="/somewhere", data_checksum="abc")

    record = db.get(run_id)
    assert record.status == "finished" and record.train_status == "completed"
    assert record.spec == run and record.key == run.key() and record.seed == 3
    assert record.group_key == results.group_key(make_run(seed=0)) != run.key()
    assert (record.test_accuracy, record.test_loss, record.test_auc) == (0.81, 0.5, 0.9)
    assert (record.val_accuracy, record.val_loss, record.val_auc) == (0.7, 0.6, 0.8)
    assert record.curves == [{"epoch": 1, "train_loss": 0.69, "val_loss": 0.6}]
    assert (record.params, record.wall_time, record.tokens_per_sec, record.epochs_run) == (1234, 2.5, 1000.0, 1)
    assert record.run_dir == "/somewhere" and record.data_checksum == "abc"
    assert record.tf_version and record.project_version and record.host and record.finished_at > record.started_at


def test_nan_metrics_are_stored_as_null(db):
    run_id = db.claim(make_run())
    db.finish(run_id, FakeResult(test_accuracy=float("nan"), status="nan"))
    record = db.get(run_id)
    assert record.test_accuracy is None and record.train_status == "nan"


def test_a_finished_run_is_not_claimed_again_but_an_interrupted_one_is(db):
    first = db.claim(make_run())
    db.finish(first, FakeResult())
    assert db.claim(make_run()) is None
    assert db.claim(make_run(seed=1)) is not None  # another seed is another run

    other = db.claim(make_run(cell="gru"))
    db.mark(other, "interrupted", "Ctrl-C")
    again = db.claim(make_run(cell="gru"))
    assert again not in (None, other)
    assert db.get(other).status == "interrupted"

    db.mark(first, "interrupted", "a late Ctrl-C")  # only a running run can be ended this way
    assert db.get(first).status == "finished" and db.get(first).message == ""
    with pytest.raises(ZooError, match="has no run 'nosuchrun'"):
        db.mark("nosuchrun", "interrupted")


def test_our_own_running_claim_is_live(db):
    run_id = db.claim(make_run())
    assert db.claim(make_run()) is None
    assert db.get(run_id).status == "running"


def _insert_running(db: ResultsDB, run: RunSpec, host: str, pid: int, started_at: str, proc_start: str = "") -> str:
    run_id = results.new_run_id()
    with db._write() as conn:
        conn.execute(
            "INSERT INTO runs (id, key, group_key, seed, label, encoder, cell, aggregator, head, spec_json,"
            " status, host, pid, proc_start, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
            (run_id, run.key(), results.group_key(run), run.seed, run.model.label, run.model.encoder,
             run.model.cell, run.model.aggregator, run.model.head, run.to_json(), host, pid, proc_start, started_at),
        )
    return run_id


def _other_boot(token: str) -> str:
    boot, _, ticks = token.partition(":")
    return f"{'0' * len(boot)}:{ticks}"


# How a `running` row names its process, and whether that process (alive, pid `pid`) is the one that claimed it.
CLAIM_OWNERS = [
    ("its own start token", lambda pid: (results.process_start(pid), results.now()), True),
    ("an earlier process's token (the pid was reused)", lambda pid: (results.process_start(pid).split(":")[0] + ":1",
                                                                      results.now()), False),
    ("a token from another boot", lambda pid: (_other_boot(results.process_start(pid)), results.now()), False),
    ("no token, claimed after the process started", lambda pid: ("", results.now()), True),
    ("no token, claimed before the process started", lambda pid: ("", "2000-01-01T00:00:00+00:00"), False),
]


@pytest.mark.parametrize("name, owner, live", CLAIM_OWNERS, ids=[c[0] for c in CLAIM_OWNERS])
def test_a_claim_whose_pid_was_reused_is_abandoned(db, name, owner, live):
    if not results.process_start(os.getpid()):
        pytest.skip("needs /proc to tell processes apart")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        token, started_at = owner(alive.pid)
        held = _insert_running(db, make_run(), results.provenance()["host"], alive.pid, started_at, token)
        fresh = db.claim(make_run())
        assert (fresh is None) == live
        assert db.get(held).status == ("running" if live else "abandoned")
    finally:
        alive.kill()
        alive.wait()


def test_a_claim_records_the_start_token_of_its_process(db):
    run_id = db.claim(make_run())
    record = db.get(run_id)
    assert record.pid == os.getpid() and record.proc_start == results.process_start(os.getpid())


def test_a_diverged_run_is_recorded_as_such_kept_off_finished_and_not_retrained(db):
    run_id = db.claim(make_run())
    db.finish(run_id, FakeResult(test_accuracy=float("nan"), status="nan", message="NaN loss at epoch 1, step 3"))
    record = db.get(run_id)
    assert (record.status, record.train_status) == ("diverged", "nan")
    assert db.finished() == [] and [r.id for r in db.diverged()] == [run_id]
    assert db.claim(make_run()) is None and db.done_keys() == {make_run().key(): "diverged"}


def test_a_dead_process_claim_is_abandoned_and_reclaimed(db):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        host = results.provenance()["host"]
        stale = _insert_running(db, make_run(), host, dead.pid, results.now())
        live = _insert_running(db, make_run(cell="gru"), host, alive.pid, results.now())

        assert db.claim(make_run(cell="gru")) is None  # someone alive is training it
        fresh = db.claim(make_run())
        assert fresh is not None
        assert db.get(stale).status == "abandoned" and db.get(live).status == "running"
    finally:
        alive.kill()
        alive.wait()


def test_a_claim_from_another_host_expires(db):
    _insert_running(db, make_run(), "elsewhere", 1, results.now())
    assert db.claim(make_run()) is None
    _insert_running(db, make_run(cell="gru"), "elsewhere", 1, "2000-01-01T00:00:00+00:00")
    assert db.claim(make_run(cell="gru")) is not None


def test_finished_keeps_the_latest_of_duplicates(db):
    old = db.record(make_run(), FakeResult(test_accuracy=0.6))
    new = db.record(make_run(), FakeResult(test_accuracy=0.9))
    db.record(make_run(seed=1), FakeResult(test_accuracy=0.7))
    kept = {r.id: r.test_accuracy for r in db.finished()}
    assert new in kept and old not in kept and sorted(kept.values()) == [0.7, 0.9]


def test_get_by_prefix(db):
    a = db.record(make_run(), FakeResult(), run_id="abc123")
    db.record(make_run(seed=1), FakeResult(), run_id="abd456")
    assert db.get("abc").id == a
    with pytest.raises(ZooError, match="ambiguous"):
        db.get("ab")
    with pytest.raises(ZooError, match="unknown run 'zz'"):
        db.get("zz")
    with pytest.raises(ZooError, match="unknown run"):
        db.get("a%")  # LIKE wildcards are literal


def test_wal_mode_and_schema_version(db):
    with sqlite3.connect(db.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.schema_version() == results.SCHEMA_VERSION
    assert db.integrity_check() == "ok"


def test_missing_database_is_an_error_when_not_creating(tmp_path):
    with pytest.raises(ZooError, match="no results yet"):
        ResultsDB(tmp_path / "none.sqlite", create=False)
    assert not (tmp_path / "none.sqlite").exists()


def test_newer_schema_is_refused(db):
    with sqlite3.connect(db.path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (results.SCHEMA_VERSION + 1,))
    with pytest.raises(ZooError, match="newer than this rnn-zoo understands"):
        ResultsDB(db.path)


def test_foreign_database_and_non_database_are_refused(tmp_path):
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(ZooError, match="not an rnn-zoo results database"):
        ResultsDB(foreign)
    text = tmp_path / "notes.txt"
    text.write_text("these are not the results you are looking for\n" * 100)
    with pytest.raises(ZooError, match="not an rnn-zoo results database"):
        ResultsDB(text)


def test_older_schema_is_migrated(db, monkeypatch):
    def add_notes(conn):
        conn.execute("ALTER TABLE runs ADD COLUMN notes TEXT NOT NULL DEFAULT ''")

    kept = db.record(make_run(), FakeResult())
    monkeypatch.setattr(results, "SCHEMA_VERSION", results.SCHEMA_VERSION + 1)
    monkeypatch.setitem(results.MIGRATIONS, results.SCHEMA_VERSION - 1, add_notes)
    migrated = ResultsDB(db.path)
    assert migrated.schema_version() == results.SCHEMA_VERSION
    with sqlite3.connect(db.path) as conn:
        assert conn.execute("SELECT notes FROM runs WHERE id = ?", (kept,)).fetchone() == ("",)


def test_older_schema_without_a_migration_is_refused(db, monkeypatch):
    monkeypatch.setattr(results, "SCHEMA_VERSION", results.SCHEMA_VERSION + 1)
    with pytest.raises(ZooError, match="cannot be migrated"):
        ResultsDB(db.path)


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from tests.test_results import FakeResult, make_run
    from zoo_core.results import ResultsDB

    db = ResultsDB(sys.argv[1])
    worker, count = int(sys.argv[2]), int(sys.argv[3])
    for i in range(count):
        # Shared runs: every worker tries to claim the same (spec, seed)s.
        run_id = db.claim(make_run(seed=i))
        if run_id:
            db.finish(run_id, FakeResult(test_accuracy=i / count))
        # Private runs: each worker records its own.
        db.record(make_run(seed=i, epochs=2 + worker), FakeResult())
""")


def test_concurrent_processes_lose_nothing(tmp_path):
    path = tmp_path / "shared.sqlite"
    ResultsDB(path)
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(Path(__file__).resolve().parent.parent)))
    workers, count = 3, 40
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(w), str(count)]) for w in range(workers)]
    assert [p.wait(timeout=120) for p in procs] == [0] * workers

    db = ResultsDB(path)
    assert db.integrity_check() == "ok"
    everything = db.runs()
    assert len(everything) == count + workers * count
    assert {r.status for r in everything} == {"finished"}
    shared = [r for r in everything if r.spec.train.epochs == 1]
    assert sorted(r.seed for r in shared) == list(range(count))  # each claimed exactly once
    for w in range(workers):
        assert sorted(r.seed for r in everything if r.spec.train.epochs == 2 + w) == list(range(count))


def test_the_runs_table_is_the_declared_run_record(tmp_path):
    """RunRecord's fields declare the columns: a new file's table has each, in order, with its declared type."""
    ResultsDB(tmp_path / "results.sqlite")
    with contextlib.closing(sqlite3.connect(tmp_path / "results.sqlite")) as conn:
        table = [(row[1], row[2], bool(row[3])) for row in conn.execute("PRAGMA table_info(runs)")]
    declared = [(f.name, f.metadata["sql"].split()[0], "NOT NULL" in f.metadata["sql"])
                for f in dataclasses.fields(results.RunRecord)]
    assert table == declared
