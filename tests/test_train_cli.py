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
    header = next(line for line in out.splitlines() if line.startswith("train "))
    assert "2 epochs, batch 8, adam lr 0.001 (constant)," in header


HEADERS = [
    ({"epochs": 1}, "1 epoch, batch 64, adam lr 0.001 (constant), clip 5, patience 2 on val_loss"),
    ({"epochs": 2, "lr": 0.01}, "2 epochs, batch 64, adam lr 0.01 (constant), clip 5,"),
    ({"epochs": 3, "lr_schedule": "cosine"}, "3 epochs, batch 64, adam lr 0.001, cosine decay to 0 over 3 epochs,"),
    ({"epochs": 1, "lr_schedule": "linear", "optimizer": "sgd", "lr": 0.1},
     "1 epoch, batch 64, sgd lr 0.1, linear decay to 0 over 1 epoch,"),
    ({"epochs": 5, "weight_decay": 0.01, "patience": 0}, "adam lr 0.001 (constant), weight decay 0.01, clip 5, "
                                                          "no early stopping"),
]


@pytest.mark.parametrize("train, expected", HEADERS, ids=[str(t) for t, _ in HEADERS])
def test_the_header_names_the_epochs_in_the_singular_or_plural_and_the_lr_schedule(train, expected):
    from zoo_core.cli.train import describe_run
    from zoo_core.config import ModelSpec, RunSpec, TrainConfig

    run = RunSpec(ModelSpec("embedding", "tanh", "last", "sigmoid1"), train=TrainConfig(**train))
    rows = dict(describe_run(run))
    assert expected in rows["train"]
    assert ("1 epochs" not in rows["train"]) and ("1 epoch," in rows["train"]) == (train["epochs"] == 1)


def test_the_schedule_the_header_names_is_the_one_training_uses():
    from zoo_core.config import TrainConfig
    from zoo_core.training import learning_rate

    steps = 30  # 3 epochs of 10 steps: the header says "decay to 0 over 3 epochs"
    for schedule in ("cosine", "linear"):
        lr = learning_rate(TrainConfig(epochs=3, lr_schedule=schedule), total_steps=steps)
        assert float(lr(0)) == pytest.approx(0.001) and float(lr(steps)) == pytest.approx(0.0, abs=1e-9)
        assert 0 < float(lr(steps // 2)) < 0.001
    assert learning_rate(TrainConfig(lr_schedule="constant")) == 0.001


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
    status = next(line for line in result.stdout.splitlines() if line.startswith("status: "))
    assert "keeping the last weights that gave a finite loss" in status and status.count("keep") == 1
    saved = json.loads((tmp_path / "saved" / "run.json").read_text(encoding="utf-8"))
    assert saved["result"]["status"] == "nan"


STATUS_LINES = [
    ("completed", "", 3, "status: completed; kept epoch 3"),
    ("early-stopped", "val_loss did not improve for 2 epoch(s) after epoch 2", 2,
     "status: early-stopped; kept epoch 2 (val_loss did not improve for 2 epoch(s) after epoch 2)"),
    ("interrupted", "interrupted during epoch 4; kept the last good weights", 3,
     "status: interrupted during epoch 4; kept the last good weights"),
    ("interrupted", "interrupted during epoch 4", 3, "status: interrupted during epoch 4; kept the last good weights"),
    ("interrupted", "interrupted during the final evaluation; kept epoch 1's weights, not fully scored", 1,
     "status: interrupted during the final evaluation; kept epoch 1's weights, not fully scored"),
    ("nan", "non-finite loss (nan) at epoch 1, step 2; stopped, keeping the last weights that gave a finite loss", 0,
     "status: nan; non-finite loss (nan) at epoch 1, step 2; stopped, keeping the last weights that gave a finite "
     "loss"),
]


@pytest.mark.parametrize("status, message, best, line", STATUS_LINES,
                         ids=[f"{s} {m[:20]}" for s, m, _, _ in STATUS_LINES])
def test_the_status_line_says_what_was_kept_once(status, message, best, line):
    from types import SimpleNamespace

    from zoo_core.cli.train import status_line

    text = status_line(SimpleNamespace(status=status, message=message, best_epoch=best))
    assert text == line
    assert text.count("kept") + text.count("keeping") == 1 and text.count("interrupted") <= 1


def test_values_not_measured_show_as_a_dash_and_empty_rows_are_left_out():
    from types import SimpleNamespace

    from zoo_core.cli.train import epoch_rows, score_rows

    nan = float("nan")
    epoch = {"epoch": 1, "train_loss": 0.69, "train_accuracy": 0.5, "val_loss": nan, "val_accuracy": nan,
             "val_auc": nan, "seconds": 1.25, "tokens_per_sec": nan}
    empty = {**epoch, "epoch": 2, "train_loss": nan, "train_accuracy": nan}
    assert epoch_rows([epoch, empty]) == [[1, 0.69, 0.5, "-", "-", "-", 1.2, "-"]]
    assert epoch_rows([epoch], missing=None) == [[1, 0.69, 0.5, None, None, None, 1.2, None]]
    unscored = {"accuracy": nan, "loss": nan, "auc": nan}
    result = SimpleNamespace(val=unscored, test={"accuracy": 0.75, "loss": 0.5, "auc": nan})
    assert score_rows(result) == [["test", 0.75, "-", 0.5]]
    assert score_rows(SimpleNamespace(val=unscored, test=unscored)) == []


def test_an_empty_validation_split_shows_dashes_not_nan(tiny_imdb_archive):
    result = zoo("train", "--epochs", 1, "--data", tiny_imdb_archive, *TINY, "-q", "--set", "data.val_fraction=0")
    assert result.exit_code == 0, result.output
    assert "nan" not in result.stdout
    row = next(line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["1"])
    assert row[3:6] == ["-", "-", "-"] and float(row[1]) > 0  # val columns empty, train columns measured
    scores = [line.split()[0] for line in result.stdout.splitlines() if line.startswith(("validation", "test"))]
    assert scores == ["test"]


def test_a_deterministic_run_trains_in_its_own_process_twice_alike(tiny_imdb_archive, tmp_path):
    # A real process: TensorFlow's determinism, which `zoo train` turns on at its start, lasts for the whole
    # process, so it must not leak into this one.
    import os
    import subprocess
    import sys

    env = {**os.environ, "ZOO_RESULTS": str(tmp_path / "results.sqlite")}
    command = [sys.executable, "-m", "zoo_core.cli", "train", "--set", "train.deterministic=true", "--epochs", "1",
               "--data", str(tiny_imdb_archive), *TINY, "-q", "--format", "json"]
    # Both at once (separate processes share nothing but the results database): half the wall-clock.
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                for _ in range(2)]
    outputs = []
    for child in children:
        stdout, stderr = child.communicate(timeout=300)
        assert child.returncode == 0, stderr
        outputs.append(json.loads(stdout))
    assert outputs[0]["run"]["train"]["deterministic"] is True
    assert outputs[0]["history"][0]["train_loss"] == outputs[1]["history"][0]["train_loss"]
    assert outputs[0]["test"] == outputs[1]["test"]
