"""Issue 12 §1-§2: every ``zoo train`` run is recorded like ``zoo rank``'s, its weights beside its database,
``--runs`` / ``$ZOO_RUNS``, and ``zoo runs --prune``.

One module-scoped scratch database holds four tiny ``zoo train`` runs (two identical, one more seed, and one
that diverges, whose weights ``--runs`` sends elsewhere); the prune tests work on a copy of it, so the other
tests never depend on their order.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.cli_helpers import TINY_RANK, zoo
from tests.isolation import home_env
from zoo_core.results import ResultsDB

TRAP_REGISTRY = '[plugins]\nmodules = ["zoo_plugins.builtin", "tests.trap_plugin"]\n'


def recorded_id(result) -> str:
    """The run id from ``zoo train``'s ``recorded as ... run ID in DB (weights in DIR)`` line."""
    line = next(line for line in result.stderr.splitlines() if line.startswith("recorded as "))
    return line.split(" run ", 1)[1].split()[0]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, tiny_imdb_archive):
    """Four ``zoo train`` runs into a scratch ``--results`` database (XDG_DATA_HOME elsewhere).

    The diverged run is trained with ``--runs`` and ``$ZOO_RUNS`` both set: the flag wins.
    """
    home = tmp_path_factory.mktemp("records")
    db_path = home / "scratch" / "results.sqlite"
    train = ["train", "elman-last", *TINY_RANK, "--data", tiny_imdb_archive, "-q", "--results", db_path]
    registry = home / "registry.toml"
    registry.write_text(TRAP_REGISTRY, encoding="utf-8")
    with home_env(home) as env:
        first = zoo(*train)
        again = zoo(*train)  # the same spec and seed: trained and recorded again
        seed_1 = zoo(*train, "--seed", 1, "--format", "json")
        # The test-only trap head (tests/trap_plugin.py) makes the loss NaN at step 2 on any CPU.
        env.setenv("ZOO_RUNS", str(home / "env-runs"))
        diverged = zoo("--registry", registry, "train", "--head", "trap-sigmoid1", "--set", "head.nan_step=2",
                       *TINY_RANK, "--batch-size", 8, "--data", tiny_imdb_archive, "-q", "--results", db_path,
                       "--runs", home / "flag-runs", expect=1)
    return {"home": home, "db": db_path, "args": train, "first": first, "again": again, "seed_1": seed_1,
            "diverged": diverged, "ids": [recorded_id(r) for r in (first, again, seed_1, diverged)]}


def weight_folders(runs_dir) -> list[str]:
    """What the runs folder holds, but for the TensorBoard curves (small; pruning keeps them)."""
    return sorted(p.name for p in Path(runs_dir).iterdir() if p.name != "tensorboard")


def runs_json(db_path, *args) -> list[dict]:
    return json.loads(zoo("runs", "--format", "json", "--results", db_path, *args).stdout)


def board_json(db_path) -> list[dict]:
    return json.loads(zoo("leaderboard", "--setup", "all", "--format", "json", "--results", db_path).stdout)


# -- §1: zoo train records its run ---------------------------------------------------------------
def test_every_train_run_is_recorded_with_its_weights_beside_its_database(scratch):
    db = ResultsDB(scratch["db"])
    records = {r.id: r for r in db.runs()}
    assert list(records) == scratch["ids"]  # in the order trained
    assert [records[i].status for i in scratch["ids"]] == ["finished", "finished", "finished", "diverged"]
    for run_id, record in records.items():
        runs_dir = scratch["home"] / "flag-runs" if record.status == "diverged" else scratch["db"].parent / "runs"
        assert Path(record.run_dir) == runs_dir / run_id
        assert (Path(record.run_dir) / "run.json").is_file()
        assert record.data_checksum and record.tf_version and record.host
        assert len(record.curves) == (record.status == "finished")  # the diverged run ended in epoch 1
    assert not (scratch["home"] / "share" / "rnn-zoo").exists()  # nothing went to the default place
    assert not (scratch["home"] / "env-runs").exists()  # --runs beats $ZOO_RUNS
    line = next(line for line in scratch["first"].stderr.splitlines() if line.startswith("recorded as"))
    run_id = scratch["ids"][0]
    assert line == f"recorded as run {run_id} in {scratch['db']} (weights in {scratch['db'].parent / 'runs' / run_id})"
    assert json.loads(scratch["seed_1"].stdout)["run_id"] == scratch["ids"][2]


