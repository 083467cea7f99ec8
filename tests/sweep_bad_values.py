"""Sweep: every row of ``tests/test_bad_values.py`` through the real CLI, classified and counted.

Not a test (pytest does not collect it): it reports what each bad value does
instead of failing on the first, so the counts can be compared before and
after a change. Each row runs in-process in its own empty folder, on a tiny
archive it writes. Run from the checkout::

    .venv/bin/python -m tests.sweep_bad_values

Classes: ``clean`` (exit 2, exactly one ``Error:`` line and it is the last,
nothing created), ``traceback`` (an exception escaped), ``accepted`` (exit 0),
``other`` (anything else, e.g. exit 1 after training, or files created).
"""

from __future__ import annotations

import collections
import os
import tempfile
from pathlib import Path

from tests import test_bad_values as table
from tests.cli_helpers import zoo
from tests.imdb_fixtures import make_imdb_archive


def rows() -> list[tuple[str, list[str], str]]:
    """``(command, args, id)`` for every row of the test's table."""
    out = [(command, args, f"{command} {' '.join(map(repr, args))}") for command, args, _ in table.EXPLICIT_ROWS]
    return out + [(p.values[0], p.values[1], p.id) for p in table.declared_rows()]


def classify(result, home: Path) -> tuple[str, str]:
    """The class of one result and a one-line detail."""
    output = result.output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    if escaped or "Traceback" in output:
        return "traceback", repr(result.exception)
    if result.exit_code == 0:
        return "accepted", ""
    created = sorted(p.name for p in home.iterdir())
    if result.exit_code == 2 and len(errors) == 1 and output.strip().splitlines()[-1] == errors[0] and not created:
        return "clean", errors[0]
    last = output.strip().splitlines()[-1:] or [""]
    return "other", f"exit {result.exit_code}, created {created}: {last[0]}"


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="zoo-sweep-"))
    archive = make_imdb_archive(root / "data" / "aclImdb_v1.tar.gz", n_per_class=20)
    counts = collections.Counter()
    for i, (command, args, ident) in enumerate(rows()):
        home = root / f"case{i}"
        home.mkdir()
        os.environ["XDG_CACHE_HOME"], os.environ["XDG_DATA_HOME"] = str(home / "cache"), str(home / "share")
        fill = {table.ARCHIVE: str(archive), table.RESULTS: str(home / "results.sqlite")}
        argv = command.split() + [fill.get(a, a) for a in table.BASE[command] + args]
        kind, detail = classify(zoo(*argv, expect=None), home)
        counts[kind] += 1
        print(f"{kind:9} {ident}  | {detail[:160]}", flush=True)
    print(f"\n{sum(counts.values())} tried: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"(cases ran under {root})")


if __name__ == "__main__":
    main()
