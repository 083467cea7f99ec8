"""``zoo diagnose``: per-step gradient norms against a hand-written NumPy BPTT, for every cell, and the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tests.registered import registered
from zoo_core.cli import cli
from zoo_core.config import ModelSpec
from zoo_core.diagnose import GradientProfile, plot, profile, sample_steps, table
from zoo_core.model import Classifier

VOCAB = 15


def pad(seqs, steps, padding):
    ids = np.zeros((len(seqs), steps), np.int32)
    mask = np.zeros((len(seqs), steps), bool)
    for row, seq in enumerate(seqs):
        span = slice(steps - len(seq), steps) if padding == "pre" else slice(0, len(seq))
        ids[row, span], mask[row, span] = seq, True
    return ids, mask


def tiny_batch(padding="pre", steps=8, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(3, VOCAB, n) for n in (8, 5, 2, 6)]
    ids, mask = pad(seqs, steps, padding)
    return SimpleNamespace(ids=ids, mask=mask, labels=np.array([1, 0, 1, 0], np.int32))


def tiny_model(registry, cell="tanh", aggregator="last", seed=0, scale=0.6):
    declared = {p.name for p in registry.get("cell", cell).obj.hparams}
    params = {"encoder": {"dim": 3}, "cell": {"units": 4} if "units" in declared else {}}
    spec = ModelSpec("embedding", cell, aggregator, "sigmoid1", params=params)
    model = Classifier(spec, registry, VOCAB)
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:  # random weights, so every path carries gradient
        v.assign(rng.normal(0, scale, v.shape).astype(np.float32))
    return model


def numpy_elman_grads(model, batch, aggregator):
    """Hand-written BPTT for embedding -> tanh -> (last | mean-states) -> sigmoid1: ||dL_i/dh_t||."""
    table_ = model.encoder.table.numpy()
    kernel, bias = model.cell.kernel.numpy(), model.cell.bias.numpy()
    recurrent = model.cell.recurrent_kernel.numpy()
    head_kernel, head_bias = model.head.kernel.numpy()[:, 0], model.head.bias.numpy()[0]
    norms = np.zeros(batch.ids.shape)
    for i, (ids, real) in enumerate(zip(batch.ids, batch.mask)):
        steps = np.flatnonzero(real)  # real steps are contiguous under pre- or post-padding
        h = np.zeros(recurrent.shape[0])
        states = {}
        for t in steps:
            h = np.tanh(table_[ids[t]] @ kernel + bias + h @ recurrent)
            states[t] = h
        if aggregator == "last":
            z = states[steps[-1]] @ head_kernel + head_bias
        else:
            z = np.mean([states[t] for t in steps], axis=0) @ head_kernel + head_bias
        dz = 1 / (1 + np.exp(-z)) - batch.labels[i]  # dBCE/dlogit
        carried = np.zeros_like(h)  # dL/dh_t arriving from step t+1 through U
        for t in steps[::-1]:
            direct = dz * head_kernel * (1.0 if aggregator == "last" and t == steps[-1] else 0.0)
            if aggregator == "mean-states":
                direct = dz * head_kernel / len(steps)
            grad = direct + carried
            norms[i, t] = np.linalg.norm(grad)
            carried = (grad * (1 - states[t] ** 2)) @ recurrent.T
    return norms


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("aggregator", ["last", "mean-states"])
def test_gradient_norms_match_a_numpy_bptt(registry, aggregator, padding):
    model = tiny_model(registry, aggregator=aggregator)
    batch = tiny_batch(padding)
    got = profile(model, batch)
    np.testing.assert_allclose(got.norms, numpy_elman_grads(model, batch, aggregator), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("cell", registered("cell"))
def test_every_cell_gives_a_profile(registry, cell):
    model = tiny_model(registry, cell=cell, scale=0.3)
    batch = tiny_batch("pre")
    got = profile(model, batch)
    assert got.norms.shape == batch.ids.shape and np.all(np.isfinite(got.norms))
    assert np.all(got.norms[~batch.mask] == 0)  # padded steps have no h_t of their own
    assert np.all(got.norms[:, -1] > 0)  # the last step feeds the loss directly
    # The zero probe does not change the forward pass.
    logits = model(tf.constant(batch.ids), tf.constant(batch.mask))
    assert got.loss == pytest.approx(float(model.loss(tf.constant(batch.labels), logits)), rel=1e-5)


def test_profile_statistics():
    norms = np.array([[0.0, 1.0, 2.0, 4.0], [0.0, 0.0, 6.0, 8.0]])
    real = norms > 0
    p = GradientProfile("m", norms, real, loss=0.5)
    np.testing.assert_allclose(p.mean(), [np.nan, 1.0, 4.0, 6.0])
    np.testing.assert_allclose(p.quantile(0.5), [np.nan, 1.0, 4.0, 6.0])
    assert p.decay() == pytest.approx(1.0 / 6.0)


def test_sample_steps_spreads_rows_and_keeps_both_ends():
    chosen = sample_steps(200, 20)
    assert chosen[0] == 0 and chosen[-1] == 199 and len(chosen) == 20
    assert chosen == sorted(set(chosen))
    assert sample_steps(5, 20) == [0, 1, 2, 3, 4]


def test_table_rows_and_plot(tmp_path):
    rng = np.random.default_rng(0)
    real = np.ones((3, 30), bool)
    real[0, :10] = False
    profiles = [GradientProfile(name, rng.random((3, 30)) * real, real, 0.7) for name in ("tanh", "gru")]
    headers, rows = table(profiles, rows=5)
    assert headers == ["t", "real", "tanh", "gru"]
    assert [r[0] for r in rows] == [1, 8, 15, 23, 30]
    assert rows[0][1] == 2 and rows[-1][1] == 3
    assert rows[-1][2] == pytest.approx(profiles[0].mean()[-1], rel=1e-3)
    path = plot(profiles, tmp_path / "sub" / "grads.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_compares_cells_and_writes_a_png(tiny_imdb_archive, tmp_path):
    png = tmp_path / "grads.png"
    result = CliRunner().invoke(cli, [
        "diagnose", "--cell", "tanh,gru", "--steps", "20", "--batch-size", "6", "--set", "cell.units=8",
        "--data", str(tiny_imdb_archive), "--output", str(png), "--rows", "5",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if line.split()[:2] == ["t", "real"])
    assert header.split() == ["t", "real", "tanh", "gru"]
    rows = [line.split() for line in result.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [r[0] for r in rows] == [str(t + 1) for t in sample_steps(20, 5)]
    assert "first/last real step" in result.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_cell_is_one_line(tiny_imdb_archive):
    result = CliRunner().invoke(cli, ["diagnose", "--cell", "tanh,grux", "--data", str(tiny_imdb_archive)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "unknown cell 'grux'" in result.output


def _csv_rows(output: str) -> list[list[str]]:
    import csv
    import io

    return list(csv.reader(io.StringIO(output.strip())))


def test_cli_diagnoses_a_saved_runs_trained_weights(registry, tiny_imdb_archive, tmp_path):
    import dataclasses

    from tests.cli_helpers import TINY_RANK, zoo
    from zoo_core.data import load_dataset
    from zoo_core.runs import load_run

    run_dir = tmp_path / "run"
    zoo("train", "elman-last", *TINY_RANK, "--epochs", "2", "--data", tiny_imdb_archive, "--save", run_dir, "-q")
    trained = _csv_rows(zoo("diagnose", "--run", run_dir, "--data", tiny_imdb_archive, "--format", "csv").stdout)
    tiny = [a for a in TINY_RANK if a not in ("--epochs", "1")]  # diagnose trains nothing: no --epochs
    fresh = _csv_rows(zoo("diagnose", "elman-last", *tiny, "--data", tiny_imdb_archive, "--format", "csv").stdout)
    assert trained[0][2].endswith(f"(run {run_dir.name})") and len(trained) == len(fresh)

    # The same numbers as the saved weights give in-process on the same batch, and not the fresh ones.
    model, _, run = load_run(run_dir, registry)
    data = dataclasses.replace(run.data, source=str(tiny_imdb_archive))
    batch = next(load_dataset(data, registry.settings, seed=0, progress=False).train.batches(
        run.train.batch_size, shuffle=True, seed=0))
    expected = profile(model, batch, use_mask=data.mask)
    assert float(trained[-1][2]) == pytest.approx(expected.mean()[-1], rel=1e-3)
    assert float(trained[-1][2]) != pytest.approx(float(fresh[-1][2]), rel=1e-3)


def test_cli_run_refuses_other_components_in_one_line(tiny_imdb_archive, tmp_path):
    from tests.cli_helpers import zoo

    result = zoo("diagnose", "--run", "best", "--cell", "gru", expect=2)
    assert result.output.strip() == ("Error: --run diagnoses the saved run's own model: drop MODEL, --encoder, "
                                     "--cell, --aggregator, --head and --set")
    result = zoo("diagnose", "--run", "nosuchrun", "--data", tiny_imdb_archive, "--results",
                 tmp_path / "r.sqlite", expect=2)
    assert result.output.strip().splitlines() == [f"Error: no results yet: {tmp_path / 'r.sqlite'} does not exist "
                                                  "(run `zoo rank` first)"]


# -- flags a command does not use are refused, never silently ignored --------------------------
UNUSED_FLAGS = [
    # diagnose trains nothing: no training flag but --batch-size is offered.
    (["diagnose", "--epochs", "2"], "No such option '--epochs'"),
    (["diagnose", "--lr", "0.1"], "No such option '--lr'"),
    (["diagnose", "--optimizer", "sgd"], "No such option '--optimizer'"),
    (["diagnose", "--lr-schedule", "cosine"], "No such option '--lr-schedule'"),
    (["diagnose", "--jit"], "No such option '--jit'"),
    (["diagnose", "--run", "best", "--epochs", "2"], "No such option '--epochs'"),
    (["diagnose", "--set", "train.lr=0.1"], "--set train.lr would have no effect"),
    (["diagnose", "--set", "cell.units=8", "--set", "train.epochs=2"], "--set train.epochs would have no effect"),
    (["diagnose", "--steps", "10", "--maxlen", "20"], "--steps sets --maxlen: give one of them"),
    # zoo data never builds a model: nothing to batch or mask.
    (["data", "stats", "--batching", "bucket"], "No such option '--batching'"),
    (["data", "info", "--no-mask"], "No such option '--no-mask'"),
    (["data", "vocab", "--mask"], "No such option '--mask'"),
    (["data", "decode", "--review", "0", "--batching", "padded"], "No such option '--batching'"),
    (["data", "decode", "--vocab", "{vocab}", "--maxlen", "5", "1", "2"],
     "--vocab decodes without loading the data: drop --maxlen"),
    (["data", "decode", "--vocab", "{vocab}", "--seed", "3", "--download", "1"],
     "--vocab decodes without loading the data: drop --seed, --download"),
    # evaluate and predict use a saved run's own settings.
    (["evaluate", "best", "--epochs", "1"], "No such option '--epochs'"),
    (["evaluate", "best", "--limit", "40"], "No such option '--limit'"),
    (["predict", "best", "--maxlen", "20", "Great."], "No such option '--maxlen'"),
    (["predict", "best", "--seed", "1", "Great."], "No such option '--seed'"),
]


@pytest.mark.parametrize("args, message", UNUSED_FLAGS, ids=[" ".join(a) for a, _ in UNUSED_FLAGS])
def test_a_flag_the_command_does_not_use_is_refused_with_exit_2(args, message, tmp_path):
    from tests.cli_helpers import zoo

    vocab = tmp_path / "vocab.json"
    vocab.write_text('{"words": ["<pad>", "<start>", "<unk>", "great"]}')
    result = zoo(*[str(vocab) if a == "{vocab}" else a for a in args], expect=2)
    assert message in result.output and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0] == result.output.strip().splitlines()[-1]


def test_the_flags_diagnose_uses_are_still_offered():
    from tests.cli_helpers import zoo

    text = zoo("diagnose", "--help").output
    for flag in ("--batch-size", "--seed", "--set", "--data", "--maxlen", "--batching", "--no-mask", "--steps"):
        assert flag in text
    for flag in ("--epochs", "--lr ", "--optimizer", "--jit", "--lr-schedule"):
        assert flag not in text
    assert "--vocab" in zoo("data", "decode", "--help").output


def test_decode_with_a_vocabulary_still_takes_zoo_data_from_the_environment(tmp_path, monkeypatch):
    from tests.cli_helpers import zoo

    vocab = tmp_path / "vocab.json"
    vocab.write_text('{"words": ["<pad>", "<start>", "<unk>", "great"]}')
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "elsewhere"))  # the environment asks for nothing
    assert "great" in zoo("data", "decode", "--vocab", vocab, "3").stdout
