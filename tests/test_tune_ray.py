"""``zoo tune --executor ray`` on a real local Ray instance (no mocks), tiny data, 1-2 epochs.

Ray starts once for the module (two CPUs); the commands under test reuse it
in this process. Trials train as Ray tasks, two at once; the study (Optuna's
storage) and the results database stay in this process, and the workers'
per-epoch reports reach the study's pruner through an actor on this node.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.cli_helpers import zoo
from tests.isolation import home_env
from tests.ray_cluster import TIMEOUT_S, cluster  # noqa: F401 (the fixture)
from zoo_core import tuning
from zoo_core.results import ResultsDB

ray = pytest.importorskip("ray")
optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

SETTINGS = ["--limit", "40", "--epochs", "1", "--maxlen", "20", "--set", "encoder.dim=4"]
SPACE = ["--param", "lr=1e-3:1e-1:log", "--param", "cell.units=3,4"]


def _study(storage_file):
    storage = tuning.open_storage(optuna, storage_file, create=False)
    (name,) = optuna.study.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)




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
    study = _study(tuned["storage"])
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
    assert len(_study(tuned["storage"]).trials) == 4


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
    # An earlier trial whose validation accuracy after epoch 1 no run can reach: the next one must be pruned there.
    distribution = optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)
    study.add_trial(optuna.trial.create_trial(params={"train.lr": 1e-2}, distributions={"train.lr": distribution},
                                              value=1.01, intermediate_values={1: 1.01}))
    lines: list[str] = []
    with RayExecutor(registry) as pool, RayPruning(pool, storage_file, study, "val_accuracy") as hooks:
        outcome = tuning.tune(study, space, base, registry, db, 2, runs_dir=tmp_path / "runs", storage=storage,
                              load_dataset=lambda config: load_dataset(config, registry.settings, seed=0),
                              echo=lines.append, executor=pool, trial_hooks=hooks)
    assert [t.status for t in outcome.ran] == ["pruned"] and not outcome.interrupted
    trial = study.trials[1]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]
    (record,) = db.runs()
    assert record.status == "pruned" and record.train_status == "pruned" and record.epochs_run == 1
    assert record.test_accuracy is None and "pruned after epoch 1" in record.message
    assert trial.user_attrs["run_id"] == record.id and tuning.counted(study) == 2
    assert any(line.startswith(f"[trial {trial.number}] pruned:") for line in lines)


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
def test_ctrl_c_cancels_the_trial_in_flight_and_a_rerun_replaces_it(cluster, tiny_imdb_archive, tmp_path):
    db_path, trap = tmp_path / "results.sqlite", cluster["trap"]
    # The trial waits inside its first evaluation for `go`: at --maxlen 100 every review of 40 words or fewer
    # is padded, so every batch there holds padding, id 0.
    args = ["--registry", cluster["registry"], "tune", "trap-embedding/tanh/last/sigmoid1",
            "--param", "lr=1e-3:1e-1:log", "--trials", "1", *SETTINGS, "--maxlen", "100", "--set", "cell.units=4",
            "--set", "encoder.wait_id=0", "--data", tiny_imdb_archive, "--results", db_path, "--executor", "ray",
            "--cpus-per-run", "2"]

    def ctrl_c_once_the_trial_is_held():
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if (trap / "waiting").exists():
                os.kill(os.getpid(), signal.SIGINT)  # zoo's own handler holds it while it tunes
                return
            time.sleep(0.1)
        (trap / "go").touch()  # never held: release the trap, so the test fails on the exit code instead of hanging

    sender = threading.Thread(target=ctrl_c_once_the_trial_is_held, daemon=True)
    sender.start()
    try:
        interrupted = zoo(*args, expect=130)
    finally:
        (trap / "go").touch()  # only now: the held trial must not finish before the Ctrl-C is seen
        sender.join()
    assert "interrupted: 1 trial run now (1 interrupted); 0 of 1 in study" in interrupted.output
    (run,) = ResultsDB(db_path).runs()
    assert run.status == "interrupted" and "Ctrl-C" in run.message
    study = _study(tmp_path / "optuna.sqlite")
    assert [(t.state.name, t.user_attrs["zoo_status"]) for t in study.trials] == [("FAIL", "interrupted")]

    result = zoo(*args)  # resumes: another trial in its place
    assert "1 trial run now; 1 of 1 in study" in result.output
    assert [r.status for r in ResultsDB(db_path).runs()] == ["interrupted", "trial"]
    assert [t.state.name for t in _study(tmp_path / "optuna.sqlite").trials] == ["FAIL", "COMPLETE"]
