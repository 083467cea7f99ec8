"""``zoo curves``: recorded learning curves as a table and an overlay PNG."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from tests.test_results import FakeResult, make_run
from zoo_core.cli import cli
from zoo_core.results import ResultsDB

HISTORIES = {
    "run-a": [{"epoch": 1, "train_loss": 0.69, "val_loss": 0.60, "train_accuracy": 0.55, "val_accuracy": 0.70,
               "val_auc": 0.75, "seconds": 3.0},
              {"epoch": 2, "train_loss": 0.40, "val_loss": 0.65, "train_accuracy": 0.85, "val_accuracy": 0.72,
               "val_auc": 0.78, "seconds": 2.5}],
    "run-b": [{"epoch": 1, "train_loss": 0.70, "val_loss": 0.68, "train_accuracy": 0.50, "val_accuracy": 0.52,
               "val_auc": 0.55, "seconds": 1.0}],
}


@dataclasses.dataclass
class CurveResult(FakeResult):
    curve: tuple = ()

    @property
    def history(self):
        return list(self.curve)


@pytest.fixture
def db_path(tmp_path):
    db = ResultsDB(tmp_path / "results.sqlite")
    for seed, (run_id, history) in enumerate(HISTORIES.items()):
        db.record(make_run(seed=seed), CurveResult(curve=tuple(history)), run_id=run_id)
    return db.path


def test_the_table_has_one_row_per_run_and_epoch_with_the_recorded_values(db_path):
    result = CliRunner().invoke(cli, ["curves", "run-a", "run-b", "--results", str(db_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["run"], r["epoch"]) for r in rows] == [("run-a", 1), ("run-a", 2), ("run-b", 1)]
    assert rows[1]["val loss"] == 0.65 and rows[1]["train acc"] == 0.85 and rows[2]["val auc"] == 0.55


def test_the_plot_is_a_png_with_both_panels_drawn(db_path, tmp_path):
    from matplotlib import image

    out = tmp_path / "curves.png"
    result = CliRunner().invoke(cli, ["curves", "run-a", "run-b", "--results", str(db_path), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    pixels = image.imread(out)
    assert pixels.shape[1] > 1000 and pixels.shape[0] > 400
    left, right = pixels[:, : pixels.shape[1] // 2, :3], pixels[:, pixels.shape[1] // 2:, :3]
    assert left.std() > 0.05 and right.std() > 0.05  # both panels hold curves


@pytest.mark.parametrize("args, message", [
    (["curves", "nope"], "unknown run 'nope'"),
    (["curves", "run"], "run id prefix 'run' is ambiguous"),
    (["curves"], "Missing argument 'RUN...'"),
], ids=["unknown", "ambiguous", "none"])
def test_bad_run_ids_are_one_line_and_exit_2(args, message, db_path):
    result = CliRunner().invoke(cli, args + ["--results", str(db_path)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", [["curves", "run-a"], ["leaderboard"]], ids=["curves", "leaderboard"])
@pytest.mark.parametrize("where, message", [
    ("", "the plot's file name is empty"),
    ("plot.txt", "a plot file ends in .png, .pdf, .svg"),
    ("afile/plot.png", "cannot write"),
], ids=["empty", "not an image", "under a file"])
def test_a_bad_plot_path_is_one_line_and_exit_2(command, where, message, db_path, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    target = str(tmp_path / where) if where else ""
    result = CliRunner().invoke(cli, command + ["--results", str(db_path), "--plot", target])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