def test_training_the_same_run_again_records_another(scratch):
    first, again = (ResultsDB(scratch["db"]).get(i) for i in scratch["ids"][:2])
    assert first.key == again.key and first.id != again.id
    # The leaderboard counts a (spec, seed) once, by its latest run: seeds 0 (again) and 1.
    (row,) = [r for r in board_json(scratch["db"]) if r["model"] == "elman-last"]
    assert row["seeds"] == 2 and row["best_run"] in scratch["ids"][1:3]


def test_zoo_runs_leaderboard_predict_and_evaluate_see_train_runs(scratch):
    listed = runs_json(scratch["db"])
    assert [r["id"] for r in listed] == scratch["ids"]
    (row,) = [r for r in board_json(scratch["db"]) if r["model"] == "elman-last"]
    predicted = zoo("predict", "best", "A wonderful film.", "--results", scratch["db"])
    assert predicted.stderr.startswith(f"run {row['best_run']}: elman-last")
    evaluated = json.loads(zoo("evaluate", row["best_run"][:6], "--format", "json", "--results",
                               scratch["db"]).stdout)
    assert evaluated[0]["run"] == row["best_run"] and 0.0 <= evaluated[0]["accuracy"] <= 1.0


def test_a_train_run_is_the_run_zoo_rank_would_record(scratch, tiny_imdb_archive):
    # Same key, same data: `zoo rank` counts it as finished and would not train it again.
    plan = json.loads(zoo("rank", "elman-last", "--seeds", 3, *TINY_RANK, "--data", tiny_imdb_archive,
                          "--results", scratch["db"], "--dry-run", "--format", "json").stdout)
    assert [p["status"] for p in plan] == ["finished", "finished", "to train"]


def test_a_diverged_train_run_is_recorded_with_its_last_good_weights(scratch):
    result = scratch["diverged"]
    assert "status: nan" in result.stdout
    run_id = scratch["ids"][3]
    assert f"recorded as diverged run {run_id} in {scratch['db']}" in result.stderr
    record = ResultsDB(scratch["db"]).get(run_id)
    assert record.status == "diverged" and record.train_status == "nan" and "step 2" in record.message
    saved = json.loads((Path(record.run_dir) / "run.json").read_text(encoding="utf-8"))
    assert saved["result"]["status"] == "nan"
    assert "note: 1 diverged run(s)" in zoo("leaderboard", "--results", scratch["db"]).stderr


# -- §2: where the weights go ------------------------------------------------------------------
def test_the_runs_folder_rule(tmp_path, monkeypatch):
    from zoo_core.runs import resolve_runs_dir
    from zoo_core.settings import load_settings

    db_path = tmp_path / "somewhere" / "results.sqlite"
    plain = tmp_path / "plain.toml"
    plain.write_text("", encoding="utf-8")
    configured = tmp_path / "configured.toml"
    configured.write_text('[paths]\nruns = "toml-runs"\n', encoding="utf-8")

    assert resolve_runs_dir(None, load_settings(plain), db_path) == (
        tmp_path / "somewhere" / "runs", "beside the results database")
    assert resolve_runs_dir(None, load_settings(configured), db_path)[0] == tmp_path / "toml-runs"
    monkeypatch.setenv("ZOO_RUNS", str(tmp_path / "env-runs"))
    assert resolve_runs_dir(None, load_settings(configured), db_path) == (tmp_path / "env-runs", "$ZOO_RUNS")
    assert resolve_runs_dir(tmp_path / "flag-runs", load_settings(configured), db_path) == (
        tmp_path / "flag-runs", "--runs")
    # The default results database keeps its runs where they always were.
    monkeypatch.delenv("ZOO_RUNS")
    settings = load_settings(plain)
    assert resolve_runs_dir(None, settings, settings.results)[0] == tmp_path / "share" / "rnn-zoo" / "runs"


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file.txt"
    path.write_text("not a folder\n")
    return path


