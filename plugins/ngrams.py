"""Registers ``ngram-embedding``: word embeddings plus hashed n-gram embeddings.

A plugin like any third party's: it subclasses :class:`zoo_core.encoders.EmbeddingEncoder`
and registers through the ``zoo_register_encoders`` hook. Bag-of-n-gram
models are strong on IMDB (NBSVM with bigrams: 91.2%) because phrases such as
"not good" carry the sentiment; here every step hands the cell its word *and*
the phrase ending at it, so any cell and aggregator can use them.
"""

from __future__ import annotations

from zoo_core import hookimpl
from zoo_core.encoders import EmbeddingEncoder
from zoo_core.lazy import keras, np, tf
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


def numpy_ngram_bucket_ids(ids: np.ndarray, n: int, buckets: int) -> np.ndarray:
    """NumPy reference of :func:`ngram_bucket_ids`: ``[batch, time]`` int64 bucket ids."""
    ids = np.asarray(ids, np.int64)
    padded = np.pad(ids, [(0, 0), (n - 1, 0)])  # w_s = 0 before the sequence
    bucket = np.zeros_like(ids)
    for back in range(n - 1, -1, -1):
        bucket = (bucket * HASH_MULTIPLIER + padded[:, n - 1 - back: n - 1 - back + ids.shape[1]]) % buckets
    return bucket


class NgramEmbeddingEncoder(EmbeddingEncoder):
    """Word embedding plus hashed n-gram embeddings, summed per step (fastText's input).

    ``x_t = E[w_t] + sum_{n=2..N} B[hash(w_{t-n+1} .. w_t)]``, with ``E`` ``[V, D]``
    and one shared table ``B`` ``[buckets, D]``; output ``[batch, time, D]``.
    Joulin et al. (2017), "Bag of Tricks for Efficient Text Classification".
    The word table, ``dim`` and both dropouts are the ``embedding`` encoder's.
    """

    name = "ngram-embedding"
    description = "learned word embedding + hashed n-gram embeddings (fastText-style), summed per step"
    hparams = (
        *EmbeddingEncoder.hparams,
        HParam("ngrams", int, 2, "longest n-gram N (2: words and bigrams)", low=2, high=5),
        HParam("buckets", int, 200_003, "hash buckets shared by all n-gram orders", low=1, high=50_000_000,
               tiny=31),
    )

    def __init__(self, vocab_size: int, **params):
        super().__init__(vocab_size, **params)
        self.ngram_table = tf.Variable(
            keras.initializers.RandomUniform(-0.05, 0.05)((self.params["buckets"], self.params["dim"])),
            name="ngram_embeddings",
        )

    def embed(self, ids):
        values = super().embed(ids)
        for n in range(2, self.params["ngrams"] + 1):
            values += tf.gather(self.ngram_table, ngram_bucket_ids(ids, n, self.params["buckets"]))
        return values

    def numpy_reference(self, ids):
        values = super().numpy_reference(ids)
        table = self.ngram_table.numpy()
        for n in range(2, self.params["ngrams"] + 1):
            values = values + table[numpy_ngram_bucket_ids(ids, n, self.params["buckets"])]
        return values


@hookimpl
def zoo_register_encoders():
    return [NgramEmbeddingEncoder]
