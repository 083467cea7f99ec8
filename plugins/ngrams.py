"""Registers ``ngram-embedding`` (hashed n-grams) and ``ngram-vocab-embedding`` (an exact n-gram vocabulary).

A plugin like any third party's: it subclasses :class:`zoo_core.encoders.EmbeddingEncoder`
and registers through the ``zoo_register_encoders`` hook. Bag-of-n-gram
models are strong on IMDB (NBSVM with bigrams: 91.2%) because phrases such as
"not good" carry the sentiment; here every step hands the cell its word *and*
the phrase ending at it, so any cell and aggregator can use them.

The two differ in what an n-gram's row is. Hashing (fastText) maps every
n-gram, seen in training or not, into a fixed number of buckets, so rare and
unseen n-grams share rows with frequent ones. A vocabulary (Wang & Manning
2012; Keras' ``imdb_fasttext`` example) gives each n-gram of the training split
a row of its own and drops the others, as the word vocabulary turns unknown
words into UNK. On IMDB the difference is worth about a point (docs/RESULTS.md).
"""

from __future__ import annotations

import math

from zoo_core import hookimpl
from zoo_core.data.tokens import PAD
from zoo_core.encoders import EmbeddingEncoder
from zoo_core.errors import ZooError
from zoo_core.lazy import keras, np, tf
from zoo_core.params import HParam

# Odd multiplier of the polynomial hash; any large odd number spreads ids well.
HASH_MULTIPLIER = 1_000_003


def ngram_windows(ids: tf.Tensor, n: int) -> list[tf.Tensor]:
    """The n words of the n-gram ending at every step, oldest first: ``[w_{t-n+1}, ..., w_t]``.

    Args:
        ids: ``[batch, time]`` token ids.
        n: n-gram order.

    Returns:
        ``n`` int64 ``[batch, time]`` tensors; ``w_s = 0`` (pad) for ``s < 0``, as
        pre-padding reads, so a token's n-gram is the same however it is padded.
    """
    ids = tf.cast(ids, tf.int64)
    steps = tf.shape(ids)[1]
    return [tf.pad(ids, [[0, 0], [back, 0]])[:, :steps] for back in range(n - 1, -1, -1)]


def numpy_ngram_windows(ids: np.ndarray, n: int) -> list[np.ndarray]:
    """NumPy reference of :func:`ngram_windows`: ``n`` int64 ``[batch, time]`` arrays, oldest first."""
    ids = np.asarray(ids, np.int64)
    padded = np.pad(ids, [(0, 0), (n - 1, 0)])  # w_s = 0 before the sequence
    return [padded[:, n - 1 - back: n - 1 - back + ids.shape[1]] for back in range(n - 1, -1, -1)]


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
    windows = ngram_windows(ids, n)
    bucket = tf.zeros_like(windows[0])
    for word in windows:
        # Reducing after every step keeps the product far below int64's range.
        bucket = (bucket * HASH_MULTIPLIER + word) % buckets
    return bucket


def numpy_ngram_bucket_ids(ids: np.ndarray, n: int, buckets: int) -> np.ndarray:
    """NumPy reference of :func:`ngram_bucket_ids`: ``[batch, time]`` int64 bucket ids."""
    windows = numpy_ngram_windows(ids, n)
    bucket = np.zeros_like(windows[0])
    for word in windows:
        bucket = (bucket * HASH_MULTIPLIER + word) % buckets
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


# Marks an n-gram that has no key: its window reaches before the review or holds padding.
NO_KEY = -1
# Fills the key list's unused slots; above every real key, so the list stays sorted.
UNUSED_KEY = 2 ** 63 - 1  # int64 max


def ngram_keys(ids: tf.Tensor, n: int, vocab_size: int) -> tf.Tensor:
    """Exact key of the n-gram ending at every step, unique across orders.

    ``key_t = sum_{k=0..n-1} w_{t-k} * V^k`` (the n ids as digits in base ``V``),
    or :data:`NO_KEY` where the window holds padding or reaches before the
    sequence, so a token's key is the same pre-padded, post-padded or unpadded.
    Windows without padding start with a nonzero digit, so keys of order ``n``
    lie in ``[V^(n-1), V^n)`` and never meet another order's.

    Args:
        ids: ``[batch, time]`` token ids in ``[0, vocab_size)``.
        n: n-gram order, at least 2.
        vocab_size: ``V``; ``V^n`` must stay below ``2^63``.

    Returns:
        ``[batch, time]`` int64 keys.
    """
    windows = ngram_windows(ids, n)
    key, real = tf.zeros_like(windows[0]), tf.ones_like(windows[0], dtype=tf.bool)
    for word in windows:
        key, real = key * vocab_size + word, real & (word != PAD)
    return tf.where(real, key, NO_KEY)


