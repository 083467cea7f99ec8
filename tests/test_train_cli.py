"""``zoo train`` end to end on a tiny IMDB-layout archive the tests make."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from zoo_core.cli import cli

TINY = ["--set", "cell.units=8", "--set", "encoder.dim=8", "--batch-size", "8", "--maxlen", "40"]


def zoo(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_help_teaches_by_example():
    result = zoo("train", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "zoo train --encoder embedding --cell gru --aggregator mean-states --head sigmoid1" in result.output
    for flag in ("--encoder", "--set", "--epochs", "--data", "--save", "--jit", "--seed"):
        assert flag in result.output


@pytest.mark.parametrize("args,expected", [
    (["--cell", "tahn"], "unknown cell 'tahn'; did you mean 'tanh'"),
    (["--set", "cell.unitz=3"], "has no parameter 'unitz'"),
    (["--set", "cell.units=many"], "parameter 'units' got 'many'"),
    (["--set", "units=3"], "expected SECTION.KEY=VALUE"),
    (["no-such-model"], "unknown model 'no-such-model'"),
])
def test_bad_input_is_one_line_and_exit_2(args, expected, tiny_imdb_archive):
    result = zoo("train", *args, "--data", tiny_imdb_archive)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0]


def test_missing_data_is_one_line_and_exit_2(tmp_path):
    result = zoo("train", "--data", tmp_path / "nowhere.tar.gz", "--epochs", "1")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in result.output


def test_train_prints_spec_curve_and_scores(tiny_imdb_archive):
    result = zoo("train", "--encoder", "embedding", "--cell", "tanh", "--aggregator", "mean-states",
                 "--head", "sigmoid1", "--epochs", 2, "--data", tiny_imdb_archive, *TINY)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "embedding/tanh/mean-states/sigmoid1" in out and "cell.units=8" in out
    assert "train_loss" in out and "val_auc" in out and "tokens/s" in out
    table = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit() and len(line.split()) == 8]
    assert [row[0] for row in table] == ["1", "2"]
    scores = {line.split()[0]: line.split()[1:] for line in out.splitlines()
              if line.startswith(("validation", "test"))}
    assert set(scores) == {"validation", "test"}
    assert 0.0 <= float(scores["test"][0]) <= 1.0
    assert "epoch 1/2" in result.stderr  # progress goes to stderr


def test_save_writes_a_run_that_reloads_to_the_same_scores(tiny_imdb_archive, tmp_path, registry):
    runs = pytest.importorskip("zoo_core.runs")
    from zoo_core.data import load_dataset
    from zoo_core.training import evaluate

    save = tmp_path / "run"
    result = zoo("train", "--cell", "gru", "--aggregator", "attention", "--epochs", 1,
                 "--data", tiny_imdb_archive, *TINY, "-q", "--save", save)
    assert result.exit_code == 0, result.output
    scores = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()
              if line.startswith(("validation", "test"))}
    model, vocab, run = runs.load_run(save, registry)
    assert run.model.combo == "embedding/gru/attention/sigmoid1" and run.train.epochs == 1
    dataset = load_dataset(run.data, registry.settings, seed=run.seed, progress=False)
    assert evaluate(model, dataset.test, run)["accuracy"] == pytest.approx(float(scores["test"][0]), abs=1e-4)


def test_json_output_holds_the_learning_curve(tiny_imdb_archive):
    result = zoo("train", "elman-last", "--epochs", 2, "--data", tiny_imdb_archive, *TINY, "-q",
                 "--format", "json", "--lr", "0.01", "--set", "train.patience=0")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "completed" and data["run"]["model"]["name"] == "elman-last"
    assert [h["epoch"] for h in data["history"]] == [1, 2]
    assert np.isfinite(data["test"]["accuracy"])
    assert result.stderr.count("epoch 1/2") == 0  # -q: no progress


def test_a_diverging_run_exits_1_with_the_step_named(tiny_imdb_archive, tmp_path):
    # The test-only trap head (tests/trap_plugin.py) makes the loss NaN at step 2 on any CPU.
    registry = tmp_path / "registry.toml"
    registry.write_text('[plugins]\nmodules = ["zoo_core.encoders", "zoo_core.cells", "zoo_core.aggregators", '
                        '"zoo_core.heads", "tests.trap_plugin"]\n', encoding="utf-8")
    result = zoo("--registry", registry, "train", "--head", "trap-sigmoid1", "--set", "head.nan_step=2",
                 "--epochs", 1, "--data", tiny_imdb_archive, *TINY, "-q", "--save", tmp_path / "saved")
    assert result.exit_code == 1
    assert "status: nan" in result.stdout and "non-finite loss (nan) at epoch 1, step 2;" in result.stdout
    assert "kept the last good weights" in result.stdout
    saved = json.loads((tmp_path / "saved" / "run.json").read_text(encoding="utf-8"))
    assert saved["result"]["status"] == "nan"
