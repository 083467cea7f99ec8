"""The results database: every run, its spec, metrics, curves and provenance, in SQLite.

One file holds every run ``zoo rank`` (or anything else) has recorded. It is
safe for several processes at once:

* WAL journal mode, so readers never block the writer and a crash mid-write
  never leaves a half-written row;
* a busy timeout, so a writer waits for another writer instead of failing;
* one ``BEGIN IMMEDIATE`` transaction per write, so a read-then-write (a
  claim) is atomic across processes.

A run moves ``running`` -> ``finished`` (or ``diverged`` / ``interrupted`` /
``failed`` / ``abandoned``); a tuning trial (``zoo tune``), which is scored on
the validation split only, ends ``trial``, or ``pruned`` when the tuner stopped
it early. Neither is ever a leaderboard run, so ``zoo rank`` trains its (spec,
seed) afresh. ``pruned_at`` is set once ``zoo runs --prune``
deleted its weights (its record stays). An ensemble (``zoo ensemble``) is a row of
its own, recorded ``finished`` at once (:meth:`ResultsDB.record_ensemble`): its
``members_json`` lists the runs whose probabilities it averages, and it has no
weights of its own. :meth:`ResultsDB.claim` atomically starts a run
unless the same (spec, seed) already finished or diverged, or is being trained
by a live process, so two ``zoo rank`` processes never train the same run twice
and a rerun after a crash redoes only the unfinished one. A live process is
told from a later one that reuses its pid by the process's start time.

The schema is versioned in the ``schema_version`` table; an older database is
migrated in place, a newer or foreign one is refused with one clear line, and
so is one whose tables, columns or values were damaged or edited by hand.
Commands that only read open the file read-only, so a results file in a
read-only folder can still be listed, ranked and used.
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
from typing import TYPE_CHECKING, Any

from zoo_core.config import RunSpec
from zoo_core.errors import ZooError

if TYPE_CHECKING:  # training imports TensorFlow; reading results must not
    from zoo_core.training import TrainResult

SCHEMA_VERSION = 4
RUNNING, FINISHED, DIVERGED = "running", "finished", "diverged"
INTERRUPTED, FAILED, ABANDONED = "interrupted", "failed", "abandoned"
# Tuning trials (`zoo tune`): trained on train, scored on validation only, never on test.
TRIAL, PRUNED = "trial", "pruned"
STATUSES = (RUNNING, FINISHED, DIVERGED, INTERRUPTED, FAILED, ABANDONED, TRIAL, PRUNED)
# A (spec, seed) with one of these is not trained again: a diverged run would diverge again.
DONE = (FINISHED, DIVERGED)
METRICS = ("accuracy", "loss", "auc")
# A claim by a process on another host cannot be checked; after this long it is presumed dead.
FOREIGN_CLAIM_TTL = dt.timedelta(hours=48)


class ClaimLedger:
    """The run ids this process claimed (or started) and has not ended yet, in any database.

    It tells this process's own live claims from those of a dead process
    whose pid it happens to reuse: a row says ``running`` with our pid, and
    only this ledger knows whether we hold it. A claim belongs to a process,
    not to one :class:`ResultsDB` object (two objects on one file, as the
    tests and a notebook open, must see each other's claims), so there is one
    ledger per process: :data:`HELD_CLAIMS`.
    """

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def hold(self, run_id: str) -> None:
        self._ids.add(run_id)

    def release(self, run_id: str) -> None:
        self._ids.discard(run_id)

    def holds(self, run_id: str) -> bool:
        return run_id in self._ids


HELD_CLAIMS = ClaimLedger()

def _add_columns(conn: sqlite3.Connection, version: int) -> None:
    """Adds the columns :class:`RunRecord` declares ``since=version``, as declared."""
    for field in dataclasses.fields(RunRecord):
        if field.metadata["since"] == version:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {field.name} {field.metadata['sql']}")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Adds ``proc_start`` and gives runs that stopped on a NaN loss their own status."""
    _add_columns(conn, 2)
    conn.execute("UPDATE runs SET status = ? WHERE status = ? AND train_status = 'nan'", (DIVERGED, FINISHED))


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Adds ``pruned_at``: no run of an older file had its weights pruned."""
    _add_columns(conn, 3)


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Adds ``members_json``: every run of an older file was trained, none is an ensemble (``[]``). Schema 4
    also adds the statuses ``trial`` and ``pruned`` (``zoo tune``), which an older rnn-zoo would take for damage;
    the version tells it that the file is newer instead."""
    _add_columns(conn, 4)


# MIGRATIONS[v] turns a version-v database into version v + 1 (inside the caller's transaction).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2, 2: _migrate_2_to_3,
                                                               3: _migrate_3_to_4}


