"""Ragged id sequences -> padded, masked batches: :class:`Split`, :class:`Batch` and their helpers.

A split keeps its reviews ragged: every review's ids concatenated in one flat
array, cut at ``offsets`` (review ``i`` is ``ids[offsets[i]:offsets[i + 1]]``).
Batches are padded only when served, either to ``maxlen`` or, with bucketing,
to the longest review of the batch. :func:`encode_texts` turns new text into a
batch exactly as training data was (predict, evaluate).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence

from zoo_core.config import DataConfig
from zoo_core.data.tokens import START, Vocabulary
from zoo_core.lazy import np


# -- ragged arrays -----------------------------------------------------------------------------------
def offsets_from_lengths(lengths) -> np.ndarray:
    """int64 ``[n + 1]`` row boundaries of ``n`` consecutive rows of ``lengths`` tokens: 0, then running totals."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def ragged_take(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a ragged array (``flat`` cut at ``offsets``), as a new flat array and offsets."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = offsets[rows + 1] - offsets[rows]
    new_offsets = offsets_from_lengths(lengths)
    # Position of each output token in `flat`: its row's start there plus its place in the row.
    gather = np.arange(new_offsets[-1], dtype=np.int64) + np.repeat(offsets[rows] - new_offsets[:-1], lengths)
    return flat[gather], new_offsets


