"""Leaderboards, marginal tables and plots from synthetic result rows (no training)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from tests.test_results import FakeResult
from zoo_core import leaderboard as lb
from zoo_core.cli import cli
from zoo_core.config import DataConfig, ModelSpec, RunSpec, TrainConfig
from zoo_core.results import ResultsDB

# (encoder, cell, aggregator) -> test accuracy per seed
ACCURACIES = {
    ("embedding", "gru", "last"): [0.80, 0.84, 0.82],
    ("embedding", "gru", "mean-states"): [0.86, 0.88, 0.87],
    ("embedding", "tanh", "last"): [0.60, 0.70, 0.62],
    ("embedding", "tanh", "mean-states"): [0.75, 0.73, 0.77],
    ("one-hot", "tanh", "last"): [0.55],
}


def spec_run(encoder, cell, aggregator, seed, **train) -> RunSpec:
    return RunSpec(ModelSpec(encoder, cell, aggregator, "sigmoid1"),
                   data=DataConfig(limit=100), train=TrainConfig(epochs=1, **train), seed=seed)


@pytest.fixture
def db_path(tmp_path):
    db = ResultsDB(tmp_path / "results.sqlite")
    for (encoder, cell, aggregator), accuracies in ACCURACIES.items():
        for seed, accuracy in enumerate(accuracies):
            result = FakeResult(test_accuracy=accuracy, params=100 * len(cell + aggregator), wall_time=1.0 + seed)
            db.record(spec_run(encoder, cell, aggregator, seed), result, run_id=f"{cell}-{aggregator}-{encoder}-{seed}")
    unfinished = db.claim(spec_run("embedding", "lstm", "last", 0))
    db.mark(unfinished, "interrupted")
    return db.path


def invoke(*args):
    # A wide terminal: these tests read cells, which a narrow one wraps (tests/test_tables.py checks the fit).
    result = CliRunner(env={"COLUMNS": "300"}).invoke(cli, list(args), catch_exceptions=False)
    return result


def test_groups_average_over_seeds_against_numpy(db_path):
    groups = lb.group_runs(ResultsDB(db_path).finished())
    assert len(groups) == len(ACCURACIES)
    for group in groups:
        m = group.spec.model
        expected = np.array(ACCURACIES[(m.encoder, m.cell, m.aggregator)])
        stat = group.stat("test_accuracy")
        assert stat.mean == pytest.approx(expected.mean())
        assert stat.n == len(expected) == len(group.runs)
        if len(expected) > 1:
            assert stat.std == pytest.approx(expected.std(ddof=1))
        else:
            assert stat.std is None


def test_leaderboard_ranks_by_mean_test_accuracy(db_path):
    result = invoke("leaderboard", "--results", str(db_path), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    expected = sorted(ACCURACIES.items(), key=lambda item: -np.mean(item[1]))
    assert [r["rank"] for r in rows] == list(range(1, len(ACCURACIES) + 1))
    assert [(r["encoder"], r["cell"], r["aggregator"]) for r in rows] == [k for k, _ in expected]
    assert [r["seeds"] for r in rows] == [len(v) for _, v in expected]
    assert rows[0]["test_accuracy_mean"] == pytest.approx(np.mean(expected[0][1]), abs=1e-4)
    assert rows[0]["test_accuracy_std"] == pytest.approx(np.std(expected[0][1], ddof=1), abs=1e-4)
    assert rows[-1]["test_accuracy_std"] is None  # one seed: no spread
    assert "lstm" not in result.stdout  # interrupted runs are not ranked


def test_sort_by_a_loss_or_time_is_ascending(db_path):
    rows = json.loads(invoke("leaderboard", "--results", str(db_path), "--format", "json", "--sort", "time").stdout)
    times = [r["time_s"] for r in rows]
    assert times == sorted(times) and times[0] < times[-1]


def test_github_table_shows_mean_plus_minus_std_and_a_caption(db_path):
    result = invoke("leaderboard", "--results", str(db_path), "--format", "github")
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("setup ") and "limit=100" in lines[0] and "epochs=1" in lines[0]
    assert "left out" not in lines[0]  # one setup only
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + len(ACCURACIES)  # header, rule, one row per spec
    assert "0.8700 ± 0.0100" in result.stdout  # gru/mean-states: mean 0.87, std 0.01


def test_filters_by_component_and_pattern(db_path):
    rows = json.loads(invoke("leaderboard", "--results", str(db_path), "--format", "json", "--cell", "gru").stdout)
    assert {r["cell"] for r in rows} == {"gru"} and len(rows) == 2
    rows = json.loads(invoke("leaderboard", "--results", str(db_path), "--format", "json", "one-hot/*").stdout)
    assert [r["encoder"] for r in rows] == ["one-hot"]
    result = CliRunner().invoke(cli, ["leaderboard", "--results", str(db_path), "--cell", "nothing"])
    assert result.exit_code == 2 and "no finished runs matching" in result.output


def test_marginal_by_aggregator_averages_spec_means(db_path):
    rows = json.loads(invoke("leaderboard", "--results", str(db_path), "--by", "aggregator", "--format", "json").stdout)
    expected = {}
    for (_, _, aggregator), accuracies in ACCURACIES.items():
        expected.setdefault(aggregator, []).append(np.mean(accuracies))
    assert [r["aggregator"] for r in rows] == sorted(expected, key=lambda a: -np.mean(expected[a]))
    for row in rows:
        assert row["test_accuracy_mean"] == pytest.approx(np.mean(expected[row["aggregator"]]), abs=1e-4)
        assert row["models"] == len(expected[row["aggregator"]])
    text = invoke("leaderboard", "--results", str(db_path), "--by", "aggregator").stdout
    assert "mean-states" in text and "averaged over" in text


def test_csv_output_file(db_path, tmp_path):
    out = tmp_path / "board.csv"
    result = invoke("leaderboard", "--results", str(db_path), "--format", "csv", "--output", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == len(ACCURACIES) and rows[0]["rank"] == "1"


def test_a_hyperparameters_column_appears_only_when_they_vary(db_path):
    text = invoke("leaderboard", "--results", str(db_path), "--format", "github").stdout
    assert "hyperparameters" not in text
    db = ResultsDB(db_path)
    wide = RunSpec(ModelSpec("embedding", "gru", "last", "sigmoid1", params={"cell": {"units": 128}}),
                   data=DataConfig(limit=100), train=TrainConfig(epochs=1), seed=0)
    db.record(wide, FakeResult(test_accuracy=0.5))
    text = invoke("leaderboard", "--results", str(db_path), "--format", "github").stdout
    header = next(line for line in text.splitlines() if line.startswith("|"))
    assert "hyperparameters" in header and "cell.units=128" in text
    assert "| setup" not in header  # one table, one setup: it is in the caption


def test_plot_writes_a_labelled_png(db_path, tmp_path):
    from matplotlib import image

    out = tmp_path / "plot.png"
    result = invoke("leaderboard", "--results", str(db_path), "--plot", str(out))
    assert result.exit_code == 0, result.output
    pixels = image.imread(out)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 1000
    assert pixels[..., :3].std() > 0.05  # something was drawn


def test_missing_or_empty_database_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2 and "no results yet" in result.output and "Traceback" not in result.output
    ResultsDB(tmp_path / "empty.sqlite")
    result = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path / "empty.sqlite")])
    assert result.exit_code == 2 and "no finished runs in" in result.output


def test_runs_lists_every_attempt(db_path):
    result = invoke("runs", "--results", str(db_path), "--format", "json")
    rows = json.loads(result.stdout)
    assert len(rows) == sum(map(len, ACCURACIES.values())) + 1
    assert {r["status"] for r in rows} == {"finished", "interrupted"}
    rows = json.loads(invoke("runs", "--results", str(db_path), "--format", "json", "--status", "interrupted").stdout)
    assert [r["model"] for r in rows] == ["embedding/lstm/last/sigmoid1"]


def test_leaderboard_does_not_import_tensorflow(db_path):
    script = textwrap.dedent(f"""
        import sys
        from zoo_core.cli import main
        try:
            main(["leaderboard", "--results", {str(db_path)!r}])
        except SystemExit as done:
            assert done.code in (0, None), done.code
        assert "tensorflow" not in sys.modules
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gru" in done.stdout


