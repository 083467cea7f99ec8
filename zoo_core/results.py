"""The results database: every run, its spec, metrics, curves and provenance, in SQLite.

One file holds every run ``zoo rank`` (or anything else) has recorded. It is
safe for several processes at once:

* WAL journal mode, so readers never block the writer and a crash mid-write
  never leaves a half-written row;
* a busy timeout, so a writer waits for another writer instead of failing;
* one ``BEGIN IMMEDIATE`` transaction per write, so a read-then-write (a
  claim) is atomic across processes.

A run moves ``running`` -> ``finished`` (or ``interrupted`` / ``failed`` /
``abandoned``). :meth:`ResultsDB.claim` atomically starts a run unless the
same (spec, seed) already finished or is being trained by a live process, so
two ``zoo rank`` processes never train the same run twice and a rerun after a
crash redoes only the unfinished one.

The schema is versioned in the ``schema_version`` table; an older database is
migrated in place, a newer or foreign one is refused with one clear line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import importlib.metadata
import json
import math
import os
import socket
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo_core.config import RunSpec
from zoo_core.errors import ZooError

SCHEMA_VERSION = 1
RUNNING, FINISHED, INTERRUPTED, FAILED, ABANDONED = "running", "finished", "interrupted", "failed", "abandoned"
STATUSES = (RUNNING, FINISHED, INTERRUPTED, FAILED, ABANDONED)
METRICS = ("accuracy", "loss", "auc")
# A claim by a process on another host cannot be checked; after this long it is presumed dead.
FOREIGN_CLAIM_TTL = dt.timedelta(hours=48)
# Run ids this process claimed and has not ended: tells our own live claims from a dead
# process's whose pid we happen to reuse.
_HELD_CLAIMS: set[str] = set()

_SCHEMA_V1 = """
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    key             TEXT NOT NULL,     -- RunSpec.key(): model + data + train + seed
    group_key       TEXT NOT NULL,     -- the same without the seed: runs averaged together
    seed            INTEGER NOT NULL,
    label           TEXT NOT NULL,     -- the model's name, or its combination
    encoder         TEXT NOT NULL,
    cell            TEXT NOT NULL,
    aggregator      TEXT NOT NULL,
    head            TEXT NOT NULL,
    spec_json       TEXT NOT NULL,     -- the full RunSpec: rebuilds the run exactly
    status          TEXT NOT NULL,
    train_status    TEXT NOT NULL DEFAULT '',   -- completed | early-stopped | nan | interrupted
    message         TEXT NOT NULL DEFAULT '',
    val_accuracy    REAL,
    val_loss        REAL,
    val_auc         REAL,
    test_accuracy   REAL,
    test_loss       REAL,
    test_auc        REAL,
    best_epoch      INTEGER,
    epochs_run      INTEGER,
    params          INTEGER,
    wall_time       REAL,
    tokens_per_sec  REAL,
    curves_json     TEXT NOT NULL DEFAULT '[]',
    data_checksum   TEXT NOT NULL DEFAULT '',
    run_dir         TEXT NOT NULL DEFAULT '',
    tf_version      TEXT NOT NULL DEFAULT '',
    project_version TEXT NOT NULL DEFAULT '',
    git_commit      TEXT NOT NULL DEFAULT '',
    host            TEXT NOT NULL DEFAULT '',
    pid             INTEGER,
    started_at      TEXT NOT NULL,
    finished_at     TEXT
);
CREATE INDEX runs_by_key ON runs (key, status);
CREATE INDEX runs_by_group ON runs (group_key, status);
"""

# MIGRATIONS[v] turns a version-v database into version v + 1 (inside the caller's transaction).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One row of the ``runs`` table."""

    id: str
    key: str
    group_key: str
    seed: int
    label: str
    encoder: str
    cell: str
    aggregator: str
    head: str
    spec_json: str
    status: str
    train_status: str
    message: str
    val_accuracy: float | None
    val_loss: float | None
    val_auc: float | None
    test_accuracy: float | None
    test_loss: float | None
    test_auc: float | None
    best_epoch: int | None
    epochs_run: int | None
    params: int | None
    wall_time: float | None
    tokens_per_sec: float | None
    curves_json: str
    data_checksum: str
    run_dir: str
    tf_version: str
    project_version: str
    git_commit: str
    host: str
    pid: int | None
    started_at: str
    finished_at: str | None

    @functools.cached_property
    def spec(self) -> RunSpec:
        return RunSpec.from_json(self.spec_json)

    @property
    def curves(self) -> list[dict[str, Any]]:
        return json.loads(self.curves_json)

    def metric(self, split: str, name: str) -> float | None:
        """E.g. ``metric("test", "accuracy")``."""
        return getattr(self, f"{split}_{name}")