def column(sql: str, comment: str = "", since: int = 1, old: str = "NULL", **default: Any):
    """A field of :class:`RunRecord` and the ``runs`` column that stores it, declared together.

    Args:
        sql: The column's SQLite type and constraints, e.g. ``"TEXT NOT NULL DEFAULT ''"``.
        comment: Why the column is there, written into the schema as an SQL comment.
        since: The schema version that added it (1: the first). A writer adds
            it with a migration (:data:`MIGRATIONS`); a read-only reader of an
            older file reads ``old`` (an SQL expression) in its place.
        **default: ``default=`` for the dataclass field, for columns added after version 1.
    """
    return dataclasses.field(metadata={"sql": sql, "comment": comment, "since": since, "old": old}, **default)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One row of the ``runs`` table, which these fields declare (:func:`column`): the ``CREATE TABLE``, the
    inserted columns, a reader's fill-ins for columns newer than its file, and the type checks all read them."""

    id: str = column("TEXT PRIMARY KEY")
    key: str = column("TEXT NOT NULL", "RunSpec.key(): model + data + train + seed")
    group_key: str = column("TEXT NOT NULL", "the same without the seed: runs averaged together")
    seed: int = column("INTEGER NOT NULL")
    label: str = column("TEXT NOT NULL", "the model's name, or its combination")
    encoder: str = column("TEXT NOT NULL")
    cell: str = column("TEXT NOT NULL")
    aggregator: str = column("TEXT NOT NULL")
    head: str = column("TEXT NOT NULL")
    spec_json: str = column("TEXT NOT NULL", "the full RunSpec: rebuilds the run exactly")
    status: str = column("TEXT NOT NULL")
    train_status: str = column("TEXT NOT NULL DEFAULT ''", "completed | early-stopped | nan | interrupted")
    message: str = column("TEXT NOT NULL DEFAULT ''")
    val_accuracy: float | None = column("REAL")
    val_loss: float | None = column("REAL")
    val_auc: float | None = column("REAL")
    test_accuracy: float | None = column("REAL")
    test_loss: float | None = column("REAL")
    test_auc: float | None = column("REAL")
    best_epoch: int | None = column("INTEGER")
    epochs_run: int | None = column("INTEGER")
    params: int | None = column("INTEGER")
    wall_time: float | None = column("REAL")
    tokens_per_sec: float | None = column("REAL")
    curves_json: str = column("TEXT NOT NULL DEFAULT '[]'")
    data_checksum: str = column("TEXT NOT NULL DEFAULT ''")
    run_dir: str = column("TEXT NOT NULL DEFAULT ''")
    tf_version: str = column("TEXT NOT NULL DEFAULT ''")
    project_version: str = column("TEXT NOT NULL DEFAULT ''")
    git_commit: str = column("TEXT NOT NULL DEFAULT ''")
    host: str = column("TEXT NOT NULL DEFAULT ''")
    pid: int | None = column("INTEGER")
    started_at: str = column("TEXT NOT NULL")
    finished_at: str | None = column("TEXT")
    proc_start: str = column("TEXT NOT NULL DEFAULT ''", "boot id and start time of process pid", since=2,
                             old="''", default="")
    pruned_at: str | None = column("TEXT", "when `zoo runs --prune` deleted its weights", since=3, default=None)
    members_json: str = column("TEXT NOT NULL DEFAULT '[]'", "an ensemble's member run ids; [] for a trained run",
                               since=4, old="'[]'", default="[]")

    @functools.cached_property
    def spec(self) -> RunSpec:
        return RunSpec.from_json(self.spec_json)

    @property
    def curves(self) -> list[dict[str, Any]]:
        return json.loads(self.curves_json)

    @property
    def members(self) -> list[str]:
        """The run ids an ensemble (``zoo ensemble``) averages; ``[]`` for a trained run."""
        return json.loads(self.members_json)

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)

    def metric(self, split: str, name: str) -> float | None:
        """E.g. ``metric("test", "accuracy")``."""
        return getattr(self, f"{split}_{name}")