def test_plot_labels_drop_shared_components_and_merge_overlapping_points(db_path):
    groups = lb.group_runs(ResultsDB(db_path).finished())
    labels = lb.short_labels(groups)
    assert "one-hot/tanh/last" in labels and all(not label.endswith("sigmoid1") for label in labels)
    assert lb.colour_kind(groups) == "cell"
    merged = lb.cluster_labels([(0.0, 0.5, "a"), (0.01, 0.5, "b"), (1.0, 0.5, "c")], (0.0, 1.0), (0.0, 1.0))
    assert sorted(text for _, _, text in merged) == ["a,b", "c"]


# -- the plot, read back from the matplotlib Figure ------------------------------------
def _ranked_groups(path):
    return lb.sort_groups(lb.group_runs(ResultsDB(path).finished()), "test_accuracy")


def _error_bars(ax) -> dict[int, object]:
    """Each spec's ErrorbarContainer on ``ax``, by its rank (the plot labels each ``_rank N``)."""
    from matplotlib.container import ErrorbarContainer

    return {int(c.get_label().split()[1]): c for c in ax.containers if isinstance(c, ErrorbarContainer)}


def test_plot_error_bars_are_the_95_ci_of_the_mean_and_only_for_several_seeds(db_path):
    groups = _ranked_groups(db_path)
    figure = lb.plot_figure(groups)
    for ax in figure.axes[:2]:
        bars = _error_bars(ax)
        assert sorted(bars) == list(range(1, len(groups) + 1))
        for rank, container in bars.items():
            stat = groups[rank - 1].stat("test_accuracy")
            (x,), (y,) = container.lines[0].get_data()
            assert y == pytest.approx(stat.mean)
            if stat.n == 1:
                assert not container.has_yerr  # one seed: no interval to draw
                continue
            assert container.has_yerr
            (segment,) = container.lines[2][0].get_segments()
            assert sorted(segment[:, 1]) == pytest.approx(stat.ci95)  # from the CI, not ±1 std
            assert sorted(segment[:, 1]) != pytest.approx((stat.mean - stat.std, stat.mean + stat.std))
    words = " ".join(t.get_text() for t in figure.texts)
    assert "95% confidence interval of the mean over seeds (Student's t)" in words
    assert "2 or more seeds" in words


