"""``zoo rank --executor ray`` on a real local Ray instance (no mocks), tiny data, one epoch.

Ray starts once for the module (two CPUs, its workers reused across the
tests); the commands under test reuse it in this process or, as a driver
process of their own, connect to it with ``--address``. Failures are provoked for certain by the
test-only heads of :mod:`tests.failing_plugin`, and an interruption by the
``trap-embedding`` encoder of :mod:`tests.trap_plugin`, which holds a worker
inside its first evaluation until the test lets it go: nothing depends on timing.

`zoo tune --executor ray` shares the module's Ray instance (one module, so
that two Ray instances never start at once on one machine, as they did when
pytest-xdist ran two Ray modules side by side): its trials train as Ray
tasks, the study and the results database stay in this process, and the
workers' per-epoch reports reach the study's pruner through an actor on this
node.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.cli_helpers import TINY_RANK, zoo
from tests.isolation import home_env
from tests.ray_cluster import TIMEOUT_S, cluster  # noqa: F401 (the fixture)
from tests.tune_helpers import (SETTINGS, SPACE, add_a_trial_no_run_can_beat, assert_pruned_after_epoch_1,
                                only_study)
from zoo_core import tuning
from zoo_core.results import ResultsDB

ray = pytest.importorskip("ray")
optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

ROOT = Path(__file__).resolve().parent.parent




def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, XDG_DATA_HOME=str(home / "share"), XDG_CACHE_HOME=str(home / "cache"),
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


# -- a Ray rank is a local rank ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ranked(request, tiny_imdb_archive, tmp_path_factory):
    """The same 2-model deterministic rank, local (its own process: determinism is process-wide) and through Ray."""
    home = tmp_path_factory.mktemp("ranked")
    args = ["rank", "elman-last", "gru-mean", *TINY_RANK, "--set", "train.deterministic=true",
            "--data", str(tiny_imdb_archive)]
    local_db, ray_db = home / "local" / "results.sqlite", home / "ray" / "results.sqlite"
    local = subprocess.Popen([sys.executable, "-m", "zoo_core.cli", *args, "--results", str(local_db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home))
    try:
        request.getfixturevalue("cluster")  # Ray starts while the local rank trains
        with pytest.MonkeyPatch.context() as env:
            env.setenv("XDG_DATA_HOME", str(home / "share"))
            env.setenv("XDG_CACHE_HOME", str(home / "cache"))
            result = zoo(*args, "--results", ray_db, "--executor", "ray")
        stderr = local.communicate(timeout=TIMEOUT_S)[1]
    finally:
        local.kill()
    assert local.returncode == 0, stderr
    return {"local": local_db, "ray": ray_db, "output": result.output, "args": [*args, "--results", ray_db]}


def _board(db_path) -> list[dict]:
    rows = json.loads(zoo("leaderboard", "--format", "json", "--results", db_path).stdout)
    return [{k: v for k, v in row.items() if k not in ("time_s", "tokens_per_s", "best_run")} for row in rows]


def _figures(db_path) -> dict:
    """Each run's metrics and curves (but its timings), by (model, seed)."""
    timings = ("seconds", "tokens_per_sec")
    return {(r.label, r.seed): (r.status, r.val_accuracy, r.val_loss, r.val_auc, r.test_accuracy, r.test_loss,
                                r.test_auc, r.best_epoch, r.params,
                                [{k: v for k, v in c.items() if k not in timings} for c in r.curves])
            for r in ResultsDB(db_path).runs()}


def test_a_ray_rank_gives_the_local_leaderboard_figure_for_figure(ranked):
    assert "2 trained, 0 skipped" in ranked["output"] and ", 0 failed, of 2 runs" in ranked["output"]
    board = _board(ranked["ray"])
    assert [row["model"] for row in board] and board == _board(ranked["local"])
    figures = _figures(ranked["ray"])
    assert set(figures) == {("elman-last", 0), ("gru-mean", 0)}
    assert figures == _figures(ranked["local"])


