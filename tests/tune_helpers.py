"""What the `zoo tune` tests share (tests/test_tune.py, tests/test_tune_ray.py): tiny settings, a small
search space, and the one study a test's Optuna storage holds."""

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