_COLUMNS = tuple(f.name for f in dataclasses.fields(RunRecord))


def group_key(run: RunSpec) -> str:
    """The key shared by the seeds of one spec: :meth:`RunSpec.key` with the seed left out."""
    return dataclasses.replace(run, seed=0).key()


def now() -> str:
    """UTC now, ISO 8601 to the microsecond (sorts as text)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def new_run_id() -> str:
    """A short random id; users type any unique prefix of it."""
    return uuid.uuid4().hex[:12]


@functools.cache
def provenance() -> dict[str, str]:
    """TF version, project version, git commit (``-dirty`` if modified) and host of this process."""
    tf_version = ""
    for dist in ("tensorflow", "tensorflow-cpu"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            tf_version = importlib.metadata.version(dist)
            break
    from zoo_core import __version__

    return {
        "tf_version": tf_version,
        "project_version": __version__,
        "git_commit": _git_commit(Path(__file__).resolve().parent.parent),
        "host": socket.gethostname(),
    }


def _git_commit(checkout: Path) -> str:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"], cwd=checkout,
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host is running (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _finite(value: Any) -> float | None:
    """A float for SQLite, or None for a missing or non-finite value (a NaN run says so in train_status)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class ResultsDB:
    """The SQLite results database at ``path``.

    Every method opens its own short-lived connection, so one object can be
    shared by threads, and a process holds no lock between writes.

    Args:
        path: The database file.
        create: Create the file (and its folder) if missing; when False a
            missing file is a :class:`ZooError` ("no results yet").
        timeout: Seconds a writer waits for another writer before giving up.
    """

    def __init__(self, path: str | os.PathLike, create: bool = True, timeout: float = 120.0):
        self.path = Path(path).expanduser()
        self.timeout = timeout
        if not self.path.exists():
            if not create:
                raise ZooError(f"no results yet: {self.path} does not exist (run `zoo rank` first)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._prepare()

    # -- connections and schema ---------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as err:
            raise ZooError(f"cannot open results database {self.path}: {err}") from None
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            yield conn
        except sqlite3.DatabaseError as err:
            if "not a database" in str(err) or "malformed" in str(err):
                raise ZooError(f"{self.path} is not an rnn-zoo results database ({err})") from None
            raise
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock up front (so read-then-write is atomic)."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _prepare(self) -> None:
        """Switches to WAL and creates, migrates or refuses the schema."""
        with self._connect() as conn:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":  # e.g. a file system without shared memory
                raise ZooError(f"results database {self.path}: cannot use WAL journal mode (got {mode!r})")
        with self._write() as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                for statement in _statements(_SCHEMA_V1):
                    conn.execute(statement)
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)")
                conn.execute("INSERT INTO schema_version VALUES (1, ?)", (now(),))
                version = 1
            elif "schema_version" not in tables:
                raise ZooError(f"{self.path} is an SQLite database but not an rnn-zoo results database "
                               "(it has no schema_version table); pass another --results file")
            else:
                version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            if version > SCHEMA_VERSION:
                raise ZooError(f"results database {self.path} has schema version {version}, newer than this "
                               f"rnn-zoo understands ({SCHEMA_VERSION}); upgrade rnn-zoo or pass another --results file")
            while version < SCHEMA_VERSION:
                if version not in MIGRATIONS:
                    raise ZooError(f"results database {self.path} has schema version {version}, which cannot be "
                                   f"migrated to {SCHEMA_VERSION}; pass another --results file")
                MIGRATIONS[version](conn)
                version += 1
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, now()))

    def schema_version(self) -> int:
        with self._connect() as conn:
            return conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    # -- writes ---------------------------------------------------------
    def claim(self, run: RunSpec, run_id: str | None = None) -> str | None:
        """Starts ``run`` (status ``running``) unless it already finished or a live process runs it.

        A ``running`` row whose process died (same host: its pid is gone;
        another host: older than :data:`FOREIGN_CLAIM_TTL`) is marked
        ``abandoned`` and the run is claimed afresh.

        Returns:
            The new run id, or None when the run should be skipped.
        """
        info = provenance()
        run_id = run_id or new_run_id()
        key = run.key()
        with self._write() as conn:
            rows = conn.execute(
                "SELECT id, status, host, pid, started_at FROM runs WHERE key = ? AND status IN (?, ?)",
                (key, RUNNING, FINISHED),
            ).fetchall()
            if any(r["status"] == FINISHED for r in rows):
                return None
            for row in rows:
                if _claim_is_live(row["id"], row["host"], row["pid"], row["started_at"], info["host"]):
                    return None
                conn.execute("UPDATE runs SET status = ?, message = ?, finished_at = ? WHERE id = ?",
                             (ABANDONED, "its process died before it finished", now(), row["id"]))
            spec = run.model
            conn.execute(
                "INSERT INTO runs (id, key, group_key, seed, label, encoder, cell, aggregator, head, spec_json,"
                " status, tf_version, project_version, git_commit, host, pid, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, key, group_key(run), run.seed, spec.label, spec.encoder, spec.cell, spec.aggregator,
                 spec.head, run.to_json(), RUNNING, info["tf_version"], info["project_version"],
                 info["git_commit"], info["host"], os.getpid(), now()),
            )
        _HELD_CLAIMS.add(run_id)
        return run_id

    def finish(self, run_id: str, result: Any, run_dir: str | os.PathLike = "", data_checksum: str = "") -> None:
        """Records a training result (a ``TrainResult``) and marks the run ``finished``."""
        history = list(getattr(result, "history", []) or [])
        values = {
            "status": FINISHED,
            "train_status": str(getattr(result, "status", "") or "completed"),
            "message": str(getattr(result, "message", "") or ""),
            "best_epoch": getattr(result, "best_epoch", None),
            "epochs_run": len(history),
            "params": getattr(result, "params", None),
            "wall_time": _finite(getattr(result, "wall_time", None)),
            "tokens_per_sec": _finite(getattr(result, "tokens_per_sec", None)),
            "curves_json": json.dumps(history, default=_json_default),
            "run_dir": str(run_dir or ""),
            "data_checksum": data_checksum,
            "finished_at": now(),
        }
        for split in ("val", "test"):
            metrics = getattr(result, split, {}) or {}
            for name in METRICS:
                values[f"{split}_{name}"] = _finite(metrics.get(name))
        self._update(run_id, values)
        _HELD_CLAIMS.discard(run_id)

    def mark(self, run_id: str, status: str, message: str = "") -> None:
        """Ends a running run without results: ``interrupted``, ``failed`` or ``abandoned``.

        A run that is no longer running is left as it is: a Ctrl-C arriving just
        after a run was recorded as finished must not turn it into ``interrupted``.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._update(run_id, {"status": status, "message": message, "finished_at": now()}, only_if_status=RUNNING)
        _HELD_CLAIMS.discard(run_id)

    def _update(self, run_id: str, values: Mapping[str, Any], only_if_status: str | None = None) -> None:
        """Sets ``values`` on run ``run_id``; with ``only_if_status``, only while it has that status.

        Raises:
            ZooError: no run ``run_id``.
        """
        names = sorted(values)
        assignments = ", ".join(f"{n} = ?" for n in names)
        where, args = "id = ?", [values[n] for n in names] + [run_id]
        if only_if_status is not None:
            where, args = where + " AND status = ?", args + [only_if_status]
        with self._write() as conn:
            done = conn.execute(f"UPDATE runs SET {assignments} WHERE {where}", args)
            if done.rowcount != 1 and not conn.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone():
                raise ZooError(f"results database {self.path} has no run {run_id!r}")

    def record(self, run: RunSpec, result: Any, run_dir: str | os.PathLike = "", data_checksum: str = "",
               run_id: str | None = None) -> str:
        """Records a run trained outside :meth:`claim` (e.g. by ``zoo train``); returns its id."""
        run_id = run_id or new_run_id()
        info = provenance()
        spec = run.model
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runs (id, key, group_key, seed, label, encoder, cell, aggregator, head, spec_json,"
                " status, tf_version, project_version, git_commit, host, pid, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, run.key(), group_key(run), run.seed, spec.label, spec.encoder, spec.cell,
                 spec.aggregator, spec.head, run.to_json(), RUNNING, info["tf_version"],
                 info["project_version"], info["git_commit"], info["host"], os.getpid(), now()),
            )
        self.finish(run_id, result, run_dir, data_checksum)
        return run_id

    # -- reads ----------------------------------------------------------
    def runs(self, statuses: Sequence[str] | None = None) -> list[RunRecord]:
        """Every run (or those with one of ``statuses``), oldest first."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM runs"
        args: list[Any] = []
        if statuses:
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            args.extend(statuses)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY started_at, id", args).fetchall()
        return [RunRecord(**dict(r)) for r in rows]

    def finished(self) -> list[RunRecord]:
        """Finished runs, keeping only the latest of any (spec, seed) recorded twice."""
        latest: dict[str, RunRecord] = {}
        for record in self.runs([FINISHED]):
            if record.key not in latest or (record.finished_at or "") >= (latest[record.key].finished_at or ""):
                latest[record.key] = record
        return sorted(latest.values(), key=lambda r: (r.started_at, r.id))

    def finished_keys(self) -> set[str]:
        with self._connect() as conn:
            return {r[0] for r in conn.execute("SELECT DISTINCT key FROM runs WHERE status = ?", (FINISHED,))}

    def get(self, prefix: str) -> RunRecord:
        """The run whose id is ``prefix`` or starts with it.

        Raises:
            ZooError: no such run, or the prefix is ambiguous.
        """
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE id = ? OR id LIKE ? ESCAPE '\\' ORDER BY id",
                (prefix, prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"),
            ).fetchall()
        exact = [r for r in rows if r["id"] == prefix]
        rows = exact or rows
        if not rows:
            raise ZooError(f"unknown run {prefix!r} in {self.path} (see `zoo runs`)")
        if len(rows) > 1:
            ids = ", ".join(r["id"] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise ZooError(f"run id prefix {prefix!r} is ambiguous: {ids}")
        return RunRecord(**dict(rows[0]))

    def integrity_check(self) -> str:
        with self._connect() as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0]


def _statements(script: str) -> list[str]:
    """Splits a schema script into statements (``executescript`` would commit mid-transaction)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _claim_is_live(run_id: str, host: str, pid: int | None, started_at: str, this_host: str) -> bool:
    """Whether a ``running`` row still belongs to a live process."""
    if host == this_host:
        if pid == os.getpid():
            return run_id in _HELD_CLAIMS
        return pid is not None and pid_alive(pid)
    started = dt.datetime.fromisoformat(started_at)
    return dt.datetime.now(dt.timezone.utc) - started < FOREIGN_CLAIM_TTL


def _json_default(value: Any) -> Any:
    """Numpy scalars and other numbers in the curves become plain floats."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def resolve_results_path(explicit: str | os.PathLike | None, settings: Any) -> Path:
    """``--results PATH``, else ``settings.results`` (which ``$ZOO_RESULTS`` already overrides)."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    return Path(settings.results)