def pad_rows(flat: np.ndarray, lengths: np.ndarray, width: int, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """Packs consecutive rows of ``flat`` into ``[rows, width]`` ids and mask.

    Args:
        flat: The rows' tokens, concatenated.
        lengths: ``[rows]`` tokens per row, each at most ``width``.
        width: Padded length.
        padding: ``"pre"`` puts the padding before the tokens, ``"post"`` after.
    """
    steps = np.arange(width)
    if padding == "post":
        mask = steps[None, :] < lengths[:, None]
    else:
        mask = steps[None, :] >= (width - lengths)[:, None]
    ids = np.zeros(mask.shape, dtype=np.int32)
    ids[mask] = flat  # row-major fill keeps each row's tokens in order
    return ids, mask


def truncate_rows(flat: np.ndarray, offsets: np.ndarray, maxlen: int, truncating: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Cuts every row of a ragged array to at most ``maxlen`` tokens.

    ``truncating="pre"`` keeps a row's last ``maxlen`` tokens, ``"post"`` its first,
    as ``keras.utils.pad_sequences`` does.
    """
    lengths = np.diff(offsets)
    place = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    if truncating == "post":
        keep = place < maxlen
    else:
        keep = place >= np.repeat(lengths - maxlen, lengths)
    return flat[keep], offsets_from_lengths(np.minimum(lengths, maxlen))


def batch_order(lengths: np.ndarray, batch_size: int, bucket: bool, shuffle: bool, seed: int) -> list[np.ndarray]:
    """Which examples go in each batch, in the order they are served.

    Without bucketing, batches are consecutive slices of the (shuffled) examples.
    With bucketing, examples are sorted by length (ties in random order when
    shuffling), cut into batches of similar lengths, and the batches' order is
    shuffled, so each batch pads only to its own longest review.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    if bucket:
        order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if bucket and shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


# -- what a model sees -------------------------------------------------------------------------------
@dataclasses.dataclass
class Batch:
    """One batch as a model sees it.

    Attributes:
        ids: int32 ``[batch, time]`` token ids, 0 on padding.
        mask: bool ``[batch, time]``, True on real tokens (start token included).
        labels: int32 ``[batch]``, 1 = positive.
    """

    ids: np.ndarray
    mask: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


class Split:
    """Reviews of one split as ragged id sequences (start token included, truncated).

    Attributes:
        ids: int32 flat token ids of every review, concatenated.
        offsets: int64 ``[n + 1]``: review ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.
        labels: int32 ``[n]``, 1 = positive.
        lengths: int32 ``[n]`` tokens per review after truncation.
        raw_lengths: int32 ``[n]`` tokens per review before truncation.
        movies: int64 ``[n]`` IMDb title number, -1 when unknown.
        review_ids: int32 ``[n]`` the review's number in the source (file id).
        config: The settings that made it (padding side, batching, maxlen).
    """

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, labels: np.ndarray, raw_lengths: np.ndarray,
                 movies: np.ndarray, review_ids: np.ndarray, config: DataConfig, oov_tokens: int = 0):
        self.ids = ids.astype(np.int32, copy=False)
        self.offsets = offsets.astype(np.int64, copy=False)
        self.labels = labels.astype(np.int32, copy=False)
        self.lengths = np.diff(self.offsets).astype(np.int32)
        self.raw_lengths = raw_lengths.astype(np.int32, copy=False)
        self.movies = movies.astype(np.int64, copy=False)
        self.review_ids = review_ids.astype(np.int32, copy=False)
        self.config = config
        self.oov_tokens = int(oov_tokens)  # unknown words among the real tokens, before truncation

    def __len__(self) -> int:
        return len(self.labels)

    def num_tokens(self) -> int:
        """Real tokens (start tokens included) after truncation."""
        return int(self.lengths.sum())

    def sequence(self, i: int) -> np.ndarray:
        """Review ``i``'s ids, unpadded."""
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def batch(self, rows: np.ndarray, width: int | None = None) -> Batch:
        """Reviews ``rows`` padded to ``width`` (default: their longest) on ``config.padding``'s side."""
        rows = np.asarray(rows, dtype=np.int64)
        flat, _ = ragged_take(self.ids, self.offsets, rows)
        lengths = self.lengths[rows]
        width = int(lengths.max(initial=1)) if width is None else width
        ids, mask = pad_rows(flat, lengths, width, self.config.padding)
        return Batch(ids=ids, mask=mask, labels=self.labels[rows])

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[Batch]:
        """Every review exactly once, in batches of ``batch_size`` (the last may be smaller).

        ``config.batching == "padded"`` pads every batch to ``config.maxlen``;
        ``"bucket"`` groups reviews of similar length and pads each batch to its
        own longest review (see :func:`batch_order`).
        """
        bucket = self.config.batching == "bucket"
        width = None if bucket else self.config.maxlen
        for rows in batch_order(self.lengths, batch_size, bucket, shuffle, seed):
            yield self.batch(rows, width)

    def canonical_order(self) -> np.ndarray:
        """Review indices sorted by length, then tokens, then label.

        The order depends only on which reviews the split holds, not on the
        order they came in: the same reviews in any order give the same batches.
        """
        keys = [(int(self.lengths[i]), self.sequence(i).tobytes(), int(self.labels[i])) for i in range(len(self))]
        return np.array(sorted(range(len(self)), key=keys.__getitem__), dtype=np.int64)

    def scoring_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, Batch]]:
        """Every review once, as ``(rows, batch)``, batched so that its score depends only on itself.

        For evaluation and prediction. Reviews are served in
        :meth:`canonical_order`, and each is padded as training padded it:
        with ``batching="padded"`` to ``maxlen``. With ``"bucket"`` a masked
        run pads a batch to its longest review (the mask keeps padding out of
        the result); an unmasked run sees padding as input, so its batches hold
        reviews of one length only, and each review is scored at its own length,
        as length-sorted buckets trained it. Otherwise a review's score would
        move with the length of the longest review it happened to share a
        batch with.

        Args:
            batch_size: Most reviews per batch.

        Returns:
            An iterator of ``rows`` (int64 ``[b]``, indices into this split) and their :class:`Batch`.
        """
        order = self.canonical_order()
        padded = self.config.batching == "padded"
        groups = [order]
        if not padded and not self.config.mask:
            groups = np.split(order, np.flatnonzero(np.diff(self.lengths[order])) + 1)
        for group in groups:
            for start in range(0, len(group), batch_size):
                rows = group[start:start + batch_size]
                yield rows, self.batch(rows, self.config.maxlen if padded else None)

    def subset(self, rows: np.ndarray) -> "Split":
        """The reviews ``rows`` as a new split."""
        rows = np.asarray(rows, dtype=np.int64)
        ids, offsets = ragged_take(self.ids, self.offsets, rows)
        return Split(ids, offsets, self.labels[rows], self.raw_lengths[rows], self.movies[rows],
                     self.review_ids[rows], self.config)


def encode_texts(texts: Sequence[str], vocab: Vocabulary, config: DataConfig) -> Batch:
    """Turns raw texts into one batch exactly as training data was: start token, truncation, padding.

    Each text is cut by the vocabulary's own tokenizer (:meth:`Vocabulary.tokenize`),
    as its training text was. Pads to ``config.maxlen`` with ``batching="padded"``,
    else to the longest text. Labels are zero.

    Raises:
        ZooError: when the vocabulary cannot encode text (Keras' npz without its word index).
    """
    sequences = [[START] + vocab.encode(vocab.tokenize(text)) for text in texts]
    offsets = offsets_from_lengths(np.array([len(s) for s in sequences], dtype=np.int64))
    flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int32, count=int(offsets[-1]))
    flat, offsets = truncate_rows(flat, offsets, config.maxlen, config.truncating)
    lengths = np.diff(offsets)
    width = config.maxlen if config.batching == "padded" else int(lengths.max(initial=1))
    ids, mask = pad_rows(flat, lengths, width, config.padding)
    return Batch(ids=ids, mask=mask, labels=np.zeros(len(sequences), dtype=np.int32))
