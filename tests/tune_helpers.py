"""What the `zoo tune` tests share (tests/test_tune.py, tests/test_ray_executor.py): tiny settings, a small
search space, the one study a test's Optuna storage holds, and the pruning test's set-up and check."""

from __future__ import annotations

from zoo_core import tuning

#: Tiny data and model: 40 reviews, 1 epoch, 20 tokens, 4-dimensional embedding.
SETTINGS = ["--limit", "40", "--epochs", "1", "--maxlen", "20", "--set", "encoder.dim=4"]
#: The learning rate on a log scale and two cell widths.
SPACE = ["--param", "lr=1e-3:1e-1:log", "--param", "cell.units=3,4"]


def only_study(storage_file):
    """The single study in the Optuna storage file ``storage_file`` (fails the test if there are more)."""
    optuna = tuning.import_optuna()
    storage = tuning.open_storage(optuna, storage_file, create=False)
    (name,) = optuna.study.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def add_a_trial_no_run_can_beat(study) -> None:
    """An earlier trial whose validation accuracy after epoch 1 (1.01) no run can reach: with a median pruner
    from its second trial on, the study's next trial must be pruned after epoch 1."""
    optuna = tuning.import_optuna()
    distribution = optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)
    study.add_trial(optuna.trial.create_trial(params={"train.lr": 1e-2}, distributions={"train.lr": distribution},
                                              value=1.01, intermediate_values={1: 1.01}))


def assert_pruned_after_epoch_1(outcome, study, db) -> None:
    """The trial after :func:`add_a_trial_no_run_can_beat`'s ran, was pruned after epoch 1 and recorded so."""
    assert [t.status for t in outcome.ran] == ["pruned"]
    trial = study.trials[1]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]
    (record,) = db.runs()
    assert record.status == "pruned" and record.train_status == "pruned" and record.epochs_run == 1
    assert record.test_accuracy is None and "pruned after epoch 1" in record.message
    assert trial.user_attrs["run_id"] == record.id and tuning.counted(study) == 2
