"""The ``ngram-embedding`` plugin encoder against a plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from zoo_plugins.ngrams import HASH_MULTIPLIER, ngram_bucket_ids, numpy_ngram_bucket_ids


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
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_encoder_gradients_reach_only_the_rows_used(registry):
    encoder = registry.create("encoder", "ngram-embedding", 20, dim=3, buckets=101)
    ids = tf.constant([[4, 5, 6]], tf.int32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(ids).values)
    word_grad, gram_grad = (tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, [encoder.table, encoder.ngram_table]))
    assert set(np.flatnonzero(word_grad.any(axis=1))) == {4, 5, 6}
    assert set(np.flatnonzero(gram_grad.any(axis=1))) == set(ngram_bucket_ids(ids, 2, 101).numpy().ravel())