_FIELDS = dataclasses.fields(RunRecord)
_COLUMNS = tuple(f.name for f in _FIELDS)
# The value types each column must hold (SQLite stores whatever it is given), read from the declarations.
_NUMBER_COLUMNS = tuple(f.name for f in _FIELDS if f.metadata["sql"].startswith("REAL"))
_INTEGER_COLUMNS = tuple(f.name for f in _FIELDS if f.metadata["sql"].startswith("INTEGER"))
_NULLABLE = {f.name for f in _FIELDS if not any(c in f.metadata["sql"] for c in ("NOT NULL", "PRIMARY KEY"))}
# Columns each schema version added to ``runs``, with what a read-only reader of an older file reads instead.
ADDED_COLUMNS: dict[int, dict[str, str]] = {}
for _field in _FIELDS:
    if _field.metadata["since"] > 1:
        ADDED_COLUMNS.setdefault(_field.metadata["since"], {})[_field.name] = _field.metadata["old"]


def _column_sql(field: dataclasses.Field) -> str:
    comment = f"  -- {field.metadata['comment']}" if field.metadata["comment"] else ""
    since = f" (schema {field.metadata['since']})" if field.metadata["since"] > 1 and comment else ""
    return f"    {field.name:<15} {field.metadata['sql']}{{sep}}{comment}{since}"


def _schema() -> str:
    """The ``CREATE TABLE runs`` of the current version and its indexes, from :class:`RunRecord`'s fields."""
    lines = [_column_sql(f).format(sep="," if i < len(_FIELDS) - 1 else "") for i, f in enumerate(_FIELDS)]
    return ("CREATE TABLE runs (\n" + "\n".join(lines) + "\n);\n"
            "CREATE INDEX runs_by_key ON runs (key, status);\n"
            "CREATE INDEX runs_by_group ON runs (group_key, status);\n")


_SCHEMA = _schema()


def group_key(run: RunSpec) -> str:
    """The key shared by the seeds of one spec: :meth:`RunSpec.key` with the seed left out."""
    return dataclasses.replace(run, seed=0).key()