def numpy_ngram_keys(ids: np.ndarray, n: int, vocab_size: int) -> np.ndarray:
    """NumPy reference of :func:`ngram_keys`: ``[batch, time]`` int64 keys."""
    windows = numpy_ngram_windows(ids, n)
    key = np.zeros_like(windows[0])
    for word in windows:
        key = key * vocab_size + word
    return np.where(np.all([word != PAD for word in windows], axis=0), key, NO_KEY)


def ragged_ngram_keys(ids: np.ndarray, offsets: np.ndarray, n: int, vocab_size: int) -> np.ndarray:
    """Keys of every order-``n`` n-gram inside the reviews ``ids[offsets[i]:offsets[i + 1]]``.

    Args:
        ids: Flat token ids of all reviews, concatenated ``[tokens]``.
        offsets: ``[reviews + 1]`` review boundaries.

    Returns:
        int64 ``[n-grams]``: one key per window lying wholly inside one review
        and free of padding, in order.
    """
    keys = numpy_ngram_keys(np.asarray(ids)[None], n, vocab_size)[0]
    lengths = np.diff(offsets)
    position = np.arange(len(keys)) - np.repeat(np.asarray(offsets[:-1]), lengths)  # within its review
    return keys[(position >= n - 1) & (keys != NO_KEY)]


