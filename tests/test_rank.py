"""``zoo rank`` on tiny data: the seed grid, leaderboards of real runs, resuming after Ctrl-C or a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.cli_helpers import TINY_RANK, interruptible, zoo
from tests.isolation import home_env
from zoo_core import ranking
from zoo_core.results import ResultsDB

SEED_GRID = {(e, "tanh", a, h) for e in ("one-hot", "embedding") for a in ("last", "mean-states", "mean-logits")
             for h in ("softmax2", "sigmoid1")}



@pytest.fixture(scope="module")
def seed_grid(tmp_path_factory, tiny_imdb_archive):
    """``zoo rank --preset seed-grid`` with tiny models on tiny data, once for the module."""
    home = tmp_path_factory.mktemp("rank")
    with home_env(home):
        db_path = home / "results.sqlite"
        args = ["rank", "--preset", "seed-grid", *TINY_RANK, "--data", str(tiny_imdb_archive), "--results", str(db_path)]
        result = zoo(*args)
    return {"db": db_path, "args": args, "output": result.output, "home": home}


def test_seed_grid_trains_and_saves_all_12(seed_grid):
    db = ResultsDB(seed_grid["db"])
    runs = db.runs()
    assert {(r.encoder, r.cell, r.aggregator, r.head) for r in runs} == SEED_GRID
    assert len(runs) == 12 and {r.status for r in runs} == {"finished"}
    for record in runs:
        spec = record.spec
        assert (spec.data.limit, spec.data.maxlen, spec.train.epochs, spec.model.params_for("cell")) == (
            40, 20, 1, {"units": 4})
        # encoder.dim applies to the embedding encoder only; one-hot has no such hyperparameter.
        assert spec.model.params_for("encoder") == ({"dim": 4} if record.encoder == "embedding" else {})
        assert 0.0 <= record.test_accuracy <= 1.0 and record.params > 0 and len(record.curves) == 1
        assert record.tf_version and record.git_commit is not None and record.host
        assert (seed_grid["home"] / "runs" / record.id / "run.json").is_file()  # beside the results database
    assert len({r.data_checksum for r in runs}) == 1  # every model saw the same data
    assert "[12/12]" in seed_grid["output"] and "12 trained, 0 skipped" in seed_grid["output"]


def test_rank_prints_the_leaderboard_at_the_end(seed_grid):
    tail = seed_grid["output"].split("[12/12]")[1]
    assert "rank" in tail and sum("/tanh/" in line for line in tail.splitlines()) >= 12


def test_leaderboard_github_shows_all_12_rows(seed_grid):
    out = zoo("leaderboard", "--format", "github", "--results", str(seed_grid["db"])).stdout
    rows = [line for line in out.splitlines() if line.startswith("|")][2:]
    assert len(rows) == 12
    assert {tuple(cell.strip() for cell in row.split("|")[2].split("/")) for row in rows} == SEED_GRID


def test_leaderboard_by_aggregator_is_the_marginal(seed_grid):
    board = json.loads(zoo("leaderboard", "--format", "json", "--results", str(seed_grid["db"])).stdout)
    marginal = json.loads(zoo("leaderboard", "--by", "aggregator", "--format", "json",
                              "--results", str(seed_grid["db"])).stdout)
    assert {m["aggregator"] for m in marginal} == {"last", "mean-states", "mean-logits"}
    for row in marginal:
        mine = [b["test_accuracy_mean"] for b in board if b["aggregator"] == row["aggregator"]]
        assert row["models"] == 4 and row["runs"] == 4
        assert row["test_accuracy_mean"] == pytest.approx(sum(mine) / len(mine), abs=1e-3)
    text = zoo("leaderboard", "--by", "aggregator", "--results", str(seed_grid["db"])).stdout
    assert all(a in text for a in ("last", "mean-states", "mean-logits"))


def test_rerunning_a_finished_rank_trains_nothing(seed_grid):
    before = {r.id: r.finished_at for r in ResultsDB(seed_grid["db"]).runs()}
    result = zoo(*seed_grid["args"])
    assert "0 trained, 12 skipped" in result.output
    assert {r.id: r.finished_at for r in ResultsDB(seed_grid["db"]).runs()} == before


def test_dry_run_lists_the_plan(seed_grid):
    out = zoo(*seed_grid["args"], "--dry-run", "--format", "json").stdout
    plan = json.loads(out)
    assert len(plan) == 12 and {p["status"] for p in plan} == {"finished"}


def test_plan_expands_patterns_seeds_and_the_default_preset(registry):
    runs = ranking.plan_runs(registry, ["gru-mean", "*/lstm/*"], None, range(2), ["cell.units=8"], {"epochs": 2})
    assert [(r.model.label, r.seed) for r in runs] == [
        ("gru-mean", 0), ("lstm-last", 0), ("gru-mean", 1), ("lstm-last", 1)]
    assert all(r.train.epochs == 2 and r.model.params_for("cell") == {"units": 8} for r in runs)
    quick = ranking.plan_runs(registry, [], None, [0], [], {})
    assert [r.model.label for r in quick] == list(registry.settings.presets["quick"].models)


def test_plan_rejects_what_fits_nothing(registry):
    from zoo_core.errors import ZooError

    with pytest.raises(ZooError, match="none of the"):
        ranking.plan_runs(registry, ["gru-mean"], None, [0], ["encoder.nonsense=1"], {})
    with pytest.raises(ZooError, match="unknown model"):
        ranking.plan_runs(registry, ["no-such-model"], None, [0], [], {})
    with pytest.raises(ZooError, match="unknown preset"):
        ranking.plan_runs(registry, [], "no-such-preset", [0], [], {})


def _tiny_runs(registry, archive, seeds=2):
    flags = {"limit": 40, "epochs": 1, "maxlen": 20, "source": str(archive)}
    return ranking.plan_runs(registry, ["elman-last"], None, range(seeds), ["cell.units=4", "encoder.dim=4"], flags)


def test_ctrl_c_keeps_finished_runs_and_a_rerun_redoes_only_the_rest(registry, tiny_imdb_archive, tmp_path):
    from zoo_core.training import train

    runs = _tiny_runs(registry, tiny_imdb_archive)
    db = ResultsDB(tmp_path / "results.sqlite")
    trained = []

    def train_then_ctrl_c(run, *args, **kwargs):
        if trained:
            raise KeyboardInterrupt  # Ctrl-C during the second run
        trained.append(run.seed)
        return train(run, *args, **kwargs)

    outcome = ranking.rank(runs, registry, db, echo=lambda line: None, train=train_then_ctrl_c)
    assert outcome.interrupted and len(outcome.trained) == 1
    statuses = {r.seed: r.status for r in db.runs()}
    assert statuses == {0: "finished", 1: "interrupted"}
    first = db.finished()[0]

    retrained = []

    def counting(run, *args, **kwargs):
        retrained.append(run.seed)
        return train(run, *args, **kwargs)

    outcome = ranking.rank(runs, registry, db, echo=lambda line: None, train=counting)
    assert not outcome.interrupted and retrained == [1] and outcome.skipped == 1
    assert sorted(r.seed for r in db.finished()) == [0, 1]
    assert db.get(first.id).finished_at == first.finished_at  # the finished run was left alone


def test_ctrl_c_just_after_a_run_was_recorded_leaves_it_finished(registry, tiny_imdb_archive, tmp_path):
    runs = _tiny_runs(registry, tiny_imdb_archive)
    db = ResultsDB(tmp_path / "results.sqlite")

    def ctrl_c_on_the_finished_line(line):
        if "test accuracy" in line:  # printed after the run is in the database
            raise KeyboardInterrupt

    outcome = ranking.rank(runs, registry, db, echo=ctrl_c_on_the_finished_line)
    assert outcome.interrupted and len(outcome.trained) == 1
    assert [r.status for r in db.runs()] == ["finished"]


def _rank_process(archive, db_path, tmp_path, seeds: int = 2):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "share"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    args = ["rank", "elman-last", "--seeds", str(seeds), *TINY_RANK, "--data", str(archive), "--results", str(db_path)]
    return subprocess.Popen([sys.executable, "-c", "from zoo_core.cli import main; main()", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=interruptible), args


def _wait_for_finished(db_path, count: int, process, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"zoo rank ended early:\n{process.stdout.read()}")
        if db_path.exists() and len(ResultsDB(db_path).finished()) >= count:
            return
        time.sleep(0.2)
    raise AssertionError("no run finished in time")


def _kill_after_first_run(process, db_path, sig) -> str:
    try:
        _wait_for_finished(db_path, 1, process)
        process.send_signal(sig)
        return process.communicate(timeout=60)[0]
    finally:
        process.kill()


def test_a_crashed_rank_resumes_without_redoing_finished_runs(tiny_imdb_archive, tmp_path):
    db_path = tmp_path / "results.sqlite"
    process, args = _rank_process(tiny_imdb_archive, db_path, tmp_path)
    _kill_after_first_run(process, db_path, signal.SIGKILL)
    finished_before = {r.id: r.finished_at for r in ResultsDB(db_path).finished()}
    assert len(finished_before) >= 1

    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
        env.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        result = zoo(*args)
    db = ResultsDB(db_path)
    assert f"{2 - len(finished_before)} trained, {len(finished_before)} skipped" in result.output
    assert sorted(r.seed for r in db.finished()) == [0, 1]
    assert all(db.get(i).finished_at == t for i, t in finished_before.items())
    assert "running" not in {r.status for r in db.runs()}  # the dead process's claim was abandoned


def test_a_plan_mixing_deterministic_and_other_runs_is_refused():
    from zoo_core.config import ModelSpec, RunSpec, TrainConfig
    from zoo_core.errors import ZooError
    from zoo_core.specs import deterministic_ops

    spec = ModelSpec("embedding", "tanh", "last", "sigmoid1")
    plain, exact = RunSpec(spec), RunSpec(spec, train=TrainConfig(deterministic=True))
    assert deterministic_ops([plain, plain]) is False and deterministic_ops([exact]) is True
    assert deterministic_ops([]) is False
    with pytest.raises(ZooError, match="mix deterministic and non-deterministic ops"):
        deterministic_ops([plain, exact])