def test_a_ray_run_is_recorded_on_the_driver_with_its_weights_and_curves(ranked):
    db = ResultsDB(ranked["ray"])
    local = {r.label: r for r in ResultsDB(ranked["local"]).runs()}
    for record in db.runs():
        run_dir = Path(record.run_dir)
        assert run_dir.parent == ranked["ray"].parent / "runs" and (run_dir / "run.json").is_file()
        assert record.host and record.tf_version and record.data_checksum == local[record.label].data_checksum
        events = list((run_dir.parent / "tensorboard").glob(f"{record.label}-seed0-{record.id}/events.out.tfevents.*"))
        assert len(events) == 1 and events[0].stat().st_size > 0
        # The weights that came back score a review as the locally trained ones do.
        scores = [json.loads(zoo("predict", run_id, "a great and moving film", "--format", "json",
                                 "--results", path).stdout)
                  for run_id, path in ((record.id, ranked["ray"]), (local[record.label].id, ranked["local"]))]
        assert scores[0] == scores[1]
    progress = [line for line in ranked["output"].splitlines() if line.startswith("[")]
    assert sorted(line.split(": ")[1].split()[0] for line in progress) == ["completed", "completed",
                                                                          "training", "training"]


def test_rerunning_a_ray_rank_on_the_cluster_trains_nothing_and_prints_only_its_own_lines(ranked, cluster):
    before = {r.id: r.finished_at for r in ResultsDB(ranked["ray"]).runs()}
    # A driver process of its own, connecting to the running cluster as to a multi-node one.
    done = subprocess.run([sys.executable, "-m", "zoo_core.cli", *map(str, ranked["args"]), "--executor", "ray",
                           "--address", cluster["address"]],
                          capture_output=True, text=True, env=_env(ranked["ray"].parent), timeout=TIMEOUT_S,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert {r.id: r.finished_at for r in ResultsDB(ranked["ray"]).runs()} == before
    assert done.stderr.splitlines() == [
        "[1/2] elman-last seed 0: skipped, finished before or running elsewhere",
        "[2/2] gru-mean seed 0: skipped, finished before or running elsewhere",
        f"0 trained, 2 skipped (finished before or running elsewhere), 0 failed, of 2 runs; results in {ranked['ray']}"]


# -- failures -------------------------------------------------------------------------------------------
def test_a_task_that_raises_once_is_retried_and_one_that_always_raises_is_recorded_failed(
        cluster, tiny_imdb_archive, tmp_path):
    from zoo_core.executors.ray_executor import RETRIES

    marker, log, db_path = tmp_path / "flaky-built", tmp_path / "broken-builds", tmp_path / "results.sqlite"
    result = zoo("--registry", cluster["registry"], "rank", "embedding/tanh/last/flaky-sigmoid1",
                 "embedding/tanh/last/broken-sigmoid1", *TINY_RANK, "--set", f"head.marker={marker}",
                 "--set", f"head.log={log}", "--data", tiny_imdb_archive, "--results", db_path, "--executor", "ray",
                 expect=1)
    runs = {r.head: r for r in ResultsDB(db_path).runs()}
    assert marker.exists() and runs["flaky-sigmoid1"].status == "finished"  # failed once, then retried
    assert runs["broken-sigmoid1"].status == "failed"
    assert runs["broken-sigmoid1"].message == "RuntimeError: broken-sigmoid1 fails every build"
    assert log.read_text(encoding="utf-8").splitlines() == ["built"] * (1 + RETRIES)
    assert "failed: RuntimeError: broken-sigmoid1 fails every build" in result.output
    assert "1 trained, 0 skipped (finished before or running elsewhere), 1 failed, of 2 runs" in result.output


# -- Ctrl-C and resume ----------------------------------------------------------------------------------
def _ctrl_c_once_held(args, trap, ready):
    """``zoo ARGS`` (expecting exit 130), Ctrl-C'd once the trap holds a run and ``ready()``; then the trap is let go.

    The signal is sent to this process (the driver), so that it reaches zoo's handler as a terminal's Ctrl-C
    would. A trap never held within TIMEOUT_S is released, so the test fails on the exit code instead of hanging.
    The trap is cleared first: the module shares it, and an earlier Ctrl-C test left its files there.
    """
    for name in ("go", "waiting"):
        (trap / name).unlink(missing_ok=True)

    def send():
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if (trap / "waiting").exists() and ready():
                os.kill(os.getpid(), signal.SIGINT)  # zoo's own handler holds it while it works
                return
            time.sleep(0.1)
        (trap / "go").touch()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        return zoo(*args, expect=130)
    finally:
        sender.join()  # before `go`: the held run must not finish before the Ctrl-C is seen
        (trap / "go").touch()


def test_ctrl_c_cancels_the_runs_in_flight_and_a_rerun_trains_only_those(cluster, tiny_imdb_archive, tmp_path,
                                                                        signals_enabled):
    db_path, trap = tmp_path / "results.sqlite", cluster["trap"]
    # The trapped run waits inside its first evaluation for `go`: cut at its end (--truncating post), every
    # review keeps its start token (id 1), so every batch there holds it. (Padding, id 0, is there only when
    # a review is shorter than maxlen, which the tiny data does not promise.)
    args = ["--registry", cluster["registry"], "rank", "embedding/tanh/last/sigmoid1",
            "trap-embedding/tanh/last/sigmoid1", *TINY_RANK, "--truncating", "post", "--set", "encoder.wait_id=1",
            "--data", tiny_imdb_archive, "--results", db_path, "--executor", "ray"]

    held = lambda: db_path.exists() and len(ResultsDB(db_path).finished()) == 1  # noqa: E731
    interrupted = _ctrl_c_once_held(args, trap, held)
    assert "interrupted: 1 trained, 0 skipped" in interrupted.output
    runs = {r.encoder: r for r in ResultsDB(db_path).runs()}
    assert runs["embedding"].status == "finished"
    assert runs["trap-embedding"].status == "interrupted" and "Ctrl-C" in runs["trap-embedding"].message

    result = zoo(*args)  # resumes
    assert "1 trained, 1 skipped" in result.output
    db = ResultsDB(db_path)
    assert db.get(runs["embedding"].id).finished_at == runs["embedding"].finished_at  # not redone
    assert sorted(r.encoder for r in db.finished()) == ["embedding", "trap-embedding"]


# -- bad input --------------------------------------------------------------------------------------------
def test_ray_flags_and_resources_are_checked_in_one_line(cluster, tiny_imdb_archive, tmp_path):
    base = ["rank", "elman-last", *TINY_RANK, "--data", tiny_imdb_archive, "--results", tmp_path / "r.sqlite"]
    for args, expected in (
            (["--address", "auto"], "--address: only with --executor ray"),
            (["--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run"),
            (["--executor", "ray", "--gpus-per-run", "-1"], "--gpus-per-run"),
            (["--executor", "ray", "--cpus-per-run", "64"], "the Ray cluster has 2 CPU(s)")):
        result = zoo(*base, *args, expect=2)
        assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# Hides Ray from a fresh interpreter, then runs `zoo ARGS`, reporting which heavy modules it imported.
WITHOUT_RAY = textwrap.dedent("""
    import atexit, sys

    class NoRay:
        def find_spec(self, name, path=None, target=None):
            if name == "ray" or name.startswith("ray."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoRay())
    heavy = ("tensorflow", "keras", "numpy", "ray")
    atexit.register(lambda: print("IMPORTED:", sorted(m for m in heavy if m in sys.modules), file=sys.__stdout__))
    from zoo_core.cli import main
    sys.argv[0] = "zoo"
    main(sys.argv[1:])
""")


def test_without_ray_the_ray_executor_says_how_to_install_it(tiny_imdb_archive, tmp_path):
    done = subprocess.run([sys.executable, "-c", WITHOUT_RAY, "rank", "elman-last", "--executor", "ray",
                           "--data", str(tiny_imdb_archive), "--results", str(tmp_path / "r.sqlite")],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=TIMEOUT_S, check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ['Error: --executor ray needs Ray, which is not installed: pip install -e '
                                        '".[ray]" in the rnn-zoo checkout (or pip install "ray>=2.9")']
    assert "IMPORTED: []" in done.stdout


# -- zoo tune --executor ray -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tuned(cluster, tmp_path_factory, tiny_imdb_archive):
    """``zoo tune elman-last --executor ray`` over lr and cell.units, 3 trials of 1 epoch."""
    home = tmp_path_factory.mktemp("tune-ray")
    db_path = home / "results.sqlite"
    common = [*SETTINGS, "--data", str(tiny_imdb_archive), "--results", str(db_path)]
    with home_env(home):
        result = zoo("tune", "elman-last", *SPACE, "--trials", "3", *common, "--executor", "ray")
    return {"db": db_path, "common": common, "output": result.output, "home": home,
            "storage": home / "optuna.sqlite"}


def test_a_study_of_3_trials_through_ray_records_3_validation_only_runs_and_a_best(tuned):
    study = only_study(tuned["storage"])
    trials = study.get_trials()
    assert len(trials) == 3 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    db = ResultsDB(tuned["db"])
    runs = {r.id: r for r in db.runs()}
    assert len(runs) == 3 and {r.status for r in runs.values()} <= {"trial", "pruned"}
    for trial in trials:
        record = runs[trial.user_attrs["run_id"]]
        assert record.spec.train.lr == trial.params["train.lr"]
        assert record.spec.model.params_for("cell") == {"units": trial.params["cell.units"]}
        # Never the test split; the value Optuna holds is the validation one the worker reported.
        assert (record.test_accuracy, record.test_loss, record.test_auc) == (None, None, None)
        assert trial.intermediate_values == {1: pytest.approx(record.val_accuracy)}
        assert record.host and (tuned["home"] / "runs" / record.id / "run.json").is_file()
    assert db.finished() == []
    assert tuning.best_trial(study) is not None
    assert f"best: trial {study.best_trial.number}" in tuned["output"]
    assert "3 trials run now; 3 of 3 in study" in tuned["output"]
    assert sum(line.startswith("[trial ") and ": training" in line for line in tuned["output"].splitlines()) == 3


def test_rerunning_with_more_trials_through_ray_runs_only_the_missing_one(tuned):
    before = {r.id: r.finished_at for r in ResultsDB(tuned["db"]).runs()}
    with home_env(tuned["home"]):
        result = zoo("tune", "elman-last", *SPACE, "--trials", "4", *tuned["common"], "--executor", "ray",
                     "--cpus-per-run", "1")
    assert "1 trial run now; 4 of 4 in study" in result.output
    after = {r.id: r.finished_at for r in ResultsDB(tuned["db"]).runs()}
    assert len(after) == 4 and all(after[i] == t for i, t in before.items())  # finished trials left alone
    assert len(only_study(tuned["storage"]).trials) == 4


def test_a_trial_worse_than_the_median_is_pruned_over_ray(cluster, registry, tiny_imdb_archive, tmp_path):
    from zoo_core.data import load_dataset
    from zoo_core.executors.ray_executor import RayExecutor, RayPruning
    from zoo_core.specs import build_run_spec

    base = build_run_spec(registry, "elman-last", {}, ["encoder.dim=4", "cell.units=4"],
                          {"limit": 40, "epochs": 2, "maxlen": 20, "source": str(tiny_imdb_archive)})
    db = ResultsDB(tmp_path / "results.sqlite")
    storage_file = tuning.storage_path(db.path)
    storage = tuning.open_storage(optuna, storage_file)
    space = tuning.parse_space(registry, base, ["lr=1e-3:1e-1:log"])
    study = tuning.open_study(optuna, storage, base, space, "val_accuracy",
                              pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    add_a_trial_no_run_can_beat(study)
    lines: list[str] = []
    with RayExecutor(registry) as pool, RayPruning(pool, storage_file, study, "val_accuracy") as hooks:
        outcome = tuning.tune(study, space, base, registry, db, 2, runs_dir=tmp_path / "runs", storage=storage,
                              load_dataset=lambda config: load_dataset(config, registry.settings, seed=0),
                              echo=lines.append, executor=pool, trial_hooks=hooks)
    assert not outcome.interrupted
    assert_pruned_after_epoch_1(outcome, study, db)
    assert any(line.startswith(f"[trial {study.trials[1].number}] pruned:") for line in lines)


def test_ray_flags_are_checked_in_one_line(cluster, tiny_imdb_archive, tmp_path):
    base = ["tune", "elman-last", *SPACE, *SETTINGS, "--data", tiny_imdb_archive, "--results", tmp_path / "r.sqlite"]
    for args, expected in (
            (["--address", "auto"], "--address: only with --executor ray"),
            (["--cpus-per-run", "1", "--gpus-per-run", "1"], "--cpus-per-run, --gpus-per-run: only with --executor"),
            (["--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run"),
            (["--executor", "ray", "--cpus-per-run", "64"], "the Ray cluster has 2 CPU(s)")):
        result = zoo(*base, *args, expect=2)
        assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_trial_raising_once_is_retried_and_one_always_raising_is_recorded_failed(cluster, tiny_imdb_archive,
                                                                                  tmp_path):
    from zoo_core.executors.ray_executor import RETRIES

    marker, log, db_path = tmp_path / "flaky-built", tmp_path / "broken-builds", tmp_path / "results.sqlite"
    common = ["--param", "lr=1e-3:1e-1:log", "--trials", "1", *SETTINGS, "--set", "cell.units=4",
              "--data", tiny_imdb_archive, "--executor", "ray"]
    zoo("--registry", cluster["registry"], "tune", "embedding/tanh/last/flaky-sigmoid1", *common,
        "--set", f"head.marker={marker}", "--results", db_path)
    broken = zoo("--registry", cluster["registry"], "tune", "embedding/tanh/last/broken-sigmoid1", *common,
                 "--set", f"head.log={log}", "--results", db_path, expect=1)  # no trial finished: exit 1
    runs = {r.head: r for r in ResultsDB(db_path).runs()}
    assert marker.exists() and runs["flaky-sigmoid1"].status == "trial"  # failed once, then retried
    assert runs["broken-sigmoid1"].status == "failed"
    assert runs["broken-sigmoid1"].message == "RuntimeError: broken-sigmoid1 fails every build"
    assert log.read_text(encoding="utf-8").splitlines() == ["built"] * (1 + RETRIES)
    assert "failed: no score, run" in broken.output and "1 trial run now (1 failed); 1 of 1" in broken.output
    storage = tuning.open_storage(optuna, tmp_path / "optuna.sqlite", create=False)
    states = {s.user_attrs["model"]: [(t.state.name, t.user_attrs.get("zoo_status")) for t in
                                      optuna.load_study(study_name=s.study_name, storage=storage).trials]
              for s in optuna.get_all_study_summaries(storage)}
    assert states == {"embedding/tanh/last/flaky-sigmoid1": [("COMPLETE", None)],
                      "embedding/tanh/last/broken-sigmoid1": [("FAIL", "failed")]}


# Last in the module: cancelling kills the held worker. The trial holds both CPUs (one slot), so the other
# worker the earlier tests warmed stays idle and takes the rerun's trial without a cold start.
def test_ctrl_c_cancels_the_trial_in_flight_and_a_rerun_replaces_it(cluster, tiny_imdb_archive, tmp_path,
                                                                   signals_enabled):
    db_path, trap = tmp_path / "results.sqlite", cluster["trap"]
    # The trial waits inside its first evaluation for `go`: at --maxlen 100 every review of 40 words or fewer
    # is padded, so every batch there holds padding, id 0.
    args = ["--registry", cluster["registry"], "tune", "trap-embedding/tanh/last/sigmoid1",
            "--param", "lr=1e-3:1e-1:log", "--trials", "1", *SETTINGS, "--maxlen", "100", "--set", "cell.units=4",
            "--set", "encoder.wait_id=0", "--data", tiny_imdb_archive, "--results", db_path, "--executor", "ray",
            "--cpus-per-run", "2"]

    interrupted = _ctrl_c_once_held(args, trap, lambda: True)
    assert "interrupted: 1 trial run now (1 interrupted); 0 of 1 in study" in interrupted.output
    (run,) = ResultsDB(db_path).runs()
    assert run.status == "interrupted" and "Ctrl-C" in run.message
    study = only_study(tmp_path / "optuna.sqlite")
    assert [(t.state.name, t.user_attrs["zoo_status"]) for t in study.trials] == [("FAIL", "interrupted")]

    result = zoo(*args)  # resumes: another trial in its place
    assert "1 trial run now; 1 of 1 in study" in result.output
    assert [r.status for r in ResultsDB(db_path).runs()] == ["interrupted", "trial"]
    assert [t.state.name for t in only_study(tmp_path / "optuna.sqlite").trials] == ["FAIL", "COMPLETE"]
