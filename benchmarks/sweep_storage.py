"""Bad-input sweep for storage: tampered results databases, tampered saved runs, bad destinations.

Runs real ``zoo`` commands (in this process through click's runner, and as
real subprocesses for the read-only cases) against real damaged files made
from a tiny ranked run, and counts how each ended:

* ``clean``: exit status 2 with one ``Error: ...`` line, no traceback;
* ``traceback``: an exception escaped;
* ``accepted``: exit 0 on bad input (silently accepted);
* ``lost``: the user's files are gone;
* ``other``: anything else (another exit status, several error lines).

Inputs that must work (reads of a read-only database, overwriting a saved run,
an old run without checksums) are checked apart and count as ``ok`` or not.

Usage (from the checkout, a few minutes on 2 cores, tiny data only)::

    .venv/bin/python benchmarks/sweep_storage.py [--only db,run,dest,good] [--verbose]

Exit status 0 when every bad input gave one clean line and every good one worked.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from click.testing import CliRunner  # noqa: E402

from tests.imdb_fixtures import make_imdb_archive  # noqa: E402
from tests.storage_cases import database_cases, saved_run_cases, table_columns  # noqa: E402
from zoo_core.cli import cli  # noqa: E402

TINY = ["--limit", "40", "--epochs", "1", "--maxlen", "20", "--set", "cell.units=4", "--set", "encoder.dim=4"]
# Root may write anything; without these capabilities it is held to the file modes like anyone else.
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


def zoo(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def classify(result) -> str:
    """How an in-process ``zoo`` run on bad input ended (see the module docstring)."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "traceback"
    return _classify(result.exit_code, result.stderr, result.stdout)


def _classify(code: int, stderr: str, stdout: str) -> str:
    if "Traceback (most recent call last)" in stderr + stdout:
        return "traceback"
    if code == 0:
        return "accepted"
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    if code == 2 and len(errors) == 1 and lines[-1].startswith("Error:"):
        return "clean"
    return f"other (exit {code})"


def zoo_process(*args, env=None, unprivileged=False):
    """``zoo ARGS`` as a real process: ``(exit status, stdout, stderr)``."""
    command = [sys.executable, "-m", "zoo_core.cli", *map(str, args)]
    if unprivileged:
        command = UNPRIVILEGED + command
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=REPO,
                          timeout=600)
    return done.returncode, done.stdout, done.stderr


class Tally:
    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.by_section: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.bad: list[str] = []

    def add(self, section: str, name: str, outcome: str, detail: str = "") -> None:
        self.by_section[section][outcome] += 1
        good = outcome in ("clean", "ok")
        if not good:
            self.bad.append(f"[{section}] {name}: {outcome} {detail.strip()[-300:]}")
        if self.verbose or not good:
            print(f"  {outcome:10} {section}: {name}" + (f"  | {detail.strip().splitlines()[-1][:160]}"
                                                         if detail.strip() else ""), flush=True)

    def report(self) -> int:
        print("\nsection        tried  clean/ok  traceback  accepted  lost  other")
        total = collections.Counter()
        for section, counts in self.by_section.items():
            total.update(counts)
            self._row(section, counts)
        self._row("ALL", total)
        return 0 if not self.bad else 1

    @staticmethod
    def _row(section: str, counts: collections.Counter) -> None:
        tried = sum(counts.values())
        other = sum(v for k, v in counts.items() if k.startswith("other") or k.startswith("failed"))
        print(f"{section:13} {tried:6} {counts['clean'] + counts['ok']:9} {counts['traceback']:10} "
              f"{counts['accepted']:9} {counts['lost']:5} {other:6}")


def last_line(result) -> str:
    return (result.stderr or result.stdout or "").strip()


# -- sections ----------------------------------------------------------------------------------
def sweep_databases(tally: Tally, home: Path, archive: Path, base_db: Path) -> None:
    commands = {
        "runs": ["runs"],
        "leaderboard": ["leaderboard"],
        "predict": ["predict", "best", "fun"],
        "rank --dry-run": ["rank", "elman-last", *TINY, "--data", archive, "--dry-run"],
        "rank": ["rank", "elman-last", *TINY, "--data", archive],
    }
    for index, (name, tamper) in enumerate(database_cases(table_columns(base_db))):
        for command, args in commands.items():
            case = home / "db" / f"{index}-{command.replace(' ', '')}"
            case.mkdir(parents=True)
            db = case / "results.sqlite"
            shutil.copy(base_db, db)
            tamper(db)
            result = zoo(*args, "--results", db)
            tally.add("database", f"{name} / {command}", classify(result), last_line(result))


