"""Bad flag and ``--set`` values: one ``Error:`` line, exit 2, no traceback, nothing created.

Most rows come from the declarations themselves: every data and training
setting (``zoo_core.config``), every hyperparameter of every registered
component, and every flag that maps onto a setting gets NaN, infinities,
values just outside its range, the wrong type and an empty value. A new
setting, hyperparameter or flag is covered without a new row. The rows
written out by hand are the cases from issue 11 that the declarations alone
do not reach: a ``--set`` that a flag overrides, empty names, seeds.
"""

from __future__ import annotations

import functools

import pytest

from tests.cli_helpers import zoo
from zoo_core.cli.options import DATA_FLAGS, TRAIN_FLAGS
from zoo_core.config import KINDS, SEED, DataConfig, TrainConfig, settings_hparams
from zoo_core.params import HParam
from zoo_core.registry import build_registry

ARCHIVE = "{archive}"  # replaced by the tiny archive's path
RESULTS = "{results}"  # replaced by a results database path inside the test's tmp_path
# Every command gets tiny settings first, so an accepted bad value trains in seconds instead of hanging.
BASE = {
    "train": ["--data", ARCHIVE, "--limit", "40", "--epochs", "1", "--maxlen", "20",
              "--set", "cell.units=4", "--set", "encoder.dim=4", "--quiet"],
    "rank": ["--data", ARCHIVE, "--limit", "40", "--epochs", "1", "--maxlen", "20", "--results", RESULTS],
    "diagnose": ["--data", ARCHIVE, "--limit", "40", "--maxlen", "20"],
    "data stats": ["--data", ARCHIVE, "--limit", "40"],
    "leaderboard": ["--results", RESULTS],
    "predict": ["--results", RESULTS],
}


def bad_values(hp: HParam) -> list[tuple[str, str]]:
    """``(text, why)`` values that ``hp`` must refuse when given on the command line."""
    if hp.type is bool:
        return [("maybe", "not a bool")]
    if hp.type is str:
        return [("no-such-value", "not a choice")] if hp.choices else []
    values = [("abc", "not a number")]
    if hp.type is float:
        values += [("nan", "NaN"), ("inf", "infinite"), ("-inf", "infinite")]
    else:
        values += [("1.5", "not an integer"), ("1e3", "not an integer")]
    if hp.low is not None:
        values.append((repr(hp.type(hp.low if hp.low_open else hp.low - 1)), "below the range"))
    if hp.high is not None:
        values.append((repr(hp.type(hp.high if hp.high_open else hp.high + 1)), "above the range"))
    return values


@functools.cache
def _registry():
    return build_registry()


def declared_rows() -> list:
    """Rows for every declared setting, hyperparameter and settings flag."""
    rows = []
    for section, cls in (("data", DataConfig), ("train", TrainConfig)):
        for hp in settings_hparams(cls):
            for text, why in bad_values(hp):
                rows.append(pytest.param("train", ["--set", f"{section}.{hp.name}={text}"], f"parameter {hp.name!r}",
                                         id=f"--set {section}.{hp.name}={text} ({why})"))
            rows.append(pytest.param("train", ["--set", f"{section}.{hp.name}="], "has no value",
                                     id=f"--set {section}.{hp.name}= (empty)"))
    registry = _registry()
    seen = set()  # a declaration shared by many components (a cell's units) is tried on the first
    for kind in KINDS:
        for name in registry.list(kind):
            for hp in registry.get(kind, name).obj.hparams:
                if (kind, hp) in seen:
                    continue
                seen.add((kind, hp))
                pick = [f"--{kind}", name]
                for text, why in bad_values(hp):
                    rows.append(pytest.param("train", pick + ["--set", f"{kind}.{hp.name}={text}"],
                                             f"parameter {hp.name!r}", id=f"{kind} {name}: {hp.name}={text} ({why})"))
                rows.append(pytest.param("train", pick + ["--set", f"{kind}.{hp.name}="], "has no value",
                                         id=f"{kind} {name}: {hp.name}= (empty)"))
    flags = [(flag, DataConfig, field) for flag, field in DATA_FLAGS.items()]
    flags += [(flag, TrainConfig, field) for flag, field in TRAIN_FLAGS.items() if flag != "jit"]
    for flag, cls, field in flags:
        hp = {p.name: p for p in settings_hparams(cls)}[field]
        option = "--" + flag.replace("_", "-")
        for text, why in bad_values(hp) + [("", "empty"), ("  ", "blank")]:
            rows.append(pytest.param("train", [option, text], option, id=f"{option} {text!r} ({why})"))
    for command in ("train", "rank", "diagnose", "data stats"):
        pattern = ["elman-last"] if command == "rank" else []
        for text, why in bad_values(SEED) + [("", "empty")]:
            rows.append(pytest.param(command, pattern + ["--seed", text], "--seed",
                                     id=f"{command} --seed {text!r} ({why})"))
    return rows