def now() -> str:
    """UTC now, ISO 8601 to the microsecond (sorts as text)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def new_run_id() -> str:
    """A short random id; users type any unique prefix of it."""
    return uuid.uuid4().hex[:12]


#: The columns :func:`provenance` fills: what code, on what machine, produced a run.
PROVENANCE = ("tf_version", "project_version", "git_commit", "host")


# Read once per process, at its first run (the git call is a subprocess): what the process runs is the code it
# imported then, whatever the checkout becomes later.
@functools.cache
def provenance() -> dict[str, str]:  # keys: PROVENANCE
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
    except (OverflowError, ValueError):  # not a pid this system can have
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _proc_stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (field 3 first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def process_start(pid: int) -> str:
    """``BOOT_ID:TICKS``, when process ``pid`` started on this boot, or ``""`` where /proc cannot tell.

    With the pid it names one process: a later process that is given the same
    pid started later, so its token differs.
    """
    fields = _proc_stat_fields(pid)
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
    return f"{boot}:{fields[19]}" if fields and len(fields) > 19 else ""


def _process_started_at(pid: int) -> dt.datetime | None:
    """When process ``pid`` started (wall clock, never later than the truth), or None where unknown."""
    fields = _proc_stat_fields(pid)
    try:
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        ticks = int(fields[19]) if fields and len(fields) > 19 else None
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    if ticks is None:
        return None
    return dt.datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), dt.timezone.utc)


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time as stored in the database (a time without a zone is UTC)."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _finite(value: Any) -> float | None:
    """A float for SQLite, or None for a missing or non-finite value (a NaN run says so in train_status)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _make_folder_for(path: Path) -> None:
    """Creates the folder ``path`` will go in, or says in one line why it cannot be."""
    parent = path.parent
    blocker = next((p for p in (parent, *parent.parents) if p.exists() or p.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        raise ZooError(f"cannot create results database {path}: {blocker} is a file, not a folder; "
                       "pass another --results path")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZooError(f"cannot create results database {path}: cannot create its folder {parent} "
                       f"({err.strerror or err}); pass another --results path") from None


def _check_writable(path: Path) -> None:
    """Refuses a results file, or its folder (where SQLite keeps its WAL files), that cannot be written."""
    import tempfile

    try:
        if path.exists():
            os.close(os.open(path, os.O_RDWR))
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe-", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        what = path if isinstance(err.filename, str) and Path(err.filename) == path else f"its folder {path.parent}"
        raise ZooError(f"results database {path} cannot be written: {what} is not writable "
                       f"({err.strerror or err}); make it writable or pass another --results file") from None


class ResultsDB:
    """The SQLite results database at ``path``.

    Every method opens its own short-lived connection, so one object can be
    shared by threads, and a process holds no lock between writes. Every row
    read is checked (types, status, JSON, spec), so a damaged or hand-edited
    file gives one :class:`ZooError` naming it, not a traceback.

    Args:
        path: The database file.
        create: Create the file (and its folder) if missing; when False a
            missing file is a :class:`ZooError` ("no results yet").
        timeout: Seconds a writer waits for another writer before giving up.
        readonly: Only read: open the file read-only and never create,
            migrate or lock it, so a file in a read-only folder or on a
            read-only disk can still be read. Writes then raise ZooError.

    Raises:
        ZooError: a missing file (when not creating), a folder or file that
            cannot be created or written (when not read-only), or a file that
            is not an rnn-zoo results database or was damaged.
    """

    def __init__(self, path: str | os.PathLike, create: bool = True, timeout: float = 120.0,
                 readonly: bool = False):
        self.path = Path(path).expanduser()
        self.timeout = timeout
        self.readonly = readonly
        self._uri: str | None = None  # set for read-only connections
        self._select = ", ".join(_COLUMNS)
        self._version = SCHEMA_VERSION
        if self.path.is_dir():
            raise ZooError(f"results database {self.path} is a folder, not a file; pass a file path to --results")
        if not self.path.exists():
            if readonly or not create:
                raise ZooError(f"no results yet: {self.path} does not exist (run `zoo rank` first)")
            _make_folder_for(self.path)
            _check_writable(self.path)
            self._create()
        if self.path.stat().st_size == 0:  # rnn-zoo never leaves one (see _create): emptied, or made elsewhere
            raise ZooError(f"{self.path} is an empty file, not an rnn-zoo results database; delete it to start a "
                           "new one there, or pass another --results file")
        if not readonly:
            _check_writable(self.path)
        self._prepare()

    def _create(self) -> None:
        """Writes a new, empty database beside ``path`` and links it into place.

        The file appears whole or not at all, so an empty file at ``path`` is
        never one of ours half-made (it is refused, not filled), and of two
        processes creating it at once, the second simply uses the first's.
        """
        temporary = self.path.with_name(f".{self.path.name}.new-{new_run_id()}")
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask's usual mode
            conn = sqlite3.connect(temporary, isolation_level=None)
            try:
                conn.execute("BEGIN")
                for statement in _statements(_SCHEMA):
                    conn.execute(statement)
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)")
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION, now()))
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                os.link(temporary, self.path)  # never replaces a file that appeared meanwhile
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not self.path.exists():
                    os.replace(temporary, self.path)
        except (OSError, sqlite3.Error) as err:
            raise ZooError(f"cannot create results database {self.path}: {getattr(err, 'strerror', None) or err}; "
                           "pass another --results path") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)

    # -- connections and schema ---------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if self._uri:
                conn = sqlite3.connect(self._uri, uri=True, timeout=self.timeout, isolation_level=None)
            else:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as err:
            raise self._error(err) from None
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            yield conn
        except sqlite3.Error as err:
            raise self._error(err) from None
        finally:
            conn.close()

    def _error(self, err: sqlite3.Error) -> ZooError:
        """One line for an SQLite error: what it means for this file and what to do."""
        text = str(err)
        if "not a database" in text or "malformed" in text:
            return ZooError(f"{self.path} is not an rnn-zoo results database, or it is damaged ({text}); "
                            "restore it from a backup or pass another --results file")
        if "readonly" in text or "read-only" in text:
            return ZooError(f"results database {self.path} cannot be written ({text}); "
                            "make it and its folder writable or pass another --results file")
        if "locked" in text or "busy" in text:
            return ZooError(f"results database {self.path} is locked by another process ({text}); "
                            "try again when it is done")
        if "no such table" in text or "no such column" in text:
            return ZooError(f"results database {self.path} lacks what rnn-zoo needs ({text}); it was damaged "
                            "or edited: restore it from a backup or pass another --results file")
        return ZooError(f"results database {self.path}: {text}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock up front (so read-then-write is atomic)."""
        if self.readonly:
            raise ZooError(f"results database {self.path} was opened read-only")
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _readonly_uri(self) -> str:
        """The URI a reader opens: read-only wherever this process cannot write.

        A reader of a WAL file creates its ``-shm`` file when none exists, and
        one made by a process that cannot write the database is read-only and
        locks every later writer out. So a reader that could write opens the
        file as usual (only reading it, and tidying the WAL files up at the
        end); one that cannot reads it read-only while a writer has its WAL
        files open, and otherwise as immutable: nothing can be writing it.
        """
        base = self.path.resolve().as_uri()
        if os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK):
            return base + "?mode=rw"
        if all(Path(f"{self.path}{suffix}").exists() for suffix in ("-wal", "-shm")):
            return base + "?mode=ro"
        return base + "?mode=ro&immutable=1"

    def _prepare(self) -> None:
        """Checks the schema; a writer also switches to WAL and creates or migrates it."""
        if self.readonly:
            self._uri = self._readonly_uri()
            with self._connect() as conn:
                self._version = self._check_schema(conn)
            missing = {c: d for v, added in ADDED_COLUMNS.items() if v > self._version for c, d in added.items()}
            self._select = ", ".join(f"{missing[c]} AS {c}" if c in missing else c for c in _COLUMNS)
            return
        with self._connect() as conn:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":  # e.g. a file system without shared memory
                raise ZooError(f"results database {self.path}: cannot use WAL journal mode (got {mode!r})")
        with self._write() as conn:
            version = self._check_schema(conn)
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, now()))
            self._version = version

    def _check_schema(self, conn: sqlite3.Connection) -> int:
        """The file's schema version, after checking its tables and columns are those of that version.

        Raises:
            ZooError: an empty or foreign file, a newer or unmigratable
                version, a bad version value, a missing table or column.
        """
        tables = _tables(conn)
        if not tables:  # rnn-zoo never leaves such a file (see _create): it was emptied or made elsewhere
            raise ZooError(f"{self.path} is an SQLite database without tables, not an rnn-zoo results database; "
                           "delete it to start a new one there, or pass another --results file")
        if "schema_version" not in tables:
            raise ZooError(f"{self.path} is an SQLite database but not an rnn-zoo results database "
                           "(it has no schema_version table); pass another --results file")
        damaged = "it was damaged or edited: restore it from a backup or pass another --results file"
        if "version" not in _columns(conn, "schema_version"):
            raise ZooError(f"results database {self.path}: table schema_version has no column 'version'; {damaged}")
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        bad = next((v for v in versions if type(v) is not int or v < 1), None)
        if bad is not None:
            raise ZooError(f"results database {self.path}: schema_version holds {_shown(bad)}, "
                           f"not a version number; {damaged}")
        if not versions:
            raise ZooError(f"results database {self.path}: table schema_version is empty; {damaged}")
        version = max(versions)
        if version > SCHEMA_VERSION:
            raise ZooError(f"results database {self.path} has schema version {version}, newer than this "
                           f"rnn-zoo understands ({SCHEMA_VERSION}); upgrade rnn-zoo or pass another --results file")
        if not self.readonly and any(v not in MIGRATIONS for v in range(version, SCHEMA_VERSION)):
            raise ZooError(f"results database {self.path} has schema version {version}, which cannot be "
                           f"migrated to {SCHEMA_VERSION}; pass another --results file")
        if "runs" not in tables:
            raise ZooError(f"results database {self.path} has no runs table; {damaged}")
        have = _columns(conn, "runs")
        later = {c for v, added in ADDED_COLUMNS.items() if v > version for c in added}
        missing = [c for c in _COLUMNS if c not in have and c not in later]
        if missing:
            extra = sorted(set(have) - set(_COLUMNS))
            found = f" (it has {', '.join(map(repr, extra))} instead)" if extra else ""
            raise ZooError(f"results database {self.path}: table runs lacks column "
                           f"{', '.join(map(repr, missing))}{found}; {damaged}")
        return version

    def schema_version(self) -> int:
        with self._connect() as conn:
            return conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    def _record(self, row: Mapping[str, Any]) -> RunRecord:
        """A checked :class:`RunRecord` of one row.

        Raises:
            ZooError: a value of the wrong type, an unknown status, a bad time,
                malformed JSON or a spec that does not parse.
        """
        values = dict(row)
        run_id = values.get("id")

        def fail(column: str, expected: str) -> ZooError:
            who = f"run {run_id!r}" if isinstance(run_id, str) else "a run"
            return ZooError(f"results database {self.path}: {who} has {column} = {_shown(values[column])}, "
                            f"expected {expected}; it was damaged or edited by hand (restore it from a backup "
                            "or pass another --results file)")

        for column in _COLUMNS:
            value = values[column]
            if value is None and column in _NULLABLE:
                continue
            if column in _NUMBER_COLUMNS:
                if type(value) not in (int, float) or not math.isfinite(value):
                    raise fail(column, "a finite number or NULL")
            elif column in _INTEGER_COLUMNS or column == "seed":
                if type(value) is not int:
                    raise fail(column, "an integer" + (" or NULL" if column in _NULLABLE else ""))
            elif type(value) is not str:
                raise fail(column, "text")
        if values["status"] not in STATUSES:
            raise fail("status", f"one of {', '.join(STATUSES)}")
        for column in ("started_at", "finished_at", "pruned_at"):
            if values[column] is not None:
                try:
                    parse_time(values[column])
                except ValueError:
                    raise fail(column, "an ISO 8601 time") from None
        try:
            spec = RunSpec.from_json(values["spec_json"])
        except Exception as err:  # noqa: BLE001 - whatever is wrong with it, it is this row's fault
            raise fail("spec_json", f"a run spec as JSON ({type(err).__name__}: {err})") from None
        try:
            curves = json.loads(values["curves_json"])
        except ValueError:
            curves = None
        if not isinstance(curves, list) or not all(isinstance(c, dict) for c in curves):
            raise fail("curves_json", "a JSON list of per-epoch objects")
        try:
            members = json.loads(values["members_json"])
        except ValueError:
            members = None
        if not (isinstance(members, list) and all(isinstance(m, str) and m for m in members)
                and len(members) != 1 and len(set(members)) == len(members)):
            raise fail("members_json", "a JSON list of 2 or more distinct run ids, or [] for a trained run")
        record = RunRecord(**values)
        record.__dict__["spec"] = spec  # parsed once (a cached_property)
        return record

    # -- writes ---------------------------------------------------------
    def claim(self, run: RunSpec, run_id: str | None = None) -> str | None:
        """Starts ``run`` (status ``running``) unless it finished or diverged, or a live process runs it.

        A ``running`` row whose process died (same host: its pid is gone, or
        now belongs to a process that started later; another host: older than
        :data:`FOREIGN_CLAIM_TTL`) is marked ``abandoned`` and the run is
        claimed afresh.

        Returns:
            The new run id, or None when the run should be skipped.
        """
        info = provenance()
        run_id = run_id or new_run_id()
        key = run.key()
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {self._select} FROM runs WHERE key = ? AND status IN (?, ?, ?)",
                (key, RUNNING, *DONE),
            ).fetchall()
            records = [self._record(r) for r in rows]
            if any(r.status in DONE for r in records):
                return None
            for record in records:
                if _claim_is_live(record, info["host"]):
                    return None
                conn.execute("UPDATE runs SET status = ?, message = ?, finished_at = ? WHERE id = ?",
                             (ABANDONED, "its process died before it finished", now(), record.id))
            self._insert(conn, run, run_id, info)
        HELD_CLAIMS.hold(run_id)
        return run_id

    def start(self, run: RunSpec, run_id: str | None = None) -> str:
        """Starts a new ``running`` run of ``run`` whatever the database holds (``zoo train``).

        Unlike :meth:`claim` it never skips: training the same (spec, seed)
        again records another run, with its own id. The latest finished run of
        a (spec, seed) is the one the leaderboard shows (:meth:`finished`).

        Returns:
            The new run id.
        """
        run_id = run_id or new_run_id()
        with self._write() as conn:
            self._insert(conn, run, run_id, provenance())
        HELD_CLAIMS.hold(run_id)
        return run_id

    def _insert(self, conn: sqlite3.Connection, run: RunSpec, run_id: str, info: Mapping[str, str],
                **columns: Any) -> None:
        """Inserts a ``running`` row for ``run`` owned by this process (the one insert path).

        ``columns`` replace or add values by column name (an ensemble's row: its key, status and scores).
        """
        spec = run.model
        values = {
            "id": run_id, "key": run.key(), "group_key": group_key(run), "seed": run.seed, "label": spec.label,
            "encoder": spec.encoder, "cell": spec.cell, "aggregator": spec.aggregator, "head": spec.head,
            "spec_json": run.to_json(), "status": RUNNING, "pid": os.getpid(), "proc_start": process_start(os.getpid()),
            "started_at": now(), **{k: info[k] for k in PROVENANCE}, **columns,
        }
        names = list(values)
        conn.execute(f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                     [values[n] for n in names])

    def finish(self, run_id: str, result: TrainResult, run_dir: str | os.PathLike = "",
               data_checksum: str = "", provenance: Mapping[str, str] | None = None,
               scored_test: bool = True) -> None:
        """Records a training result: ``finished``, ``diverged`` for a NaN loss, or ``interrupted`` for a run
        stopped before its end (its weights and curves so far are kept).

        A tuning trial (``scored_test=False``) that trained to its end is
        recorded ``trial`` instead of ``finished``, and one its tuner stopped
        (training status ``pruned``) ``pruned``: neither reaches a leaderboard.

        Args:
            scored_test: Whether the run was scored on the test split; False
                for a tuning trial.
            result: What training produced (its ``history``, ``status``, ``message``,
                ``best_epoch``, ``params``, ``wall_time``, ``tokens_per_sec``, and
                ``val``/``test`` as ``{accuracy, loss, auc}``); non-finite numbers are stored as NULL.
            provenance: Where it trained, if not in the process that claimed it
                (a Ray worker's :func:`provenance`): replaces the claim's
                :data:`PROVENANCE` columns (its pid stays the claimer's).
        """
        history = list(result.history or [])
        train_status = str(result.status or "completed")
        values = {
            "status": {"nan": DIVERGED, "interrupted": INTERRUPTED, "pruned": PRUNED}.get(
                train_status, FINISHED if scored_test else TRIAL),
            "train_status": train_status,
            "message": str(result.message or ""),
            "best_epoch": result.best_epoch,
            "epochs_run": len(history),
            "params": result.params,
            "wall_time": _finite(result.wall_time),
            "tokens_per_sec": _finite(result.tokens_per_sec),
            "curves_json": json.dumps(history, default=_json_default),
            "run_dir": str(run_dir or ""),
            "data_checksum": data_checksum,
            "finished_at": now(),
            **{k: str(provenance[k]) for k in PROVENANCE if provenance and k in provenance},
        }
        for split in ("val", "test"):
            metrics = getattr(result, split) or {}
            for name in METRICS:
                values[f"{split}_{name}"] = _finite(metrics.get(name))
        self._update(run_id, values)
        HELD_CLAIMS.release(run_id)

    def mark(self, run_id: str, status: str, message: str = "") -> None:
        """Ends a running run without results: ``interrupted``, ``failed`` or ``abandoned``.

        A run that is no longer running is left as it is: a Ctrl-C arriving just
        after a run was recorded as finished must not turn it into ``interrupted``.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._update(run_id, {"status": status, "message": message, "finished_at": now()}, only_if_status=RUNNING)
        HELD_CLAIMS.release(run_id)

    def mark_pruned(self, run_id: str) -> None:
        """Records that run ``run_id``'s weights were deleted (``zoo runs --prune``); the record itself stays.

        Raises:
            ZooError: no run ``run_id``.
        """
        self._update(run_id, {"pruned_at": now()})

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

    def record(self, run: RunSpec, result: TrainResult, run_dir: str | os.PathLike = "", data_checksum: str = "",
               run_id: str | None = None) -> str:
        """Records a run trained outside :meth:`claim` (e.g. by ``zoo train``); returns its id."""
        run_id = run_id or new_run_id()
        with self._write() as conn:
            self._insert(conn, run, run_id, provenance())
        self.finish(run_id, result, run_dir, data_checksum)
        return run_id

    def record_ensemble(self, run: RunSpec, key: str, members: Sequence[str], val: Mapping[str, float],
                        test: Mapping[str, float], *, message: str = "", params: int | None = None,
                        wall_time: float | None = None, data_checksum: str = "", started_at: str | None = None,
                        run_id: str | None = None) -> str:
        """Records an ensemble of recorded runs as a ``finished`` row of its own (``zoo ensemble``); returns its id.

        Args:
            run: The spec the row shows (:func:`zoo_core.ensemble.ensemble_spec`): its label,
                components and the setup the leaderboard ranks it in.
            key: Its key and group key (:func:`zoo_core.ensemble.ensemble_key`): one leaderboard row per
                set of members; recording the same members again replaces the row, as a retrained run does.
            members: The ids of the runs it averages (2 or more, distinct).
            val, test: ``{accuracy, loss, auc}`` of the averaged probabilities; non-finite numbers become NULL.
            message: What it is, shown by ``zoo runs``.
            params: Its members' parameters, summed.
            wall_time: Its members' training seconds, summed.
            data_checksum: The checksum of the data its members read.
            started_at: When its scoring began (:func:`now`); default: now.

        Raises:
            ValueError: fewer than 2 members, or one named twice.
        """
        if len(members) < 2 or len(set(members)) != len(members):
            raise ValueError(f"an ensemble needs 2 or more distinct members, not {list(members)}")
        run_id = run_id or new_run_id()
        scores = {f"{split}_{name}": _finite(metrics.get(name))
                  for split, metrics in (("val", val), ("test", test)) for name in METRICS}
        finished = now()
        with self._write() as conn:
            self._insert(conn, run, run_id, provenance(), key=key, group_key=key, status=FINISHED, message=message,
                         params=params, wall_time=_finite(wall_time), data_checksum=data_checksum,
                         members_json=json.dumps(list(members)), started_at=started_at or finished,
                         finished_at=finished, **scores)
        return run_id

    # -- reads ----------------------------------------------------------
    def runs(self, statuses: Sequence[str] | None = None) -> list[RunRecord]:
        """Every run (or those with one of ``statuses``), oldest first."""
        query = f"SELECT {self._select} FROM runs"
        args: list[Any] = []
        if statuses:
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            args.extend(statuses)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY started_at, id", args).fetchall()
        return [self._record(r) for r in rows]

    def finished(self) -> list[RunRecord]:
        """Finished runs, keeping only the latest of any (spec, seed) recorded twice.

        A run that stopped on a NaN loss is left out even where an older file
        (read without migrating) still calls it ``finished``.
        """
        latest: dict[str, RunRecord] = {}
        for record in self.runs([FINISHED]):
            if record.train_status == "nan":
                continue
            if record.key not in latest or (record.finished_at or "") >= (latest[record.key].finished_at or ""):
                latest[record.key] = record
        return sorted(latest.values(), key=lambda r: (r.started_at, r.id))

    def diverged(self) -> list[RunRecord]:
        """Runs that stopped on a NaN or infinite loss (kept off the leaderboard)."""
        return [r for r in self.runs([FINISHED, DIVERGED]) if r.status == DIVERGED or r.train_status == "nan"]

    def finished_keys(self) -> set[str]:
        """Keys of the runs that finished (diverged ones not included)."""
        return {r.key for r in self.finished()}

    def done_keys(self) -> dict[str, str]:
        """``{key: status}`` of every (spec, seed) that is not trained again: finished or diverged.

        It reads (and so checks) every row: ``zoo rank`` calls it first, to
        refuse a damaged file before training anything.
        """
        done: dict[str, str] = {}
        for record in self.runs():
            if record.status in DONE and done.get(record.key) != FINISHED:
                diverged = record.status == DIVERGED or record.train_status == "nan"
                done[record.key] = DIVERGED if diverged else FINISHED
        return done

    def get(self, prefix: str) -> RunRecord:
        """The run whose id is ``prefix`` or starts with it.

        Raises:
            ZooError: no such run, or the prefix is ambiguous.
        """
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {self._select} FROM runs WHERE id = ? OR id LIKE ? ESCAPE '\\' ORDER BY id",
                (prefix, prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"),
            ).fetchall()
        exact = [r for r in rows if r["id"] == prefix]
        rows = exact or rows
        if not rows:
            raise ZooError(f"unknown run {prefix!r} in {self.path} (see `zoo runs`)")
        if len(rows) > 1:
            ids = ", ".join(str(r["id"]) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise ZooError(f"run id prefix {prefix!r} is ambiguous: {ids}")
        return self._record(rows[0])

    def integrity_check(self) -> str:
        with self._connect() as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0]


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _shown(value: Any, width: int = 40) -> str:
    """``repr(value)``, cut to ``width`` characters, for an error line."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _statements(script: str) -> list[str]:
    """Splits a schema script into statements (``executescript`` would commit mid-transaction)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _claim_is_live(record: RunRecord, this_host: str) -> bool:
    """Whether a ``running`` row still belongs to a live process.

    On this host its pid must be running and be the same process: the start
    token recorded with the claim (rows from before schema 2: a process that
    started after the claim was made is another one).
    """
    if record.host != this_host:
        return dt.datetime.now(dt.timezone.utc) - parse_time(record.started_at) < FOREIGN_CLAIM_TTL
    pid = record.pid
    if pid is None:
        return False
    if pid == os.getpid():
        return HELD_CLAIMS.holds(record.id)
    if not pid_alive(pid):
        return False
    if record.proc_start:
        current = process_start(pid)
        return not current or current == record.proc_start
    started = _process_started_at(pid)
    return started is None or started <= parse_time(record.started_at)


def _json_default(value: Any) -> Any:
    """Numpy scalars and other numbers in the curves become plain floats."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def resolve_results_path(explicit: str | os.PathLike | None, settings: Any) -> Path:
    """``--results PATH``, else ``settings.results`` (which ``$ZOO_RESULTS`` already overrides).

    Raises:
        ZooError: an empty ``--results`` (it would quietly mean the default file).
    """
    if explicit is not None:
        if not str(explicit).strip():
            raise ZooError("--results needs a file path, got an empty one (leave the flag out for the default "
                           f"{settings.results})")
        return Path(explicit).expanduser().resolve()
    return Path(settings.results)