def _crowded_db(path, times):
    """12 specs: 11 packed in a few percent of the plot (a 4 x 3 grid, two on one spot), one far off.

    Each grid point is a few label heights from the next, so labels beside their points would pile up.
    """
    db = ResultsDB(path)
    specs = [(c, a) for c in ("tanh", "gru", "lstm", "irnn") for a in ("last", "mean-states", "max-states")]
    for i, ((cell, aggregator), wall_time) in enumerate(zip(specs, times)):
        params, accuracy = (21000 + 25 * (i % 4), 0.80 + 0.002 * (i // 4)) if i < 11 else (22000, 0.70)
        if i == 10:
            params, accuracy = 21000, 0.80  # on top of spec 0
        for seed in range(1 if i % 4 == 3 else 3):
            db.record(spec_run("embedding", cell, aggregator, seed),
                      FakeResult(test_accuracy=accuracy + 0.004 * (seed - 1), params=params, wall_time=wall_time),
                      run_id=f"{cell}-{aggregator}-{seed}")
    return db.path


def test_plot_axes_never_start_below_zero(tmp_path):
    times = [1.0 + 0.8 * i for i in range(12)]  # 1 to 9.8 s: a linear axis whose margin would reach below 0
    path = _crowded_db(tmp_path / "r.sqlite", times)
    figure = lb.plot_figure(_ranked_groups(path))
    params_axes, time_axes = figure.axes[:2]
    assert time_axes.get_xscale() == "linear" and min(times) - 0.12 * (max(times) - min(times)) < 0
    for ax in (params_axes, time_axes):
        low, high = ax.get_xlim()
        assert 0 <= low < high
    assert figure.axes[0].get_ylim()[0] >= 0
    assert time_axes.get_xlim()[1] > max(times)  # every point still inside


def test_plot_labels_of_twelve_crowded_models_do_not_overlap(tmp_path):
    path = _crowded_db(tmp_path / "r.sqlite", [5.0 + 0.01 * (i % 4) if i < 11 else 9.0 for i in range(12)])
    groups = _ranked_groups(path)
    figure = lb.plot_figure(groups, metric="test_accuracy")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes[:2]:
        frame = ax.get_window_extent(renderer)
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]
        numbers = sorted(int(n) for text, _ in boxes for n in text.split(","))
        assert numbers == list(range(1, 13))  # every spec numbered once, by its rank
        for i, (text, box) in enumerate(boxes):
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, text
            for other_text, other in boxes[i + 1:]:
                assert not box.overlaps(other), (text, other_text)
            for container in _error_bars(ax).values():  # no number sits on a marker
                centre = ax.transData.transform(np.column_stack(container.lines[0].get_data()))[0]
                assert not box.contains(*centre), text
    side = figure.axes[2]
    rows = [t for t in side.texts if t.get_gid() == "row"]
    assert len(rows) == 12
    labels = lb.short_labels(groups)
    for rank, (row, label) in enumerate(zip(rows, labels), start=1):
        assert row.get_text().split()[:2] == [str(rank), label]
    page = figure.bbox
    boxes = [t.get_window_extent(renderer) for t in side.texts + figure.texts]
    for i, box in enumerate(boxes):
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
        assert not any(box.overlaps(other) for other in boxes[i + 1:])


def test_plot_tick_labels_do_not_run_into_each_other_and_intervals_stay_in_0_1(tmp_path):
    """Two 2-seed specs 1.15M and 1.17M parameters apart, one with seeds far apart (t(0.975, 1) = 12.7).

    Before, the parameters axis had ticks every 2,500 written out in full (1,152,500 ...), which
    overlapped, and the interval reached -0.155 .. 1.319, an accuracy no run can have.
    """
    db = ResultsDB(tmp_path / "r.sqlite")
    for cell, params, accuracies in (("gru", 1_170_369, (0.64, 0.524)), ("tanh", 1_153_665, (0.514, 0.499))):
        for seed, accuracy in enumerate(accuracies):
            db.record(spec_run("embedding", cell, "last", seed),
                      FakeResult(test_accuracy=accuracy, params=params, wall_time=10.0 + seed),
                      run_id=f"{cell}-{seed}")
    groups = _ranked_groups(db.path)
    wide = groups[0].stat("test_accuracy")
    assert wide.ci95 == (0.0, 1.0)  # cut to accuracy's range
    assert lb.Stat.of([0.64, 0.524]).ci95[0] < 0  # the plain interval does reach below zero
    figure = lb.plot_figure(groups)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes[:2]:
        labels = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
        frame = ax.get_window_extent(renderer)
        shown = [t.get_window_extent(renderer) for t in labels
                 if frame.x0 - 1 <= t.get_window_extent(renderer).x0 and t.get_window_extent(renderer).x1 <= frame.x1 + 1]
        assert len(shown) >= 2
        for i, box in enumerate(shown):
            assert not any(box.overlaps(other) for other in shown[i + 1:]), [t.get_text() for t in labels]
    low, high = figure.axes[0].get_ylim()
    assert 0 <= low < high <= 1


# -- setups: never rank unlike runs together --------------------------------------
def _add_other_setup(db_path, **train):
    db = ResultsDB(db_path)
    for seed, accuracy in enumerate([0.95, 0.96]):  # better than anything above: must not outrank it
        db.record(spec_run("embedding", "tanh", "last", seed, **train), FakeResult(test_accuracy=accuracy),
                  run_id=f"other-{seed}")


OTHER_SETUPS = {"patience": {"patience": 5}, "learning rate": {"lr": 0.01}, "optimizer": {"optimizer": "sgd"}}


@pytest.mark.parametrize("train", OTHER_SETUPS.values(), ids=OTHER_SETUPS.keys())
def test_runs_of_another_setup_are_left_out_and_counted(db_path, train):
    _add_other_setup(db_path, **train)  # the latest setup now: the default shows it alone
    result = invoke("leaderboard", "--results", str(db_path))
    assert result.exit_code == 0, result.output
    caption = result.stdout.splitlines()[0]
    first = ResultsDB(db_path).get("gru-last-embedding-0")
    assert f"13 runs of 1 other setup left out ({lb.setup_key(first)}" in caption
    rows = json.loads(invoke("leaderboard", "--results", str(db_path), "--format", "json").stdout)
    assert [r["model"] for r in rows] == ["embedding/tanh/last/sigmoid1"] and rows[0]["seeds"] == 2
    # The first setup, picked by an id prefix: its five specs, none of the other setup's runs.
    rows = json.loads(invoke("leaderboard", "--results", str(db_path), "--format", "json",
                             "--setup", lb.setup_key(first)[:5]).stdout)
    assert len(rows) == len(ACCURACIES) and max(r["test_accuracy_mean"] for r in rows) < 0.9


def test_setup_all_shows_one_table_per_setup_and_marginals_never_mix(db_path):
    _add_other_setup(db_path, batch_size=32)
    result = invoke("leaderboard", "--results", str(db_path), "--setup", "all", "--format", "github")
    assert result.stdout.count("\nsetup ") + result.stdout.startswith("setup ") == 2
    rows = json.loads(invoke("leaderboard", "--results", str(db_path), "--setup", "all", "--format", "json").stdout)
    assert len({r["setup"] for r in rows}) == 2 and len(rows) == len(ACCURACIES) + 1
    # Each row names its setup's id and its settings, in two columns (one name for both lost the id).
    assert {r["setup_id"] for r in rows} == {lb.setup_key(r) for r in ResultsDB(db_path).runs(["finished"])}
    csv_header = invoke("leaderboard", "--results", str(db_path), "--setup", "all", "--format", "csv").stdout
    headers = csv_header.splitlines()[0].split(",")
    assert len(headers) == len(set(headers)), headers
    rows = json.loads(invoke("leaderboard", "--results", str(db_path), "--by", "cell", "--format", "json").stdout)
    assert [(r["cell"], r["runs"]) for r in rows] == [("tanh", 2)]  # the latest setup only


def test_an_unknown_setup_is_one_line_listing_the_setups(db_path):
    result = CliRunner().invoke(cli, ["leaderboard", "--results", str(db_path), "--setup", "zzzz"])
    assert result.exit_code == 2 and "no setup matches --setup 'zzzz'; setups: " in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_setup_id_ignores_model_seed_and_data_location_but_not_the_data():
    base = spec_run("embedding", "gru", "last", 0)
    same = [spec_run("one-hot", "tanh", "mean-states", 5),
            RunSpec(base.model, DataConfig(limit=100, source="/elsewhere/aclImdb"), base.train, seed=3)]
    assert {s.setup_key() for s in same} == {base.setup_key()}
    differ = [RunSpec(base.model, DataConfig(limit=200), base.train), RunSpec(base.model, base.data, TrainConfig())]
    assert base.setup_key() not in {s.setup_key() for s in differ}


# -- statistics ---------------------------------------------------------------------
def test_confidence_interval_is_students_t_over_the_seeds():
    values = [0.86, 0.88, 0.87]
    stat = lb.Stat.of(values)
    half = 4.302652729911275 * np.std(values, ddof=1) / np.sqrt(3)  # t(0.975, df=2), from tables
    assert stat.ci95 == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert lb.Stat.of([0.5]).ci95 is None and lb.Stat.of([0.5]).text() == "0.5000 (1 seed)"


def welch_p(a, b) -> float:
    """One-sided p that mean(b) < mean(a), from Welch's t and Welch-Satterthwaite's df, by hand."""
    from scipy.stats import t as student

    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(a) - np.mean(b)) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return float(student.sf(t, df))