EXPLICIT_ROWS = [
    # A --set that a flag overrides is still validated.
    ("train", ["--set", "train.epochs=abc", "--epochs", "1"], "parameter 'epochs'"),
    ("train", ["--set", "train.lr=nan", "--lr", "0.01"], "parameter 'lr'"),
    ("train", ["--set", "data.maxlen=0", "--maxlen", "20"], "parameter 'maxlen'"),
    ("train", ["--set", "data.padding=sideways", "--padding", "pre"], "parameter 'padding'"),
    ("train", ["--set", "data.mask=maybe", "--no-mask"], "parameter 'mask'"),
    ("train", ["--set", "data.source=", "--data", ARCHIVE], "has no value"),
    ("rank", ["elman-last", "--set", "train.epochs=abc", "--epochs", "1"], "parameter 'epochs'"),
    # Zero and NaN at the edges of the ranges that issue 11 found.
    ("train", ["--lr", "0"], "--lr"),
    ("rank", ["elman-last", "--lr", "nan"], "--lr"),
    ("rank", ["elman-last", "--set", "train.weight_decay=nan"], "parameter 'weight_decay'"),
    ("train", ["--set", "encoder.dropout=nan"], "parameter 'dropout'"),
    ("train", ["--set", "train.clip_norm=nan"], "parameter 'clip_norm'"),
    ("train", ["--set", "data.val_fraction=nan"], "parameter 'val_fraction'"),
    # Seeds: numpy and Keras take 0 .. 2**32 - 1; --seeds must not run past it.
    ("train", ["--seed", "-1"], "--seed"),
    ("train", ["--seed", "4294967296"], "--seed"),
    ("rank", ["elman-last", "--seed", "4294967295", "--seeds", "2"], "--seeds"),
    # Empty names never fall back to a default.
    ("train", [""], "model name is empty"),
    ("train", ["--cell", ""], "cell name is empty"),
    ("train", ["--encoder", ""], "encoder name is empty"),
    ("train", ["--aggregator", " "], "aggregator name is empty"),
    ("train", ["--head", ""], "head name is empty"),
    ("train", ["--data", ""], "--data"),
    ("rank", ["--preset", ""], "preset name is empty"),
    ("rank", [""], "model name is empty"),
    ("diagnose", [""], "model name is empty"),
    ("diagnose", ["--cell", ""], "--cell"),
    ("diagnose", ["--run", ""], "RUN is empty"),
    ("data stats", ["--data", ""], "--data"),
    ("data stats", ["--batch-size", "0"], "--batch-size"),
    ("leaderboard", ["--cell", ""], "--cell"),
    ("predict", ["", "Great film."], "RUN is empty"),
]


@pytest.mark.parametrize("command, args, message", [
    *[pytest.param(*row, id=f"{row[0]} {' '.join(map(repr, row[1]))}") for row in EXPLICIT_ROWS],
    *declared_rows(),
])
def test_bad_value_is_one_error_line_exit_2_and_creates_nothing(command, args, message, tiny_imdb_archive, tmp_path):
    fill = {ARCHIVE: str(tiny_imdb_archive), RESULTS: str(tmp_path / "results.sqlite")}
    argv = command.split() + [fill.get(a, a) for a in BASE[command] + args]
    result = zoo(*argv, expect=None)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2 and "Traceback" not in result.output, (argv, result.output)
    assert len(errors) == 1 and result.output.strip().splitlines()[-1] == errors[0], result.output
    assert message in errors[0], result.output
    assert not list(tmp_path.iterdir()), "a refused command created files (results, cache or a run)"