class NgramVocabEmbeddingEncoder(EmbeddingEncoder):
    """Word embedding plus embeddings of the training split's n-grams, summed per step.

    ``x_t = E[w_t] + b_t`` with ``b_t = sum_{n=2..N} [g_n(t) in K] B[row(g_n(t))]``,
    where ``g_n(t) = (w_{t-n+1} .. w_t)``, ``K`` the n-gram vocabulary and ``B``
    ``[max_ngrams + 1, D]`` one table for all orders; output ``[batch, time, D]``.
    With ``ngrams_apart`` the two parts sit side by side instead,
    ``x_t = [E[w_t] ; b_t]``, ``[batch, time, 2D]``: a cell can then read the
    words alone (the ``skip`` cell's ``inner_width=D``) while the skip path
    still carries the n-grams. Followed by a mean and a linear layer, both forms
    span the same functions of the bag.
    :meth:`adapt` builds ``K`` from the training split before training: the
    ``max_ngrams`` most frequent n-grams of orders 2..N seen at least
    ``min_count`` times (ties broken by key). An n-gram outside ``K`` (unseen in
    training, too rare, or holding padding) adds nothing, as in Keras'
    ``imdb_fasttext`` example and Wang & Manning (2012)'s NBSVM features.

    ``K`` is kept as a sorted int64 variable (``ngram_keys``, not trained), so a
    saved run's checkpoint carries it and a lookup is a binary search
    (:meth:`rows`). Row 0 of ``B`` stands for "absent" and is masked out.
    The word table, ``dim`` and both dropouts are the ``embedding`` encoder's.

    Raises:
        ZooError: ``vocab_size ** ngrams`` reaches ``2^63`` (the keys would overflow int64).
    """

    name = "ngram-vocab-embedding"
    description = ("learned word embedding + embeddings of the training split's n-grams (exact vocabulary, "
                   "unseen n-grams dropped), summed per step")
    hparams = (
        *EmbeddingEncoder.hparams,
        HParam("ngrams", int, 2, "longest n-gram N (2: words and bigrams)", low=2, high=4),
        HParam("max_ngrams", int, 1_000_000, "rows of the n-gram table: the most frequent training n-grams kept",
               low=1, high=50_000_000, tiny=150),
        HParam("min_count", int, 1, "occurrences in the training split an n-gram needs to get a row", low=1,
               high=1_000_000),
        HParam("ngrams_apart", bool, False, "the n-grams' embedding beside the word's, [E[w_t] ; b_t] (2 x dim wide), "
                                            "instead of added to it"),
    )

    def __init__(self, vocab_size: int, **params):
        super().__init__(vocab_size, **params)
        if self.vocab_size ** self.params["ngrams"] >= 2 ** 63:
            raise ZooError(f"encoder {self.name!r}: {self.params['ngrams']}-grams of a {self.vocab_size:,}-word "
                           f"vocabulary do not fit int64 keys; lower ngrams or data.num_words")
        rows = self.params["max_ngrams"]
        self.ngram_keys = tf.Variable(tf.fill([rows], tf.constant(UNUSED_KEY, tf.int64)), trainable=False,
                                      name="ngram_keys")
        self.ngram_table = tf.Variable(
            keras.initializers.RandomUniform(-0.05, 0.05)((rows + 1, self.params["dim"])), name="ngram_embeddings")

    def adapt(self, train) -> str:
        """Fills ``ngram_keys`` with the training split's n-gram vocabulary ``K`` (see the class).

        Args:
            train: Flat ``ids`` ``[tokens]`` and ``offsets`` ``[reviews + 1]``;
                no n-gram spans two reviews.

        Returns:
            A line saying how many n-grams were kept of how many distinct ones.
        """
        keys = np.concatenate([ragged_ngram_keys(train.ids, train.offsets, n, self.vocab_size)
                               for n in range(2, self.params["ngrams"] + 1)])
        distinct, counts = np.unique(keys, return_counts=True)
        frequent = counts >= self.params["min_count"]
        kept, kept_counts = distinct[frequent], counts[frequent]
        if len(kept) > self.params["max_ngrams"]:
            kept = np.sort(kept[np.lexsort((kept, -kept_counts))[: self.params["max_ngrams"]]])
        values = np.full(self.params["max_ngrams"], UNUSED_KEY, np.int64)
        values[: len(kept)] = kept
        self.ngram_keys.assign(values)
        return (f"n-gram vocabulary: {len(kept):,} of the training split's {len(distinct):,} distinct n-grams "
                f"(orders 2-{self.params['ngrams']}, min count {self.params['min_count']}, "
                f"max_ngrams {self.params['max_ngrams']:,})")

    def rows(self, keys: tf.Tensor) -> tf.Tensor:
        """Table rows ``[batch, time]`` (int64) of n-gram ``keys`` ``[batch, time]``; 0 where absent from ``K``.

        A branch-free binary search (the lower bound, as ``np.searchsorted``),
        one gather per halving: ``ceil(log2(max_ngrams + 1))`` gathers in all.
        ``tf.searchsorted`` gives the same slots, but XLA compiles it as a
        comparison of every key with every token (118 GiB for a batch of 1.2M
        keys), so ``train.jit`` could not train this encoder.
        """
        size = self.params["max_ngrams"]
        low, high = tf.zeros_like(keys), tf.fill(tf.shape(keys), tf.constant(size, tf.int64))
        for _ in range(math.ceil(math.log2(size + 1))):  # the slot lies in [low, high]; halve it
            middle = (low + high) // 2
            above = tf.gather(self.ngram_keys, tf.minimum(middle, size - 1)) < keys
            low, high = tf.where(above, middle + 1, low), tf.where(above, high, middle)
        slot = tf.minimum(low, size - 1)
        return tf.where(tf.gather(self.ngram_keys, slot) == keys, slot + 1, 0)

    @property
    def output_dim(self) -> int:
        return self.params["dim"] * (2 if self.params["ngrams_apart"] else 1)

    def embed(self, ids):
        words = super().embed(ids)
        bag = tf.zeros_like(words)
        for n in range(2, self.params["ngrams"] + 1):
            rows = self.rows(ngram_keys(ids, n, self.vocab_size))
            bag += tf.gather(self.ngram_table, rows) * tf.cast(rows > 0, words.dtype)[..., None]
        return tf.concat([words, bag], axis=-1) if self.params["ngrams_apart"] else words + bag

    def numpy_reference(self, ids):
        words = super().numpy_reference(ids)
        vocabulary, table = self.ngram_keys.numpy(), self.ngram_table.numpy()
        bag = np.zeros_like(words)
        for n in range(2, self.params["ngrams"] + 1):
            keys = numpy_ngram_keys(ids, n, self.vocab_size)
            slot = np.minimum(np.searchsorted(vocabulary, keys), len(vocabulary) - 1)
            found = vocabulary[slot] == keys
            bag = bag + np.where(found[..., None], table[slot + 1], 0.0)
        return np.concatenate([words, bag], axis=-1) if self.params["ngrams_apart"] else words + bag


@hookimpl
def zoo_register_encoders():
    return [NgramEmbeddingEncoder, NgramVocabEmbeddingEncoder]