def test_rows_are_marked_tied_or_worse_against_the_leader_by_welchs_test(db_path):
    rows = json.loads(invoke("leaderboard", "--results", str(db_path), "--format", "json").stdout)
    leader = ACCURACIES[("embedding", "gru", "mean-states")]
    assert rows[0]["tied_with_leader"] is True and rows[0]["p_worse_than_leader"] is None
    for row in rows[1:]:
        seeds = ACCURACIES[(row["encoder"], row["cell"], row["aggregator"])]
        if len(seeds) == 1:
            assert row["p_worse_than_leader"] is None and row["tied_with_leader"] is None
        else:
            p = welch_p(leader, seeds)
            assert row["p_worse_than_leader"] == pytest.approx(p, abs=1e-4)
            assert row["tied_with_leader"] == (p >= lb.SIGNIFICANCE)
    text = invoke("leaderboard", "--results", str(db_path)).stdout
    assert "untested (1 seed)" in text and "0.5500 (1 seed)" in text and "leader" in text


def test_a_close_second_is_shown_as_a_tie():
    leader, second = lb.Stat.of([0.86, 0.88, 0.87]), lb.Stat.of([0.85, 0.88, 0.865])
    p = lb.p_worse_than_leader(leader, second, higher_is_better=True)
    assert p == pytest.approx(welch_p(leader.values, second.values)) and p > lb.SIGNIFICANCE
    assert lb.versus_leader(p, False).startswith("tied (p=")
    # Lower is better for losses: the one-sided test turns round.
    assert lb.p_worse_than_leader(lb.Stat.of([0.3, 0.31]), lb.Stat.of([0.5, 0.52]), higher_is_better=False) < 0.05
