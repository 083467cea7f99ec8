"""Tables of damaged results databases and saved runs, shared by tests/test_storage.py and
benchmarks/sweep_storage.py.

Each case is ``(name, tamper)``: ``tamper(path)`` damages a real copy of a good
results file or saved-run folder in place, the way a crash, a full disk, a
careless edit or another program would. A new kind of damage is one more row.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

Tamper = Callable[[Path], None]


# -- results databases -----------------------------------------------------------------------
def _sql(*statements: str, args: tuple = ()) -> Tamper:
    def tamper(path: Path) -> None:
        conn = sqlite3.connect(path)
        try:
            for statement in statements:
                conn.execute(statement, args if "?" in statement else ())
            conn.commit()
        finally:
            conn.close()
    return tamper


def _drop_column(table: str, column: str) -> Tamper:
    """Rebuilds ``table`` without ``column`` (ALTER TABLE DROP COLUMN refuses indexed or key columns)."""
    def tamper(path: Path) -> None:
        conn = sqlite3.connect(path)
        try:
            kept = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] != column]
            conn.execute(f"CREATE TABLE tampered AS SELECT {', '.join(kept)} FROM {table}")
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"ALTER TABLE tampered RENAME TO {table}")
            conn.commit()
        finally:
            conn.close()
    return tamper


def _bytes(make: Callable[[bytes], bytes]) -> Tamper:
    """Replaces the file's bytes (after folding its WAL in, so the bytes are the whole database)."""
    def tamper(path: Path) -> None:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.close()
        path.write_bytes(make(path.read_bytes()))
    return tamper


