"""``zoo tune`` and ``zoo rank --tuned`` on tiny data, with real Optuna storage files.

A study records each trial as a run scored on validation only, resumes (a
rerun adds only the missing trials; an interrupted trial is failed and
replaced; a dead process's trial is abandoned), prunes, shows its trials, and
``zoo rank --tuned`` trains each model at its best settings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import zoo
from tests.isolation import home_env
from tests.tune_helpers import (SETTINGS, SPACE, add_a_trial_no_run_can_beat, assert_pruned_after_epoch_1,
                                only_study)
from zoo_core import tuning
from zoo_core.results import ResultsDB

optuna = pytest.importorskip("optuna")  # the dev extra installs it; without it, see test_without_optuna_*
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tiny_imdb_archive):
    """``zoo tune elman-last`` over lr and cell.units, 3 trials of 1 epoch, once for the module."""
    home = tmp_path_factory.mktemp("tune")
    db_path = home / "results.sqlite"
    common = [*SETTINGS, "--data", str(tiny_imdb_archive), "--results", str(db_path)]
    with home_env(home):
        result = zoo("tune", "elman-last", *SPACE, "--trials", "3", *common)
    return {"db": db_path, "common": common, "output": result.output, "home": home,
            "storage": home / "optuna.sqlite"}


def test_a_study_of_3_trials_records_3_runs_scored_on_validation_only(tuned):
    study = only_study(tuned["storage"])  # Optuna's own storage, beside the results database
    assert study.study_name.startswith("elman-last-")
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    db = ResultsDB(tuned["db"])
    runs = {r.id: r for r in db.runs()}
    assert len(runs) == 3 and {r.status for r in runs.values()} == {"trial"}
    for trial in trials:
        record = runs[trial.user_attrs["run_id"]]
        spec = record.spec
        assert spec.train.lr == trial.params["train.lr"] and 1e-3 <= spec.train.lr <= 1e-1
        assert spec.model.params_for("cell") == {"units": trial.params["cell.units"]}
        assert spec.model.params_for("encoder") == {"dim": 4} and spec.seed == 0
        # The test split is never scored: no test metric is recorded, and the value told to Optuna is validation's.
        assert (record.test_accuracy, record.test_loss, record.test_auc) == (None, None, None)
        assert record.val_accuracy == pytest.approx(trial.value) and len(record.curves) == 1
        assert (tuned["home"] / "runs" / record.id / "run.json").is_file()
    assert db.finished() == []  # no trial is a leaderboard run
    assert study.best_trial.number in (0, 1, 2)
    assert f"best: trial {study.best_trial.number}" in tuned["output"]
    assert "3 trials run now; 3 of 3 in study" in tuned["output"]


def test_show_prints_the_trials_and_the_best_settings(tuned):
    study = only_study(tuned["storage"])
    rows = json.loads(zoo("tune", "elman-last", "--show", *tuned["common"], "--format", "json").stdout)
    assert [r["trial"] for r in rows] == [t.number for t in study.trials]
    assert [r["best"] for r in rows].count(True) == 1
    best = next(r for r in rows if r["best"])
    assert best["trial"] == study.best_trial.number and best["cell.units"] == study.best_params["cell.units"]
    assert {r["status"] for r in rows} == {"complete"} and all(r["run"] for r in rows)
    text = zoo("tune", "elman-last", "--show", *SPACE, *tuned["common"]).stdout  # the exact study, by its space
    assert f"study {study.study_name}" in text and f"best: trial {study.best_trial.number}, val_accuracy" in text
    assert "train.lr" in text and "cell.units" in text


def test_rerunning_with_more_trials_runs_only_the_missing_ones(tuned):
    db = ResultsDB(tuned["db"])
    before = {r.id: r.finished_at for r in db.runs()}
    result = zoo("tune", "elman-last", *SPACE, "--trials", "4", *tuned["common"])
    assert "1 trial run now; 4 of 4 in study" in result.output
    assert [t.state.name for t in only_study(tuned["storage"]).trials] == ["COMPLETE"] * 4
    after = {r.id: r.finished_at for r in ResultsDB(tuned["db"]).runs()}
    assert len(after) == 4 and all(after[i] == t for i, t in before.items())  # finished trials left alone
    again = zoo("tune", "elman-last", *SPACE, "--trials", "4", *tuned["common"])
    assert "0 trials run now" in again.output and len(ResultsDB(tuned["db"]).runs()) == 4


def test_rank_tuned_trains_each_model_at_its_best_settings_and_scores_test(tuned):
    study = only_study(tuned["storage"])
    best = study.best_params
    result = zoo("rank", "elman-last", "--tuned", *tuned["common"])
    assert "elman-last: tuned settings" in result.output and f"trial {study.best_trial.number}" in result.output
    (ranked,) = ResultsDB(tuned["db"]).finished()
    assert ranked.spec.train.lr == best["train.lr"]
    assert ranked.spec.model.params_for("cell") == {"units": best["cell.units"]}
    assert ranked.test_accuracy is not None and ranked.seed == 0  # a fresh run, scored on test
    assert ranked.id not in {t.user_attrs["run_id"] for t in study.trials}
    # The leaderboard says which settings the row used (its learning rate is not the default).
    assert f"lr={best['train.lr']:.4g}" in result.output


def test_rank_tuned_names_a_model_without_a_study(tuned, tmp_path):
    result = zoo("rank", "elman-last", "gru-mean", "--tuned", *tuned["common"], expect=2)
    assert "no tuning study with a finished trial for gru-mean" in result.output
    assert len(result.output.strip().splitlines()) == 1
    fresh = zoo("rank", "elman-last", "--tuned", *SETTINGS, "--results", str(tmp_path / "r.sqlite"), expect=2)
    assert "no tuning studies yet" in fresh.output


def test_rank_tuned_limit_ranks_all_the_data_at_the_settings_tuned_on_a_subset(tuned, tmp_path, capsys):
    import shutil

    shutil.copy(tuned["storage"], tmp_path / "optuna.sqlite")  # the study; a results database of its own
    common = [*tuned["common"][:-1], str(tmp_path / "results.sqlite")]
    common[common.index("--limit") + 1] = "0"  # all of the tiny data
    best = only_study(tuned["storage"]).best_params
    result = zoo("rank", "elman-last", "--tuned", "--tuned-limit", "40", *common)
    (ranked,) = ResultsDB(tmp_path / "results.sqlite").finished()
    assert ranked.spec.data.limit == 0 and ranked.spec.train.lr == best["train.lr"]
    assert ranked.spec.tuned == ("train.lr",)
    assert "lr=tuned" in result.output  # the setup says the learning rate is each model's own
    board = json.loads(zoo("leaderboard", "--results", str(tmp_path / "results.sqlite"), "--format", "json").stdout)
    assert f"lr={best['train.lr']:.4g}" in board[0]["hyperparameters"] and "lr=tuned" in board[0]["setup"]
    # Beside the same model at the default settings: the benchmark's comparison table.
    zoo("rank", "elman-last", *common)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import tuned_vs_default

    assert tuned_vs_default.main(["--results", str(tmp_path / "results.sqlite")]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if "(elman-last)" in line)
    assert row.split(" | ")[1] == f"{best['train.lr']:.3g}" and "(lr tuned per model)" in table
    # Without a study at that limit: one line naming it.
    missing = zoo("rank", "elman-last", "--tuned", "--tuned-limit", "30", *common, expect=2)
    assert "--limit 30" in missing.output and len(missing.output.strip().splitlines()) == 1
    alone = zoo("rank", "elman-last", "--tuned-limit", "40", *common, expect=2)
    assert alone.output.strip() == "Error: --tuned-limit only applies with --tuned"


def test_tuned_settings_belong_to_the_model_not_the_setup(registry):
    from zoo_core.config import RunSpec
    from zoo_core.specs import build_run_spec

    base = build_run_spec(registry, "elman-last", {}, [], {})
    fast, slow = (tuning.apply_params(registry, base, {"train.lr": lr}) for lr in (0.01, 0.002))
    assert fast.tuned == slow.tuned == ("train.lr",) and base.tuned == ()
    assert fast.setup_key() == slow.setup_key() != base.setup_key()  # ranked together, apart from untuned runs
    assert fast.key() != slow.key()
    assert RunSpec.from_json(fast.to_json()) == fast
    assert "tuned" not in json.loads(base.to_json())  # an untuned run's record and key are what they were


@pytest.mark.parametrize("names", [["lr"], ["model.units"], ["train.no_such"], ["data"]])
def test_a_tuned_name_that_is_no_setting_is_refused(names):
    from zoo_core.config import RunSpec
    from zoo_core.errors import ZooError

    values = json.loads(RunSpec.from_dict({"model": {"encoder": "embedding", "cell": "tanh", "aggregator": "last",
                                                      "head": "sigmoid1"}}).to_json())
    with pytest.raises(ZooError, match="is not a data or training setting"):
        RunSpec.from_dict({**values, "tuned": names})


# -- the study's own machinery, in-process ----------------------------------------------------------------
def _base(registry, archive, epochs: int):
    from zoo_core.specs import build_run_spec

    return build_run_spec(registry, "elman-last", {}, ["encoder.dim=4", "cell.units=4"],
                          {"limit": 40, "epochs": epochs, "maxlen": 20, "source": str(archive)})


def _tune(registry, base, db, study, storage, trials, tmp_path, **kwargs):
    from zoo_core.data import load_dataset

    space = tuning.parse_space(registry, base, ["lr=1e-3:1e-1:log"])
    return tuning.tune(study, space, base, registry, db, trials, runs_dir=tmp_path / "runs", storage=storage,
                       load_dataset=lambda config: load_dataset(config, registry.settings, seed=0), **kwargs)


def _open(registry, base, tmp_path, pruner="median"):
    db = ResultsDB(tmp_path / "results.sqlite")
    storage = tuning.open_storage(optuna, tuning.storage_path(db.path))
    space = tuning.parse_space(registry, base, ["lr=1e-3:1e-1:log"])
    return db, storage, tuning.open_study(optuna, storage, base, space, "val_accuracy", pruner=pruner)


def test_a_trial_interrupted_mid_training_is_failed_and_a_rerun_replaces_it(registry, tiny_imdb_archive, tmp_path):
    base = _base(registry, tiny_imdb_archive, epochs=2)
    db, storage, study = _open(registry, base, tmp_path)
    lines: list[str] = []
    # Ctrl-C once the first trial's first epoch is done: it stops before the next batch.
    stop = lambda: any(line.startswith("epoch 1:") for line in lines)  # noqa: E731
    outcome = _tune(registry, base, db, study, storage, 1, tmp_path, echo=lines.append, should_stop=stop)
    assert outcome.interrupted and [t.status for t in outcome.ran] == ["interrupted"]
    assert [t.state.name for t in study.trials] == ["FAIL"] and tuning.counted(study) == 0
    interrupted = db.get(study.trials[0].user_attrs["run_id"])
    assert interrupted.status == "interrupted" and len(interrupted.curves) == 1
    assert interrupted.test_accuracy is None

    db, storage, study = _open(registry, base, tmp_path)  # the same command again
    outcome = _tune(registry, base, db, study, storage, 1, tmp_path, echo=lines.append)
    assert not outcome.interrupted and [t.status for t in outcome.ran] == ["complete"]
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"] and tuning.counted(study) == 1
    assert [r.status for r in db.runs()] == ["interrupted", "trial"]
    assert db.runs()[1].test_accuracy is None and len(db.runs()[1].curves) == 2


def test_a_trial_worse_than_the_median_is_pruned_and_recorded_pruned(registry, tiny_imdb_archive, tmp_path):
    base = _base(registry, tiny_imdb_archive, epochs=3)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1)
    db, storage, study = _open(registry, base, tmp_path, pruner=pruner)
    add_a_trial_no_run_can_beat(study)
    lines: list[str] = []
    outcome = _tune(registry, base, db, study, storage, 2, tmp_path, echo=lines.append)
    assert_pruned_after_epoch_1(outcome, study, db)


def test_a_trial_of_a_dead_process_is_failed_and_its_run_abandoned(registry, tmp_path):
    from zoo_core.config import ModelSpec, RunSpec
    from zoo_core.results import provenance

    db = ResultsDB(tmp_path / "results.sqlite")
    storage = tuning.open_storage(optuna, tmp_path / "optuna.sqlite")
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    distribution = {"train.lr": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no process
    run_id = db.start(RunSpec(ModelSpec("embedding", "tanh", "last", "sigmoid1")))
    crashed, alive = study.ask(distribution), study.ask(distribution)
    for trial, pid in ((crashed, dead.pid), (alive, subprocess.os.getpid())):
        trial.set_user_attr("host", provenance()["host"])
        trial.set_user_attr("pid", pid)
    crashed.set_user_attr("run_id", run_id)
    assert tuning.abandon_dead_trials(optuna, study, storage, db) == [crashed.number]
    states = {t.number: (t.state.name, t.user_attrs.get("zoo_status")) for t in study.trials}
    assert states == {crashed.number: ("FAIL", "abandoned"), alive.number: ("RUNNING", None)}
    assert db.get(run_id).status == "abandoned" and tuning.counted(study) == 0


# -- bad input: one line, exit 2, before any training --------------------------------------------------
BAD_PARAMS = [
    (["lr"], "expected KEY=LOW:HIGH[:log] or KEY=A,B"),
    (["lr="], "expected KEY=LOW:HIGH[:log] or KEY=A,B"),
    (["nonsense=1:2"], "'nonsense' is no setting"),
    (["bogus.x=1:2"], "unknown section 'bogus'"),
    (["encoder.nonsense=1:2"], "the embedding encoder has no parameter 'nonsense'"),
    (["train.nonsense=1:2"], "train has no setting 'nonsense'"),
    (["lr=0:0.1"], "expected float in (0.0, 100.0]"),
    (["lr=0.1:0.01"], "the low end 0.1 must be below the high end 0.01"),
    (["lr=1e-4:1e-2:exp"], "a range is LOW:HIGH or LOW:HIGH:log"),
    (["lr=1:2:3:4"], "a range is LOW:HIGH or LOW:HIGH:log"),
    (["train.clip_norm=0:1:log"], "a log range needs a low end above 0"),
    (["cell.units=4.5:8"], "got '4.5'; expected int in [1"),
    (["cell.units=0:8"], "got 0; expected int in [1"),
    (["encoder.dropout=0:1"], "got 1.0; expected float in [0.0, 0.95]"),
    (["encoder.dim=abc,8"], "got 'abc'; expected int"),
    (["lr=0.001"], "one value is no search"),
    (["train.optimizer=0:1"], "not a number: give its choices"),
    (["train.optimizer=adam,adagrad"], "expected one of adam, lazy-adam, sgd, rmsprop"),
    (["cell.units=4,4"], "a choice is listed twice"),
    (["data.limit=10,20"], "data.limit cannot be tuned"),
    (["train.deterministic=true,false"], "train.deterministic cannot be tuned"),
    (["lr=1e-4:1e-2", "train.lr=1e-3,1e-2"], "train.lr is searched twice"),
    (["lr=1e-4:1e-2", "--lr", "0.01"], "--lr also sets train.lr"),
    (["cell.units=4,8", "--set", "cell.units=4"], "--set cell.units also sets cell.units"),
    ([], "nothing to tune: give the settings to search with --param"),
]


@pytest.mark.parametrize("args, message", BAD_PARAMS, ids=[" ".join(a) or "none" for a, _ in BAD_PARAMS])
def test_a_bad_param_is_one_line_and_exit_2(args, message, tmp_path):
    argv = []
    for arg in args:
        argv += [arg] if arg.startswith("--") or argv[-1:] in (["--lr"], ["--set"]) else ["--param", arg]
    result = zoo("tune", "elman-last", *argv, "--results", str(tmp_path / "r.sqlite"), expect=2)
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "optuna.sqlite").exists()


def test_ray_flags_need_the_ray_executor_and_a_pattern_must_name_one_model(tmp_path):
    # zoo tune --executor ray itself: tests/test_tune_ray.py.
    result = zoo("tune", "elman-last", "--param", "lr=1e-4:1e-2", "--address", "auto", expect=2)
    assert result.stderr.strip() == "Error: --address: only with --executor ray"
    result = zoo("tune", "elman-last", "--param", "lr=1e-4:1e-2", "--executor", "dask", expect=2)
    assert "Invalid value for '--executor': 'dask'" in result.output
    result = zoo("tune", "*-last", "--param", "lr=1e-4:1e-2", expect=2)
    assert "matches" in result.output and "tune one model at a time" in result.output


def test_without_optuna_tune_says_how_to_install_it(tiny_imdb_archive, tmp_path):
    # A fresh interpreter where `import optuna` fails, as it does where the extra is not installed.
    code = ("import sys; sys.modules['optuna'] = None; from zoo_core.cli import main; "
            "main(sys.argv[1:])")
    done = subprocess.run([sys.executable, "-c", code, "tune", "elman-last", "--param", "lr=1e-4:1e-2", *SETTINGS,
                           "--data", str(tiny_imdb_archive), "--results", str(tmp_path / "r.sqlite")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        'Error: zoo tune needs Optuna, an optional extra: pip install -e ".[tune]" (or pip install "optuna>=3")']


def test_a_resumed_study_is_seeded_anew_and_does_not_replay_its_first_suggestions(registry, tmp_path):
    from zoo_core.config import ModelSpec, RunSpec

    base = RunSpec(ModelSpec("embedding", "tanh", "last", "sigmoid1"), seed=7)
    space = tuning.parse_space(registry, base, ["lr=1e-4:1e-1:log", "encoder.dim=4:64"])
    distributions = {p.key: p.distribution(optuna) for p in space}
    suggested = []
    for _ in range(2):  # two processes, one after the other, each asking one trial
        storage = tuning.open_storage(optuna, tmp_path / "optuna.sqlite")
        study = tuning.open_study(optuna, storage, base, space, "val_loss", sampler="random", pruner="none")
        assert isinstance(study.sampler, optuna.samplers.RandomSampler) and study.direction.name == "MINIMIZE"
        trial = study.ask(distributions)
        study.tell(trial, 0.5)
        suggested.append(trial.params)
    assert suggested[0] != suggested[1] and isinstance(suggested[0]["encoder.dim"], int)
    assert study.user_attrs["space"] == ["encoder.dim=4:64", "train.lr=0.0001:0.1:log"]
    assert study.user_attrs["metric"] == "val_loss" and len(study.trials) == 2  # one study, resumed