@pytest.mark.parametrize("command", ["train", "rank"])
@pytest.mark.parametrize("runs, says", [
    (lambda tmp: "", "--runs needs a folder path"),
    (lambda tmp: "  ", "--runs needs a folder path"),
    (lambda tmp: _a_file(tmp), "is a file, not a folder"),
    (lambda tmp: _a_file(tmp) / "runs", "is a file, not a folder"),
    (lambda tmp: "/proc/zoo-runs", "cannot create it in /proc"),
], ids=["empty", "blank", "a file", "under a file", "under /proc"])
def test_a_bad_runs_folder_is_one_line_before_any_training(command, runs, says, tiny_imdb_archive, tmp_path):
    db_path = tmp_path / "results.sqlite"
    result = zoo(command, "elman-last", *TINY_RANK, "--data", tiny_imdb_archive, "--results", db_path,
                 "--runs", runs(tmp_path), expect=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], result.output
    assert not db_path.exists() or ResultsDB(db_path).runs() == []  # nothing trained, nothing claimed


# -- zoo runs --prune ---------------------------------------------------------------------------
@pytest.fixture
def pruning(scratch, tmp_path):
    """A copy of the scratch database and its two runs folders (each run's recorded folder moved along)."""
    folder = tmp_path / "copy"
    with contextlib.closing(sqlite3.connect(scratch["db"])) as conn:  # fold the WAL in: the file is the database
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    folder.mkdir()
    shutil.copy(scratch["db"], folder / "results.sqlite")
    shutil.copytree(scratch["db"].parent / "runs", folder / "runs")
    shutil.copytree(scratch["home"] / "flag-runs", folder / "flag-runs")
    with contextlib.closing(sqlite3.connect(folder / "results.sqlite")) as conn:
        for old, new in ((scratch["db"].parent, folder), (scratch["home"] / "flag-runs", folder / "flag-runs")):
            conn.execute("UPDATE runs SET run_dir = replace(run_dir, ?, ?)", (str(old), str(new)))
        conn.commit()
    return {"db": folder / "results.sqlite", "runs": folder / "runs", "home": folder, "ids": scratch["ids"]}


def test_prune_without_a_terminal_lists_and_refuses(pruning):
    result = zoo("runs", "--prune", "--results", pruning["db"], expect=2)
    assert result.stderr.strip().splitlines()[-1].startswith(
        "Error: nothing deleted: no terminal to confirm on; pass --yes to delete these 2 run folder(s), ")
    listed = {line.split()[0] for line in result.stdout.splitlines()[2:]}
    best = {row["best_run"] for row in board_json(pruning["db"])}
    assert listed == set(pruning["ids"][:3]) - best and len(listed) == 2
    # The diverged run's weights are in another runs folder (--runs): never deleted from here.
    assert f"note: 1 run(s) saved outside {pruning['runs']} are left alone" in result.stderr
    assert weight_folders(pruning["runs"]) == sorted(pruning["ids"][:3])  # nothing deleted
    assert all(r["pruned_at"] is None for r in runs_json(pruning["db"]))


