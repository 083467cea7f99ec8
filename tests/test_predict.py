"""Saved runs, ``zoo predict`` and ``zoo evaluate`` on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.imdb_fixtures import NEGATIVE, POSITIVE
from tests.cli_helpers import TINY_RANK, zoo
from tests.isolation import home_env
from zoo_core.config import ModelSpec, RunSpec
from zoo_core.errors import ZooError
from zoo_core.results import ResultsDB




@pytest.fixture(scope="module")
def ranked(tmp_path_factory, tiny_imdb_archive):
    """Two tiny models ranked on tiny data; their runs saved."""
    home = tmp_path_factory.mktemp("predict")
    db_path = home / "results.sqlite"
    with home_env(home):
        zoo("rank", "elman-last", "lstm-last", *TINY_RANK, "--data", str(tiny_imdb_archive), "--results", str(db_path))
    return db_path


def test_predict_best_prints_a_probability(ranked):
    result = zoo("predict", "best", "A wonderful, moving film.", "--results", str(ranked))
    row = result.stdout.strip().splitlines()[-1].split()
    p, label = float(row[-2]), row[-1]
    assert 0.0 <= p <= 1.0 and label == ("positive" if p >= 0.5 else "negative")


def test_best_is_the_top_of_the_leaderboard(ranked):
    board = json.loads(zoo("leaderboard", "--format", "json", "--results", str(ranked)).stdout)
    result = zoo("predict", "best", "fun", "--results", str(ranked))
    assert result.stderr.startswith(f"run {board[0]['best_run']}:")


def test_a_saved_run_reproduces_its_recorded_test_metrics(ranked, tiny_imdb_archive):
    for record in ResultsDB(ranked).finished():
        out = zoo("evaluate", record.id[:6], "--data", str(tiny_imdb_archive), "--format", "json",
                  "--results", str(ranked)).stdout
        scored = json.loads(out)[0]
        assert scored["reviews"] == 40
        assert scored["accuracy"] == pytest.approx(record.test_accuracy, abs=1e-4)
        assert scored["auc"] == pytest.approx(record.test_auc, abs=1e-4)
        assert scored["loss"] == pytest.approx(record.test_loss, abs=1e-4)


def test_file_input_matches_arguments_and_formats_agree(ranked, tmp_path):
    reviews = ["A wonderful, moving film.", "Awful, boring, a waste.", "The plot of the movie."]
    (tmp_path / "reviews.txt").write_text("\n".join(reviews) + "\n\n", encoding="utf-8")
    by_args = json.loads(zoo("predict", "best", *reviews, "--format", "json", "--results", str(ranked)).stdout)
    by_file = json.loads(zoo("predict", "best", "--file", str(tmp_path / "reviews.txt"), "--format", "json",
                             "--results", str(ranked)).stdout)
    assert by_args == by_file and [r["review"] for r in by_file] == reviews
    csv_lines = zoo("predict", "best", *reviews, "--format", "csv", "--results", str(ranked)).stdout.splitlines()
    assert csv_lines[0] == "review,p_positive,label" and len(csv_lines) == 4


def test_predict_from_a_saved_run_folder_needs_no_database(ranked, tmp_path):
    record = ResultsDB(ranked).finished()[0]
    by_id = json.loads(zoo("predict", record.id, "fun", "--format", "json", "--results", str(ranked)).stdout)
    by_folder = json.loads(zoo("predict", record.run_dir, "fun", "--format", "json",
                               "--results", str(tmp_path / "none.sqlite")).stdout)
    assert by_folder == by_id


def test_evaluate_a_tsv_agrees_with_predict(ranked, tmp_path):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(POSITIVE if i % 2 else NEGATIVE, 5)) + " film" for i in range(10)]
    labels = [i % 2 for i in range(10)]
    (tmp_path / "mine.tsv").write_text("".join(f"{y}\t{t}\n" for y, t in zip(labels, texts)), encoding="utf-8")
    probs = [r["p_positive"] for r in json.loads(
        zoo("predict", "best", *texts, "--format", "json", "--results", str(ranked)).stdout)]
    scored = json.loads(zoo("evaluate", "best", "--data", str(tmp_path / "mine.tsv"), "--format", "json",
                            "--results", str(ranked)).stdout)[0]
    expected = np.mean((np.array(probs) >= 0.5) == np.array(labels))
    assert scored["reviews"] == 10 and scored["accuracy"] == pytest.approx(expected)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\n  \n", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
    (b"caf\xe9 au lait\n", "not UTF-8"),
])
def test_bad_review_files_get_one_line(ranked, tmp_path, content, message):
    bad = tmp_path / "reviews.txt"
    bad.write_bytes(content)
    result = zoo("predict", "best", "--file", str(bad), "--results", str(ranked), expect=2)
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    if content:
        (tmp_path / "labelled.tsv").write_bytes(content)
        result = zoo("evaluate", "best", "--data", str(tmp_path / "labelled.tsv"), "--results", str(ranked), expect=2)
        assert "Error:" in result.output and "Traceback" not in result.output


def test_unknown_or_unfinished_runs_get_one_line(ranked, tmp_path):
    result = zoo("predict", "zzzz", "fine", "--results", str(ranked), expect=2)
    assert result.output.strip() == f"Error: unknown run 'zzzz' in {ranked} (see `zoo runs`)"
    result = zoo("predict", "best", "--results", str(ranked), expect=2)
    assert "nothing to predict" in result.output
    result = zoo("predict", "best", "--file", str(tmp_path / "missing.txt"), "--results", str(ranked), expect=2)
    assert "does not exist" in result.output

    db = ResultsDB(ranked)
    unfinished = db.claim(RunSpec(ModelSpec("embedding", "gru", "last", "sigmoid1"), seed=99))
    db.mark(unfinished, "interrupted")
    result = zoo("predict", unfinished, "fine", "--results", str(ranked), expect=2)
    assert "interrupted, not finished" in result.output


def test_save_and_load_round_trip_exactly(registry, tmp_path):
    import tensorflow as tf

    from zoo_core.data import Vocabulary, encode_texts
    from zoo_core.model import Classifier
    from zoo_core.runs import load_run, save_run
    from zoo_core.training import TrainResult

    vocab = Vocabulary(["<pad>", "<start>", "<unk>", "fun", "dull", "film"])
    run = RunSpec(ModelSpec("embedding", "gru", "mean-states", "softmax2", params={"cell": {"units": 3}}), seed=5)
    tf.random.set_seed(1)
    model = Classifier(run.model, registry, len(vocab))
    result = TrainResult(run=run, params=model.count_params(), history=[{"epoch": 1, "val_loss": float("nan")}],
                         best_epoch=1, val={"accuracy": 0.5, "loss": 0.7, "auc": 0.5},
                         test={"accuracy": 0.5, "loss": 0.7, "auc": 0.5}, wall_time=1.0, tokens_per_sec=1.0,
                         status="completed")
    directory = save_run(tmp_path / "run", model, vocab, run, result)
    assert sorted(p.name for p in directory.iterdir()) == ["run.json", "vocab.json", "weights"]
    assert json.loads((directory / "run.json").read_text())["result"]["history"][0]["val_loss"] is None

    loaded, loaded_vocab, loaded_run = load_run(directory, registry)
    assert loaded_run == run and loaded_vocab == vocab
    for a, b in zip(model.trainable_variables, loaded.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    batch = encode_texts(["fun film", "dull dull"], vocab, run.data)
    np.testing.assert_array_equal(model.prob_positive(batch.ids, batch.mask).numpy(),
                                  loaded.prob_positive(batch.ids, batch.mask).numpy())

    meta = json.loads((directory / "run.json").read_text())
    meta["run"]["model"]["params"]["cell"]["units"] = 5  # weights no longer fit the spec
    (directory / "run.json").write_text(json.dumps(meta))
    with pytest.raises(ZooError, match="do not fit"):
        load_run(directory, registry)
