"""The ``ngram-embedding`` and ``ngram-vocab-embedding`` plugin encoders against plain-Python references."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from tests.cli_helpers import zoo
from zoo_core.errors import ZooError
from zoo_plugins.ngrams import (HASH_MULTIPLIER, NO_KEY, ngram_bucket_ids, ngram_keys, numpy_ngram_bucket_ids,
                                numpy_ngram_keys)


def reference_bucket(ids_row, t: int, n: int, buckets: int) -> int:
    """The n-gram ending at step ``t``, ids before the start read as pad 0, hashed in Python ints."""
    gram = [ids_row[s] if s >= 0 else 0 for s in range(t - n + 1, t + 1)]
    value = 0
    for word in gram:
        value = value * HASH_MULTIPLIER + int(word)
    return value % buckets


@pytest.mark.parametrize("n", [2, 3, 5])
def test_bucket_ids_match_an_exact_python_polynomial_hash(n):
    rng = np.random.default_rng(n)
    ids = rng.integers(0, 1_000_000, (4, 9))
    buckets = 200_003
    got = ngram_bucket_ids(tf.constant(ids, tf.int32), n, buckets).numpy()
    expected = [[reference_bucket(row, t, n, buckets) for t in range(ids.shape[1])] for row in ids]
    np.testing.assert_array_equal(got, expected)
    # The encoder's NumPy reference hashes with its own NumPy copy, checked here against the same.
    np.testing.assert_array_equal(numpy_ngram_bucket_ids(ids, n, buckets), expected)


def test_distinct_bigrams_rarely_share_a_bucket():
    rng = np.random.default_rng(0)
    pairs = np.unique(rng.integers(3, 20_000, (20_000, 2)), axis=0)
    ids = tf.constant(pairs, tf.int32)  # each row is one bigram (w_0, w_1)
    buckets = ngram_bucket_ids(ids, 2, 200_003).numpy()[:, 1]
    # ~20k keys in 200k buckets: a uniform hash shares ~5% of them.
    assert len(np.unique(buckets)) > 0.93 * len(pairs)


def test_encoder_sums_word_and_ngram_rows(registry):
    vocab, buckets = 50, 37
    encoder = registry.create("encoder", "ngram-embedding", vocab, dim=4, ngrams=3, buckets=buckets)
    ids = np.array([[5, 7, 9, 11], [0, 0, 3, 4]])
    words, grams = encoder.table.numpy(), encoder.ngram_table.numpy()
    expected = np.zeros(ids.shape + (4,), np.float32)
    for b, row in enumerate(ids):
        for t, word in enumerate(row):
            expected[b, t] = words[word] + sum(grams[reference_bucket(row, t, n, buckets)] for n in (2, 3))
    got = encoder(tf.constant(ids, tf.int32)).values.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_encoder_gradients_reach_only_the_rows_used(registry):
    encoder = registry.create("encoder", "ngram-embedding", 20, dim=3, buckets=101)
    ids = tf.constant([[4, 5, 6]], tf.int32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(ids).values)
    word_grad, gram_grad = (tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, [encoder.table, encoder.ngram_table]))
    assert set(np.flatnonzero(word_grad.any(axis=1))) == {4, 5, 6}
    assert set(np.flatnonzero(gram_grad.any(axis=1))) == set(ngram_bucket_ids(ids, 2, 101).numpy().ravel())


# -- ngram-vocab-embedding: an exact vocabulary of the training split's n-grams ----------------------------------------
def reference_key(ids_row, t: int, n: int, vocab: int) -> int:
    """The n-gram ending at step ``t`` as base-``vocab`` digits in Python ints; NO_KEY if it reaches pad or the start."""
    if t - n + 1 < 0 or any(ids_row[s] == 0 for s in range(t - n + 1, t + 1)):
        return NO_KEY
    value = 0
    for s in range(t - n + 1, t + 1):
        value = value * vocab + int(ids_row[s])
    return value


@pytest.mark.parametrize("n,vocab", [(2, 40_000), (3, 40_000), (4, 50_000)])
def test_ngram_keys_are_exact_and_padding_has_none(n, vocab):
    rng = np.random.default_rng(n)
    ids = rng.integers(1, vocab, (4, 9))
    ids[0, :3] = 0  # pre-padding
    ids[1, -2:] = 0  # post-padding
    expected = [[reference_key(row, t, n, vocab) for t in range(ids.shape[1])] for row in ids]
    np.testing.assert_array_equal(ngram_keys(tf.constant(ids, tf.int32), n, vocab).numpy(), expected)
    np.testing.assert_array_equal(numpy_ngram_keys(ids, n, vocab), expected)
    # A token's key is the same however the review is padded.
    np.testing.assert_array_equal(numpy_ngram_keys(ids[:1, 3:], n, vocab)[0], np.asarray(expected)[0, 3:])


def ragged(reviews):
    """What adapt reads of a training split: flat ids and review offsets."""
    return SimpleNamespace(ids=np.concatenate([np.asarray(r, np.int32) for r in reviews]),
                           offsets=np.cumsum([0] + [len(r) for r in reviews]))


def python_vocabulary(reviews, orders, vocab, min_count, max_ngrams):
    """Counts every n-gram inside a review in Python; keeps the most frequent (ties: smaller key first), sorted."""
    counts = {}
    for review in reviews:
        for n in orders:
            for t in range(n - 1, len(review)):
                key = reference_key(review, t, n, vocab)
                counts[key] = counts.get(key, 0) + 1
    ranked = sorted((key for key, count in counts.items() if count >= min_count), key=lambda k: (-counts[k], k))
    return sorted(ranked[:max_ngrams])


@pytest.mark.parametrize("ngrams,min_count,max_ngrams", [(2, 1, 100), (2, 2, 100), (3, 1, 6), (3, 2, 3)])
def test_adapt_keeps_the_most_frequent_training_ngrams(registry, ngrams, min_count, max_ngrams):
    vocab = 9
    reviews = [[1, 3, 4, 5, 3, 4], [1, 3, 4, 8, 8], [1, 5, 3, 4, 8, 8, 7], [1, 6]]
    encoder = registry.create("encoder", "ngram-vocab-embedding", vocab, dim=3, ngrams=ngrams, min_count=min_count,
                              max_ngrams=max_ngrams)
    note = encoder.adapt(ragged(reviews))
    expected = python_vocabulary(reviews, range(2, ngrams + 1), vocab, min_count, max_ngrams)
    keys = encoder.ngram_keys.numpy()
    np.testing.assert_array_equal(keys[:len(expected)], expected)
    assert (keys[len(expected):] == np.iinfo(np.int64).max).all()  # unused slots, above every key
    # The bigram (6, 1) across the last two reviews' boundary is never counted.
    assert 6 * vocab + 1 not in keys and 5 * vocab + 1 not in keys
    assert note.startswith(f"n-gram vocabulary: {len(expected):,} of the training split's ")


def test_each_step_adds_its_ngrams_row_only_when_the_vocabulary_has_it(registry):
    vocab = 12
    train = [[1, 3, 4, 5, 6], [1, 4, 5, 9]]
    encoder = registry.create("encoder", "ngram-vocab-embedding", vocab, dim=4, ngrams=3, max_ngrams=20)
    encoder.adapt(ragged(train))
    row_of = {int(key): slot + 1 for slot, key in enumerate(encoder.ngram_keys.numpy()) if key < 2 ** 62}
    ids = np.array([[0, 0, 1, 3, 4, 5], [1, 4, 5, 6, 11, 9]])  # (5, 6) and (4, 5, 6) seen; (6, 11), (11, 9) not
    words, grams = encoder.table.numpy(), encoder.ngram_table.numpy()
    expected = np.zeros(ids.shape + (4,), np.float32)
    for b, row in enumerate(ids):
        for t, word in enumerate(row):
            expected[b, t] = words[word] + sum(grams[row_of[key]] for n in (2, 3)
                                               if (key := reference_key(row, t, n, vocab)) in row_of)
    got = encoder(tf.constant(ids, tf.int32)).values.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(encoder.numpy_reference(ids), expected, rtol=1e-6, atol=1e-7)
    # Gradients reach the rows of the n-grams found, and no other row gets a nonzero one.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(tf.constant(ids, tf.int32)).values)
    gram_grad = tf.convert_to_tensor(tape.gradient(loss, encoder.ngram_table)).numpy()
    found = {row_of[k] for row in ids for t in range(len(row)) for n in (2, 3)
             if (k := reference_key(row, t, n, vocab)) in row_of}
    assert set(np.flatnonzero(gram_grad.any(axis=1))) == found and len(found) == 9


def test_ngrams_apart_puts_the_words_and_the_ngrams_side_by_side(registry):
    """``[E[w_t] ; b_t]``: the halves add up to the summed encoding, with the same weights; NumPy agrees."""
    vocab, train = 12, [[1, 3, 4, 5, 6], [1, 4, 5, 9]]
    ids = np.array([[0, 0, 1, 3, 4, 5], [1, 4, 5, 6, 11, 9]])
    summed, apart = (registry.create("encoder", "ngram-vocab-embedding", vocab, dim=4, ngrams=3, max_ngrams=20,
                                     ngrams_apart=flag) for flag in (False, True))
    for encoder in (summed, apart):
        encoder.adapt(ragged(train))
    for mine, theirs in zip(apart.variables, summed.variables, strict=True):
        mine.assign(theirs)
    assert apart.output_dim == 8
    got = apart(tf.constant(ids, tf.int32)).values.numpy()
    np.testing.assert_allclose(got[..., :4], summed.table.numpy()[ids])  # the words alone
    np.testing.assert_allclose(got[..., :4] + got[..., 4:], summed(tf.constant(ids, tf.int32)).values,
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(apart.numpy_reference(ids), got, rtol=1e-6, atol=1e-7)
    assert np.abs(got[..., 4:]).sum() > 0


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("size,kept", [(1, 1), (7, 7), (50_000, 31_000), (50_000, 0)])
def test_lookup_finds_each_key_in_the_vocabulary_and_only_those(registry, jit, size, kept):
    """The binary search against NumPy's: every slot of a full, partly filled and empty vocabulary, and
    keys below, between and above its entries; compiled as a graph and with XLA (``train.jit``)."""
    rng = np.random.default_rng(size + kept)
    encoder = registry.create("encoder", "ngram-vocab-embedding", 10, dim=2, max_ngrams=size)
    vocabulary = np.sort(rng.choice(np.arange(1, 10 ** 9, 7), kept, replace=False)).astype(np.int64)
    encoder.ngram_keys.assign(np.concatenate([vocabulary, np.full(size - kept, 2 ** 63 - 1, np.int64)]))
    queries = np.concatenate([vocabulary, vocabulary + 1, [NO_KEY, 0, 10 ** 9 + 5]])
    queries = rng.permutation(queries)[None]  # [batch 1, time]
    rows = tf.function(encoder.rows, jit_compile=jit)(tf.constant(queries)).numpy()
    slot = np.searchsorted(vocabulary, queries)
    found = np.isin(queries, vocabulary)
    np.testing.assert_array_equal(rows, np.where(found, slot + 1, 0))
    assert found.any() == (kept > 0)


def test_keys_that_would_overflow_int64_are_one_clear_error(registry):
    with pytest.raises(ZooError, match=r"4-grams of a 60,000-word vocabulary do not fit int64 keys"):
        registry.create("encoder", "ngram-vocab-embedding", 60_000, dim=3, ngrams=4)


def test_training_learns_the_vocabulary_and_a_saved_run_keeps_it(tiny_imdb_archive, tmp_path, registry):
    from zoo_core import data
    from zoo_core.runs import load_run
    from zoo_core.settings import load_settings

    result = zoo("train", "--encoder", "ngram-vocab-embedding", "--cell", "identity", "--aggregator", "mean-states",
                 "--head", "sigmoid1", "--set", "encoder.dim=8", "--set", "encoder.max_ngrams=5000", "--maxlen", 40,
                 "--epochs", 1, "--data", tiny_imdb_archive, "--save", tmp_path / "run")
    model, _, run = load_run(tmp_path / "run", registry)
    dataset = data.load_dataset(run.data, load_settings(), seed=run.seed, progress=False)
    reviews = [dataset.train.sequence(i) for i in range(len(dataset.train))]
    expected = python_vocabulary(reviews, [2], len(dataset.vocab), 1, 5000)
    assert f"n-gram vocabulary: {len(expected):,} of the training split's {len(expected):,} distinct" in result.output
    keys = model.encoder.ngram_keys.numpy()
    np.testing.assert_array_equal(keys[:len(expected)], expected)
    assert len(expected) > 300 and (keys[len(expected):] == np.iinfo(np.int64).max).all()
