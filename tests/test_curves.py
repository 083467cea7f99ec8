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


def _ticks_in_view(axes) -> list[float]:
    low, high = axes.get_xlim()
    return [t for t in axes.get_xticks() if low <= t <= high]


@pytest.mark.parametrize("run_ids, epochs", [(["run-b"], [1]), (["run-a", "run-b"], [1, 2])],
                         ids=["one epoch", "two epochs"])
def test_the_epoch_axes_have_whole_epoch_ticks(run_ids, epochs, db_path):
    from zoo_core.curves import curves_figure

    db = ResultsDB(db_path)
    figure = curves_figure([db.get(run_id) for run_id in run_ids])
    for axes in figure.axes:
        assert _ticks_in_view(axes) == epochs  # 1, not 0.96 0.98 1.00 1.02 1.04


def test_one_legend_below_both_panels_names_every_run_and_both_splits(db_path):
    from zoo_core.curves import curves_figure

    db = ResultsDB(db_path)
    records = [db.get("run-a"), db.get("run-b")]
    figure = curves_figure(records)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (legend,) = figure.legends
    entries = [t.get_text() for t in legend.get_texts()]
    assert entries == [f"{r.id} {r.label}" for r in records] + ["training", "validation"]
    box = legend.get_window_extent(renderer)
    page = figure.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0
    for axes in figure.axes:  # both panels, tick labels included, stay clear of it
        assert axes.get_legend() is None
        assert box.y1 <= axes.get_tightbbox(renderer).y0


def test_training_and_validation_differ_even_for_a_single_epoch(db_path):
    from zoo_core.curves import curves_figure

    figure = curves_figure([ResultsDB(db_path).get("run-b")])
    for axes in figure.axes:
        lines = {line.get_label(): line for line in axes.get_lines()}
        train, val = lines["run-b (train)"], lines["run-b (val)"]
        assert train.get_color() == val.get_color()  # one colour per run
        assert train.get_markerfacecolor() != val.get_markerfacecolor()  # hollow against filled
