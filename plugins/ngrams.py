"""Registers ``ngram-embedding``: word embeddings plus hashed n-gram embeddings.

A plugin like any third party's: it subclasses :class:`zoo_core.encoders.Encoder`
and registers through the ``zoo_register_encoders`` hook. Bag-of-n-gram
models are strong on IMDB (NBSVM with bigrams: 91.2%) because phrases such as
"not good" carry the sentiment; here every step hands the cell its word *and*
the phrase ending at it, so any cell and aggregator can use them.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo_core import hookimpl
from zoo_core.encoders import EMBEDDING_DROPOUT_HPARAMS, DenseSequence, Encoder, embedding_dropout
from zoo_core.params import HParam

# Odd multiplier of the polynomial hash; any large odd number spreads ids well.
HASH_MULTIPLIER = 1_000_003


def ngram_bucket_ids(ids: tf.Tensor, n: int, buckets: int) -> tf.Tensor:
    """Hash bucket of the n-gram ending at every step.

    ``bucket_t = (((w_{t-n+1} * P + w_{t-n+2}) * P + ...) * P + w_t) mod buckets``,
    with ``w_s = 0`` (pad) for ``s < 0``. Steps before the sequence read as pad, as
    pre-padding does, so a token's n-gram is the same pre-padded, post-padded or
    unpadded.

    Args:
        ids: ``[batch, time]`` token ids.
        n: n-gram order, at least 2.
        buckets: number of hash buckets.

    Returns:
        ``[batch, time]`` int64 bucket ids in ``[0, buckets)``.
    """
    ids = tf.cast(ids, tf.int64)
    steps = tf.shape(ids)[1]
    bucket = tf.zeros_like(ids)
    for back in range(n - 1, -1, -1):  # w_{t-back}, oldest first
        shifted = tf.pad(ids, [[0, 0], [back, 0]])[:, :steps]
        # Reducing after every step keeps the product far below int64's range.
        bucket = (bucket * HASH_MULTIPLIER + shifted) % buckets
    return bucket


class NgramEmbeddingEncoder(Encoder):
    """Word embedding plus hashed n-gram embeddings, summed per step (fastText's input).

    ``x_t = E[w_t] + sum_{n=2..N} B[hash(w_{t-n+1} .. w_t)]``, with ``E`` ``[V, D]``
    and one shared table ``B`` ``[buckets, D]``; output ``[batch, time, D]``.
    Joulin et al. (2017), "Bag of Tricks for Efficient Text Classification".
    """

    name = "ngram-embedding"
    description = "learned word embedding + hashed n-gram embeddings (fastText-style), summed per step"
    hparams = (
        HParam("dim", int, 64, "embedding size D", low=1, high=4096),
        HParam("ngrams", int, 2, "longest n-gram N (2: words and bigrams)", low=2, high=5),
        HParam("buckets", int, 200_003, "hash buckets shared by all n-gram orders", low=1, high=50_000_000),
        *EMBEDDING_DROPOUT_HPARAMS,
    )

    def __init__(self, vocab_size: int, **params):
        super().__init__(vocab_size, **params)
        dim = self.params["dim"]
        init = keras.initializers.RandomUniform(-0.05, 0.05)
        self.table = tf.Variable(init((self.vocab_size, dim)), name="embeddings")
        self.ngram_table = tf.Variable(init((self.params["buckets"], dim)), name="ngram_embeddings")

    @property
    def output_dim(self) -> int:
        return self.params["dim"]

    def __call__(self, ids, training=False):
        values = tf.gather(self.table, ids)
        for n in range(2, self.params["ngrams"] + 1):
            values += tf.gather(self.ngram_table, ngram_bucket_ids(ids, n, self.params["buckets"]))
        if training:
            values = embedding_dropout(values, self.params["dropout"], self.params["word_dropout"])
        return DenseSequence(values)


@hookimpl
def zoo_register_encoders():
    return [NgramEmbeddingEncoder]