def test_prune_keeps_exactly_the_runs_the_leaderboard_points_to(pruning):
    board = board_json(pruning["db"])
    best = {row["best_run"] for row in board}
    before = zoo("predict", "best", "Great.", "--results", pruning["db"]).stderr
    stray = pruning["runs"] / "0123456789ab"  # a folder the database does not know
    (stray / "weights").mkdir(parents=True)
    (stray / "run.json").write_text("{}")
    (pruning["runs"] / "notes.txt").write_text("mine\n")

    result = zoo("runs", "--prune", "--yes", "--results", pruning["db"])
    assert "pruned 2 run(s)" in result.stderr
    assert weight_folders(pruning["runs"]) == sorted(best | {"0123456789ab", "notes.txt"})
    assert (stray / "run.json").is_file()
    diverged = pruning["ids"][3]
    assert (pruning["home"] / "flag-runs" / diverged / "run.json").is_file()  # outside this runs folder
    # The records stay, marked; the leaderboard is unchanged and `best` still loads the same run.
    listed = {r["id"]: r for r in runs_json(pruning["db"])}
    assert set(listed) == set(pruning["ids"])
    assert {i for i, r in listed.items() if r["pruned_at"]} == set(pruning["ids"][:3]) - best
    assert board_json(pruning["db"]) == board
    assert zoo("predict", "best", "Great.", "--results", pruning["db"]).stderr == before
    assert "weights pruned" in zoo("runs", "--results", pruning["db"]).stdout
    gone = sorted(set(pruning["ids"][:3]) - best)[0]
    for command in (["predict", gone, "Fine."], ["evaluate", gone]):
        failed = zoo(*command, "--results", pruning["db"], expect=2)
        lines = failed.output.strip().splitlines()
        assert len(lines) == 1 and f"run {gone}'s weights were pruned" in lines[0], failed.output
    again = zoo("runs", "--prune", "--results", pruning["db"])
    assert f"nothing to prune in {pruning['runs']}" in again.stderr
    # --runs DIR prunes the runs saved in DIR: there, the diverged run's weights.
    elsewhere = zoo("runs", "--prune", "--yes", "--results", pruning["db"], "--runs", pruning["home"] / "flag-runs")
    assert "pruned 1 run(s)" in elsewhere.stderr and not (pruning["home"] / "flag-runs" / diverged).exists()


@pytest.mark.parametrize("args, says", [
    (["--prune", "elman*"], "give no PATTERN or --status"),
    (["--prune", "--status", "failed"], "give no PATTERN or --status"),
    (["--yes"], "--yes goes with --prune"),
])
def test_prune_misuse_is_one_line(args, says, tmp_path):
    ResultsDB(tmp_path / "results.sqlite")
    result = zoo("runs", *args, "--results", tmp_path / "results.sqlite", expect=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.output


def test_a_run_that_recorded_no_folder_is_looked_for_in_the_runs_folder(pruning, tmp_path):
    with contextlib.closing(sqlite3.connect(pruning["db"])) as conn:  # as a run recorded without its folder
        conn.execute("UPDATE runs SET run_dir = ''")
        conn.commit()
    best = zoo("predict", "best", "Great.", "--results", pruning["db"])  # runs/ beside the database
    assert best.stderr.startswith("run ")
    moved = tmp_path / "moved"
    pruning["runs"].rename(moved)
    assert zoo("predict", "best", "Great.", "--results", pruning["db"], "--runs", moved).stdout == best.stdout
    failed = zoo("predict", "best", "Great.", "--results", pruning["db"], expect=2)
    assert failed.output.strip() == f"Error: no saved runs in {pruning['db']} yet (run `zoo rank` or `zoo train` first)"


def test_an_interrupted_run_with_weights_says_how_to_use_them(tmp_path):
    from tests.test_results import FakeResult, make_run

    db = ResultsDB(tmp_path / "results.sqlite")
    folder = tmp_path / "runs" / "abc123"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text("{}")
    db.record(make_run(), FakeResult(status="interrupted"), run_dir=folder, run_id="abc123")
    assert db.get("abc123").status == "interrupted"
    result = zoo("predict", "abc123", "Fine.", "--results", db.path, expect=2)
    assert result.output.strip() == (f"Error: run abc123 was interrupted before it finished; give its folder "
                                     f"{folder} to use the weights it had anyway")


def test_train_runs_write_tensorboard_events_beside_their_weights(scratch):
    """``zoo train`` runs write event files under ``<runs folder>/tensorboard``, read back by TensorBoard's reader."""
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    runs_dir = scratch["db"].parent / "runs"
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(runs_dir))
    multiplexer.Reload()
    found = {name.split("/", 1)[1]: name for name in multiplexer.Runs()}
    db = ResultsDB(scratch["db"])
    for record in db.runs():
        if record.status != "finished":
            continue
        name = next(n for n in found if n.endswith(record.id))
        tensors = multiplexer.Tensors(found[name], "epoch/val_accuracy")
        assert [event.step for event in tensors] == [1]
        value = float(tf_value(tensors[0]))
        assert value == pytest.approx(record.curves[0]["val_accuracy"], rel=1e-6)


def tf_value(event):
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(event.tensor_proto).item()
