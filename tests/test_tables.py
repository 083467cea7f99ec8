"""Tables fit a 100-column terminal; machine formats keep every cell whole."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.test_leaderboard import db_path  # noqa: F401  (a fixture: a results database of 14 runs)
from zoo_core.cli import cli
from zoo_core.tables import fitted_widths, render

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