def _make_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def table_columns(path: Path, table: str = "runs") -> list[tuple[str, str]]:
    """``[(column, declared type)]`` of a table in a real database file."""
    conn = sqlite3.connect(path)
    try:
        return [(r[1], r[2].upper()) for r in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def database_cases(columns: list[tuple[str, str]]) -> list[tuple[str, Tamper]]:
    """Every kind of damage to a results database whose ``runs`` table has ``columns``.

    Args:
        columns: From :func:`table_columns` of a good file (so the same table
            fits any schema version).
    """
    cases: list[tuple[str, Tamper]] = [
        ("drop table runs", _sql("DROP TABLE runs")),
        ("drop table schema_version", _sql("DROP TABLE schema_version")),
        ("drop column schema_version.version", _drop_column("schema_version", "version")),
        ("rename column schema_version.version", _sql("ALTER TABLE schema_version RENAME COLUMN version TO v")),
        ("schema_version = 'abc'", _sql("UPDATE schema_version SET version = 'abc'")),
        ("schema_version = ''", _sql("UPDATE schema_version SET version = ''")),
        ("schema_version = 0", _sql("UPDATE schema_version SET version = 0")),
        ("schema_version = -1", _sql("UPDATE schema_version SET version = -1")),
        ("schema_version = 1.5", _sql("UPDATE schema_version SET version = 1.5")),
        ("schema_version = 999", _sql("UPDATE schema_version SET version = 999")),
        ("schema_version a blob", _sql("UPDATE schema_version SET version = x'01'")),
        ("schema_version row added: 'abc'", _sql("INSERT INTO schema_version VALUES ('abc', 'now')")),
        ("schema_version empty", _sql("DELETE FROM schema_version")),
    ]
    for column, _ in columns:
        cases.append((f"drop column runs.{column}", _drop_column("runs", column)))
        cases.append((f"rename column runs.{column}",
                      _sql(f"ALTER TABLE runs RENAME COLUMN {column} TO {column}_renamed")))
    for column, declared in columns:
        if declared in ("REAL", "INTEGER"):
            cases.append((f"text in numeric column {column}", _sql(f"UPDATE runs SET {column} = 'abc'")))
    for column, declared in columns:
        if declared == "REAL":
            cases.append((f"infinity in {column}", _sql(f"UPDATE runs SET {column} = 9e999")))
    cases += [
        ("blob in numeric column test_accuracy", _sql("UPDATE runs SET test_accuracy = x'00ff'")),
        ("blob in text column label", _sql("UPDATE runs SET label = x'00ff'")),
        ("unknown status", _sql("UPDATE runs SET status = 'bogus'")),
        ("started_at not a time", _sql("UPDATE runs SET started_at = 'yesterday'")),
        ("finished_at not a time", _sql("UPDATE runs SET finished_at = 'later'")),
    ]
    json_bad = {"'{'": "{", "'[]'": "[]", "'null'": "null", "'42'": "42", "not JSON": "not json at all",
                "object without model": '{"seed": 0}', "model not an object": '{"model": 5}'}
    for column, _ in columns:
        if column.endswith("_json"):
            for what, value in json_bad.items():
                if column != "spec_json" and what in ("object without model", "model not an object", "'[]'"):
                    continue  # [] is a good curve list; the others only mean something for a spec
                cases.append((f"{column} = {what}", _sql(f"UPDATE runs SET {column} = ?", args=(value,))))
    cases += [
        ("curves_json a list of numbers", _sql("UPDATE runs SET curves_json = '[1, 2]'")),
        ("spec_json with a bad setting", _sql(
            "UPDATE runs SET spec_json = json_set(spec_json, '$.data.maxlen', 'long')")),
        ("not SQLite: a text file", _bytes(lambda data: b"these are not the results you are looking for\n" * 50)),
        ("empty file", _bytes(lambda data: b"")),
        ("truncated to half", _bytes(lambda data: data[: len(data) // 2])),
        ("truncated to 1 KiB", _bytes(lambda data: data[:1024])),
        ("truncated to 100 bytes", _bytes(lambda data: data[:100])),
        ("SQLite header then garbage", _bytes(lambda data: data[:100] + bytes(range(256)) * 40)),
        ("a folder, not a file", _make_folder),
    ]
    return cases


# -- saved runs ------------------------------------------------------------------------------
def _edit_json(name: str, edit: Callable[[object], object]) -> Tamper:
    def tamper(folder: Path) -> None:
        path = folder / name
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return tamper


def _set(key: str, value: object) -> Tamper:
    def edit(meta):
        meta[key] = value
        return meta
    return _edit_json("run.json", edit)


def _drop(key: str) -> Tamper:
    def edit(meta):
        meta.pop(key, None)
        return meta
    return _edit_json("run.json", edit)


def _write(name: str, content: bytes) -> Tamper:
    def tamper(folder: Path) -> None:
        (folder / name).write_bytes(content)
    return tamper


def _cut(name: str, keep: Callable[[int], int]) -> Tamper:
    def tamper(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: keep(len(data))])
    return tamper


def _remove(name: str) -> Tamper:
    def tamper(folder: Path) -> None:
        target = folder / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return tamper


def _words(edit: Callable[[list], list]) -> Tamper:
    def change(payload):
        payload["words"] = edit(payload["words"])
        payload.pop("counts", None)
        return payload
    return _edit_json("vocab.json", change)


def _checkpoint_file(folder: Path) -> str:
    """The name of the checkpoint's data shard under weights/."""
    return "weights/" + next(p.name for p in (folder / "weights").iterdir() if ".data-" in p.name)


def rechecksum(folder: Path) -> None:
    """Brings run.json's checksums (where it has any) in line with the files: damage that a checksum
    would catch first reaches the checks behind it."""
    import hashlib

    meta = json.loads((folder / "run.json").read_text())
    if isinstance(meta, dict) and isinstance(meta.get("checksums"), dict):
        meta["checksums"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                             for name in meta["checksums"] if (folder / name).is_file()}
        (folder / "run.json").write_text(json.dumps(meta))


def _then_rechecksum(tamper: Tamper) -> Tamper:
    def both(folder: Path) -> None:
        tamper(folder)
        rechecksum(folder)
    return both


def _nan_weights(folder: Path) -> None:
    import numpy as np
    import tensorflow as tf

    from zoo_core.registry import build_registry
    from zoo_core.runs import CHECKPOINT, load_run

    model, _, _ = load_run(folder, build_registry())
    variable = model.trainable_variables[0]
    variable.assign(np.full(variable.shape, np.nan, variable.dtype.as_numpy_dtype))
    tf.train.Checkpoint(model=model).write(str(folder / CHECKPOINT))
    rechecksum(folder)


def _nan_vocab_size(folder: Path) -> None:
    import re

    path = folder / "run.json"
    path.write_text(re.sub(r'"vocab_size": \d+', '"vocab_size": NaN', path.read_text()))


def saved_run_cases() -> list[tuple[str, Tamper]]:
    """Every kind of damage to a saved run folder (from ``zoo train --save``)."""
    words = _words
    return [
        ("run.json missing", _remove("run.json")),
        ("run.json empty", _write("run.json", b"")),
        ("run.json not JSON", _write("run.json", b"{not json")),
        ("run.json cut in half", _cut("run.json", lambda n: n // 2)),
        ("run.json is []", _write("run.json", b"[]")),
        ("run.json is null", _write("run.json", b"null")),
        ("run.json is {}", _write("run.json", b"{}")),
        ("run.json lacks run", _drop("run")),
        ('"run": null', _set("run", None)),
        ('"run": 5', _set("run", 5)),
        ('"run": {}', _set("run", {})),
        ('"run": {"model": 5}', _set("run", {"model": 5})),
        ("run spec with a bad setting", _edit_json(
            "run.json", lambda m: {**m, "run": {**m["run"], "data": {**m["run"]["data"], "maxlen": "long"}}})),
        ("format unknown ('abc')", _set("format", "abc")),
        ("format newer (99)", _set("format", 99)),
        ("format -1", _set("format", -1)),
        ("format missing", _drop("format")),
        ("vocab_size 'abc'", _set("vocab_size", "abc")),
        ("vocab_size -5", _set("vocab_size", -5)),
        ("vocab_size 0", _set("vocab_size", 0)),
        ("vocab_size 2.5", _set("vocab_size", 2.5)),
        ("vocab_size true", _set("vocab_size", True)),
        ("vocab_size missing", _drop("vocab_size")),
        ("vocab_size NaN", _nan_vocab_size),
        ("vocab_size bigger than the weights", _edit_json("run.json", lambda m: {**m, "vocab_size": m["vocab_size"] + 5})),
        ("checksums not an object", _set("checksums", [1, 2])),
        ("checksum names a file outside", _set("checksums", {"../../etc/passwd": "0" * 64})),
        ("vocab.json missing", _remove("vocab.json")),
        ("vocab.json empty", _write("vocab.json", b"")),
        ("vocab.json not JSON", _write("vocab.json", b"{words")),
        ("vocab.json words null", _write("vocab.json", b'{"words": null}')),
        ("vocab.json longer than the embedding", words(lambda w: w + ["extra1", "extra2"])),
        ("vocab.json longer than the embedding (checksums updated)",
         _then_rechecksum(words(lambda w: w + ["extra1", "extra2"]))),
        ("vocab.json truncated", words(lambda w: w[:-3])),
        ("vocab.json truncated (checksums updated)", _then_rechecksum(words(lambda w: w[:-3]))),
        ("vocab.json shuffled", words(lambda w: w[:3] + w[3:][::-1])),
        ("vocab.json integers", words(lambda w: list(range(len(w))))),
        ("vocab.json integers after the reserved words (checksums updated)",
         _then_rechecksum(words(lambda w: w[:3] + list(range(3, len(w)))))),
        ("vocab.json a word twice (checksums updated)", _then_rechecksum(words(lambda w: w[:-1] + [w[3]]))),
        ("weights index empty", _write("weights/model.index", b"")),
        ("weights index cut in half", _cut("weights/model.index", lambda n: n // 2)),
        ("weights index missing", _remove("weights/model.index")),
        ("weights data empty", lambda f: (f / _checkpoint_file(f)).write_bytes(b"")),
        ("weights data cut in half", lambda f: _cut(_checkpoint_file(f), lambda n: n // 2)(f)),
        ("weights data empty (checksums updated)",
         _then_rechecksum(lambda f: (f / _checkpoint_file(f)).write_bytes(b""))),
        ("weights data cut in half (checksums updated)",
         _then_rechecksum(lambda f: _cut(_checkpoint_file(f), lambda n: n // 2)(f))),
        ("weights data missing", lambda f: (f / _checkpoint_file(f)).unlink()),
        ("weights folder missing", _remove("weights")),
        ("NaN weights (checksums updated)", _nan_weights),
    ]
