"""Tables fit a 100-column terminal; machine formats keep every cell whole."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from tests.test_leaderboard import db_path  # noqa: F401  (a fixture: a results database of 14 runs)
from zoo_core.cli import cli
from zoo_core.tables import fitted_widths, render, wrap_text

COMMANDS = [
    ["components"],
    ["components", "cell"],
    ["components", "encoder"],
    ["models"],
    ["plugins"],
    ["leaderboard"],
    ["leaderboard", "--by", "cell"],
    ["leaderboard", "--setup", "all"],
    ["runs"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_table_fits_100_columns(args, db_path):  # noqa: F811
    extra = ["--results", str(db_path)] if args[0] in ("leaderboard", "runs") else []
    result = CliRunner(env={"COLUMNS": "100"}).invoke(cli, args + extra)
    assert result.exit_code == 0, result.output
    widest = max(len(line) for line in result.stdout.splitlines())
    assert widest <= 100, f"{widest} columns:\n{result.stdout}"


def test_machine_formats_keep_long_cells_whole():
    rows = [["gru", "y" * 300]]
    assert "y" * 300 in render(rows, ["name", "text"], "github", width=100)
    assert json.loads(render(rows, ["name", "text"], "json", width=100))[0]["text"] == "y" * 300
    wrapped = render(rows, ["name", "text"], "simple", width=100)
    assert max(len(line) for line in wrapped.splitlines()) <= 100 and wrapped.count("y") == 300


@pytest.mark.parametrize("width, expected", [(200, None), (40, [None, 32]), (20, [None, 12]), (10, [None, 8])])
def test_the_widest_column_is_narrowed_first_and_never_below_8(width, expected):
    assert fitted_widths([["gru", "y" * 80]], ["name", "text"], width) == expected


def test_zoo_runs_finds_a_run_by_id_prefix(db_path):  # noqa: F811
    result = CliRunner().invoke(cli, ["runs", "gru-mean-sta", "--results", str(db_path), "--format", "json"])
    rows = json.loads(result.stdout)
    assert {r["id"][:12] for r in rows} == {"gru-mean-sta"} and len(rows) == 3


def test_piped_output_keeps_every_cell_on_one_line(monkeypatch):
    # No $COLUMNS and no terminal: a file or a pipe gets whole ids and names, whatever their length.
    monkeypatch.delenv("COLUMNS", raising=False)
    text = render([["0123456789ab", "z" * 300]], ["id", "text"], "simple")
    assert "z" * 300 in text and "0123456789ab" in text


WRAPS = [
    ("0.8530 ± 0.0041 [0.8428, 0.8632]", 8, ["0.8530 ±", "0.0041", "[0.8428,", "0.8632]"]),
    ("worse (p=2.8e-05)", 5, ["worse", "(p=2.8e-05)"]),  # a number longer than the line stays whole
    ("3f9a2b7c1d0e and abcdefabcdef", 6, ["3f9a2b7c1d0e", "and", "abcdefabcdef"]),  # run ids, digits or not
    ("embedding/gru/mean-states/sigmoid1", 12, ["embedding/", "gru/mean-", "states/", "sigmoid1"]),
    ("06-01 12:34 -0.5 1e-3", 3, ["06-01", "12:34", "-0.5", "1e-3"]),
    ("recurrent_init=orthogonal", 15, ["recurrent_", "init=orthogonal"]),
    ("y" * 20, 8, ["y" * 8, "y" * 8, "y" * 4]),  # a plain word longer than any line: cut anywhere
    ("two\nlines kept", 40, ["two", "lines kept"]),
]


@pytest.mark.parametrize("text, width, lines", WRAPS, ids=[w[0][:20] for w in WRAPS])
def test_wrapping_breaks_at_spaces_and_word_joints_but_never_inside_a_number_or_run_id(text, width, lines):
    assert wrap_text(text, width).splitlines() == lines


@pytest.fixture
def real_ids_db(tmp_path):
    """A results database whose runs have the ids `zoo rank` gives (12 hex digits), in one setup."""
    from tests.test_leaderboard import ACCURACIES, FakeResult, spec_run
    from zoo_core.results import ResultsDB

    db = ResultsDB(tmp_path / "results.sqlite")
    for (encoder, cell, aggregator), accuracies in ACCURACIES.items():
        for seed, accuracy in enumerate(accuracies):
            db.record(spec_run(encoder, cell, aggregator, seed),
                      FakeResult(test_accuracy=accuracy, params=123457 * (seed + 1), wall_time=1234.5 + seed))
    return db.path


@pytest.mark.parametrize("args", [["leaderboard"], ["runs"], ["leaderboard", "--by", "cell"]], ids=" ".join)
def test_at_100_columns_run_ids_and_numbers_stay_whole(args, real_ids_db):
    from zoo_core.results import ResultsDB

    narrow = CliRunner(env={"COLUMNS": "100"}).invoke(cli, args + ["--results", str(real_ids_db)])
    assert narrow.exit_code == 0, narrow.output
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 100
    wide = CliRunner(env={"COLUMNS": "1000"}).invoke(cli, args + ["--results", str(real_ids_db)]).stdout
    ids = {r.id for r in ResultsDB(real_ids_db).runs()}
    number = re.compile(r"[-+\[(]*(p=)?\d[\d,.]*(e[-+]?\d+)?[\]),;%]*")  # 0.8530, [0.84,, (p=2.8e-05), 123,457
    tokens = {t for t in wide.split() if t in ids or number.fullmatch(t)}
    assert tokens and (args[0] != "runs" or ids <= tokens)
    assert tokens <= set(narrow.stdout.split()), sorted(tokens - set(narrow.stdout.split()))