def sweep_saved_runs(tally: Tally, home: Path, archive: Path, base_run: Path) -> None:
    tsv = home / "labelled.tsv"
    tsv.write_text("1\tgreat fun film\n0\tawful boring film\n", encoding="utf-8")
    for index, (name, tamper) in enumerate(saved_run_cases()):
        for command in ("predict", "evaluate"):
            folder = home / "runs" / f"{index}-{command}"
            shutil.copytree(base_run, folder)
            try:
                tamper(folder)
            except Exception as err:  # noqa: BLE001 - the old code may not even load the pristine copy
                tally.add("saved run", f"{name} / {command}", "other (could not tamper)", repr(err))
                continue
            args = (["predict", folder, "fun", "--format", "json"] if command == "predict"
                    else ["evaluate", folder, "--data", tsv, "--format", "json"])
            result = zoo(*args, "--results", home / "none.sqlite")
            tally.add("saved run", f"{name} / {command}", classify(result), last_line(result))


def sweep_destinations(tally: Tally, home: Path, archive: Path, base_db: Path, base_run: Path) -> None:
    root = home / "dest"
    root.mkdir()
    a_file = root / "a-file.txt"
    a_file.write_text("mine\n")
    train = ["train", "elman-last", *TINY, "--data", archive, "-q"]
    rank = ["rank", "elman-last", *TINY, "--data", archive]

    def thesis_folder(name: str) -> Path:
        folder = root / name
        (folder / "sub").mkdir(parents=True)
        (folder / "thesis.txt").write_text("three years of work\n")
        (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
        return folder

    def still_there(folder: Path) -> bool:
        return (folder / "thesis.txt").is_file() and (folder / "sub" / "data.csv").is_file()

    # --save into a folder holding the user's files, three ways.
    for how in ("path", "path/", "."):
        folder = thesis_folder(f"thesis-{how.replace('/', 'slash').replace('.', 'dot')}")
        target = "." if how == "." else str(folder) + ("/" if how.endswith("/") else "")
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            result = zoo(*train, "--save", target)
        finally:
            os.chdir(cwd)
        outcome = classify(result) if still_there(folder) else "lost"
        tally.add("destination", f"--save {how} (a folder of the user's files)", outcome, last_line(result))

    saved = root / "saved"
    shutil.copytree(base_run, saved)
    read_only = root / "read-only"
    read_only.mkdir()
    bad_saves = {
        "--save ''": "",
        "--save '   '": "   ",
        "--save an existing file": a_file,
        "--save under a file": a_file / "run",
        "--save /proc/zoo-run": "/proc/zoo-run",
        "--save /proc": "/proc",
        "--save a saved run without --overwrite": saved,
    }
    for name, target in bad_saves.items():
        result = zoo(*train, "--save", target)
        tally.add("destination", name, classify(result), last_line(result))
    result = zoo(*train, "--overwrite")
    tally.add("destination", "--overwrite without --save", classify(result), last_line(result))

    bad_results = {"''": "", "/proc/x.sqlite": "/proc/x.sqlite", "under a file": a_file / "x.sqlite",
                   "a folder": root, "/proc/zoo/x.sqlite": "/proc/zoo/x.sqlite"}
    for what, path in bad_results.items():
        for command in (rank, ["runs"], ["leaderboard"], ["predict", "best", "fun"]):
            result = zoo(*command, "--results", path)
            tally.add("destination", f"{command[0]} --results {what}", classify(result), last_line(result))

    # A runs folder that cannot be created: XDG_DATA_HOME is a file.
    result = zoo(*rank, "--results", root / "ok.sqlite", env={"XDG_DATA_HOME": str(a_file)})
    tally.add("destination", "rank with a runs folder under a file", classify(result), last_line(result))

    if UNPRIVILEGED and not shutil.which("setpriv"):
        print("  (setpriv missing: read-only folder cases skipped)")
        return
    os.chmod(read_only, 0o555)
    try:
        code, out, err = zoo_process(*train, "--save", read_only / "run", unprivileged=True)
        tally.add("destination", "--save in a read-only folder", _classify(code, err, out), err)
        ro_db = read_only / "results.sqlite"
        os.chmod(read_only, 0o755)
        shutil.copy(base_db, ro_db)
        os.chmod(ro_db, 0o444)
        os.chmod(read_only, 0o555)
        code, out, err = zoo_process(*rank, "--results", ro_db, unprivileged=True)
        tally.add("destination", "rank into a read-only database", _classify(code, err, out), err)
        code, out, err = zoo_process(*rank, "--results", root / "writable.sqlite", unprivileged=True,
                                     env={"XDG_DATA_HOME": str(read_only)})
        tally.add("destination", "rank with a read-only runs folder", _classify(code, err, out), err)
    finally:
        os.chmod(read_only, 0o755)


def sweep_good(tally: Tally, home: Path, archive: Path, base_db: Path, base_run: Path) -> None:
    """What must keep working: reads of a read-only database, overwriting a saved run, an old run."""
    root = home / "good"
    root.mkdir()
    if not UNPRIVILEGED or shutil.which("setpriv"):
        folder = root / "read-only"
        folder.mkdir()
        shutil.copy(base_db, folder / "results.sqlite")
        os.chmod(folder / "results.sqlite", 0o444)
        os.chmod(folder, 0o555)
        try:
            for command in (["runs"], ["leaderboard"], ["predict", "best", "fun"]):
                code, out, err = zoo_process(*command, "--results", folder / "results.sqlite", unprivileged=True)
                tally.add("must work", f"{command[0]} on a read-only database",
                          "ok" if code == 0 else f"failed (exit {code})", err)
        finally:
            os.chmod(folder, 0o755)
        leftovers = sorted(p.name for p in folder.iterdir())
        tally.add("must work", "reading left no files behind",
                  "ok" if leftovers == ["results.sqlite"] else "failed", str(leftovers))

    train = ["train", "elman-last", *TINY, "--data", archive, "-q"]
    empty = root / "empty"
    empty.mkdir()
    result = zoo(*train, "--save", empty)
    tally.add("must work", "--save an empty folder", "ok" if result.exit_code == 0 and
              (empty / "run.json").is_file() else f"failed (exit {result.exit_code})", last_line(result))

    again = root / "again"
    shutil.copytree(base_run, again)
    (again / "notes.txt").write_text("my notes on this run\n")
    result = zoo(*train, "--save", again, "--overwrite")
    kept = (again / "notes.txt").is_file()
    tally.add("must work", "--save a saved run --overwrite keeps the user's other files",
              "ok" if result.exit_code == 0 and kept else f"failed (exit {result.exit_code}, notes kept: {kept})",
              last_line(result))
    result = zoo("predict", again, "fun")
    tally.add("must work", "the overwritten run loads", "ok" if result.exit_code == 0 else "failed",
              last_line(result))

    import json

    old = root / "old"
    shutil.copytree(base_run, old)
    meta = json.loads((old / "run.json").read_text())
    meta.pop("checksums", None)
    (old / "run.json").write_text(json.dumps(meta))
    result = zoo("predict", old, "fun", "--format", "json")
    tally.add("must work", "a run saved without checksums still loads",
              "ok" if result.exit_code == 0 else f"failed (exit {result.exit_code})", last_line(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="db,run,dest,good", help="comma-separated sections")
    parser.add_argument("--verbose", action="store_true", help="print every case, not only the bad outcomes")
    options = parser.parse_args()
    sections = set(options.only.split(","))
    tally = Tally(options.verbose)
    home = Path(tempfile.mkdtemp(prefix="zoo-sweep-"))
    os.environ.update(XDG_DATA_HOME=str(home / "share"), XDG_CACHE_HOME=str(home / "cache"))
    for name in ("ZOO_DATA", "ZOO_RESULTS", "ZOO_PLUGINS", "ZOO_REGISTRY"):
        os.environ.pop(name, None)
    try:
        archive = make_imdb_archive(home / "aclImdb_v1.tar.gz", n_per_class=20)
        base_db = home / "base.sqlite"
        result = zoo("rank", "elman-last", *TINY, "--data", archive, "--results", base_db)
        assert result.exit_code == 0, result.output
        base_run = home / "base-run"
        result = zoo("train", "elman-last", *TINY, "--data", archive, "-q", "--save", base_run)
        assert result.exit_code == 0, result.output
        print(f"sweeping with {sys.modules['zoo_core'].__file__}; files in {home}", flush=True)
        if "db" in sections:
            sweep_databases(tally, home, archive, base_db)
        if "run" in sections:
            sweep_saved_runs(tally, home, archive, base_run)
        if "dest" in sections:
            sweep_destinations(tally, home, archive, base_db, base_run)
        if "good" in sections:
            sweep_good(tally, home, archive, base_db, base_run)
        return tally.report()
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
