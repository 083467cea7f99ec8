"""benchmarks/fasttext_reference.py: its bigram features, and one tiny run of both feature sets in this process."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from plugins.ngrams import numpy_ngram_bucket_ids

ROOT = Path(__file__).resolve().parent.parent


def load_benchmark(monkeypatch):
    spec = importlib.util.spec_from_file_location("fasttext_reference", ROOT / "benchmarks" / "fasttext_reference.py")
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, benchmark)
    spec.loader.exec_module(benchmark)
    return benchmark


def test_exact_bigrams_get_a_row_each_from_training_and_unseen_ones_are_dropped(monkeypatch):
    benchmark = load_benchmark(monkeypatch)
    splits = {"train": [np.array([1, 5, 6, 5, 6])], "test": [np.array([1, 5, 6, 7])]}
    features, rows = benchmark.exact_bigram_features(splits, num_words=10)
    # Training bigrams in order of appearance: (1,5)=10, (5,6)=11, (6,5)=12; (6,7) never seen in training.
    np.testing.assert_array_equal(features["train"][0], [1, 5, 6, 5, 6, 10, 11, 12, 11])
    np.testing.assert_array_equal(features["test"][0], [1, 5, 6, 7, 10, 11])
    assert rows == 13


def test_hashed_bigrams_use_the_zoo_encoders_buckets(monkeypatch):
    benchmark = load_benchmark(monkeypatch)
    words = np.array([1, 5, 6, 7])
    features, rows = benchmark.hashed_bigram_features({"test": [words]}, num_words=10, buckets=7)
    want = 10 + numpy_ngram_bucket_ids(words[None], 2, 7)[0, 1:]  # the bigrams (1,5), (5,6), (6,7)
    np.testing.assert_array_equal(features["test"][0], np.concatenate([words, want]))
    assert rows == 17


def test_the_reference_trains_both_feature_sets_and_refuses_an_unknown_one(tiny_imdb_tree, monkeypatch):
    benchmark = load_benchmark(monkeypatch)
    result = CliRunner().invoke(benchmark.main, ["--data", str(tiny_imdb_tree), "--limit", "30", "--epochs", "1",
                                                 "--num-words", "200", "--maxlen", "40", "--buckets", "101"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[3:]}
    assert set(rows) == {"exact", "hashed"} and rows["hashed"][1] == "301"
    for row in rows.values():
        assert 0.0 <= float(row[4]) <= 1.0  # test accuracy
    refused = CliRunner().invoke(benchmark.main, ["--bigrams", "trigrams"])
    assert refused.exit_code == 2 and "unknown feature set 'trigrams'" in refused.output
