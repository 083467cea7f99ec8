"""The IMDB data pipeline: raw reviews -> tokens -> ids -> padded, masked batches.

Sources, first match wins: ``DataConfig.source`` (``--data PATH``), ``$ZOO_DATA``,
then ``registry.toml``'s ``[data] search_path``. A source is one of

* Stanford's archive (``aclImdb_v1.tar.gz`` or the labelled-only copy), streamed
  once with :mod:`tarfile` and never unpacked to disk;
* an extracted ``aclImdb/`` folder (or a folder holding one);
* Keras' ``imdb.npz`` (optionally with ``imdb_word_index.json`` beside it).

The expensive step, tokenising 50k reviews, runs once per source: the result
(every review as ids into a table of every distinct word, plus labels, movies
and ratings) is cached as an ``.npz`` in ``settings.cache_dir``, keyed on the
source's sha256, :data:`CACHE_VERSION` (the tokenizer's rule) and :data:`NORMALIZATION`
(what :func:`normalize_text` does to text before tokenising). Nothing in
:class:`~zoo_core.config.DataConfig` changes those arrays, so one cache file
serves every setting; the settings (limit, validation split, vocabulary,
truncation) are then applied with vectorised numpy in well under a second.

Conventions (as in ``keras.datasets.imdb``): id 0 is padding, 1 the start token
prepended to every review, 2 an unknown word, and words from 3 on by frequency
in the training reviews. The start token counts in a review's length, so it is
cut like any other token when ``truncating="pre"`` removes a review's head.
"""

from __future__ import annotations

import array
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import pickle
import re
import sys
import tarfile
import tempfile
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

from zoo_core.config import DataConfig
from zoo_core.errors import ZooError

PAD, START, UNK = 0, 1, 2
RESERVED = ("<pad>", "<start>", "<unk>")
# Bump when the tokenizer or the cached layout changes: old cache files are then ignored.
CACHE_VERSION = 2
# What normalize_text does; part of every cache key, so a change re-tokenises every source.
NORMALIZATION = "cp1252-c1,ascii-quotes,nfkc"

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
IMDB_SIZE = 84_125_825

SPLITS = ("train", "test")
LABELS = ("neg", "pos")  # label id = index: 1 = positive

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|\S")
_REVIEW_FILE = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_URLS_FILE = re.compile(r"(?:^|/)(train|test)/urls_(pos|neg)\.txt$")
_MOVIE = re.compile(r"/title/tt(\d+)")


# -- text -> tokens ----------------------------------------------------------------------------------
def _normalization_table() -> dict[int, str]:
    """``str.translate`` table: C1 controls as Windows-1252 punctuation, typographic quotes as ASCII."""
    # IMDB's text holds Windows-1252 punctuation decoded as Latin-1 control characters:
    # U+0085 for an ellipsis, U+0096/U+0097 for dashes, U+0091-U+0094 for curly quotes.
    table = {}
    for byte in range(0x80, 0xA0):
        try:
            table[byte] = bytes([byte]).decode("cp1252")
        except UnicodeDecodeError:  # the 5 bytes cp1252 leaves undefined stay as they are
            pass
    # Before NFKC, which would split the acute accent used as an apostrophe ("don´t") into a space
    # and a combining mark, and the double prime into two primes.
    quotes = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'",
              "\u00b4": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"'}
    table = {byte: quotes.get(char, char) for byte, char in table.items()}
    table.update({ord(char): ascii_char for char, ascii_char in quotes.items()})
    return table


_NORMALIZE = _normalization_table()


def normalize_text(text: str) -> str:
    """The text as every tokenizer sees it, in training and in prediction alike.

    Windows-1252 punctuation stored as C1 control characters (as in IMDB's own
    reviews: U+0085 is an ellipsis) becomes that punctuation; typographic
    apostrophes and quotes (U+2018, U+2019, U+201C, U+201D, ...) and the acute
    accent used as an apostrophe become ASCII ``'`` and ``"``; then Unicode
    compatibility normalisation (NFKC) turns ligatures, full-width letters,
    ``…`` and no-break spaces into their plain forms. :data:`NORMALIZATION`
    names this rule in the cache key.

    >>> normalize_text("I don’t ﬁnd it “great”…")
    'I don\'t find it "great"...'
    """
    return unicodedata.normalize("NFKC", text.translate(_NORMALIZE))


def tokenize(text: str) -> list[str]:
    """Splits a review into lowercase words and punctuation marks.

    The rule: :func:`normalize_text`; lowercase; replace HTML line breaks
    (``<br />``, ``<br>``) by spaces; then a token is either a run of letters and
    digits, with apostrophes allowed inside it (``don't``, ``it's``), or any other
    single non-space character (``.``, ``!``, ``-``, ``'``). Letters are Unicode
    letters (``café`` is one word). The pipeline then prepends the start token
    (id 1) to every review, as Keras does; it counts in the review's length.

    >>> tokenize("It's GREAT.<br /><br />10/10!")
    ["it's", 'great', '.', '10', '/', '10', '!']
    """
    return _TOKEN.findall(_BREAK.sub(" ", normalize_text(text).lower()))


# The characters keras.preprocessing.text.text_to_word_sequence removes, as Keras' imdb.npz was made.
_KERAS_FILTERS = str.maketrans({c: " " for c in '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'})


def keras_tokenize(text: str) -> list[str]:
    """Splits text as Keras' ``imdb.npz`` was made: punctuation removed, apostrophes kept.

    :func:`normalize_text`, lowercase, every character of Keras' default filters
    (punctuation but ``'``, tabs, newlines) replaced by a space, then split on
    spaces. ``<br />`` thus becomes the word ``br``, which Keras' data holds.

    >>> keras_tokenize("Great film, I didn't<br />hate it!")
    ['great', 'film', 'i', "didn't", 'br', 'hate', 'it']
    """
    return [t for t in normalize_text(text).lower().translate(_KERAS_FILTERS).split(" ") if t]


# How a vocabulary's words were cut from text: its source's tokenizer, recorded with the vocabulary
# so new text is encoded as the training data was. "none": Keras' npz without its word index, whose
# words are bare ids, so no text can be encoded.
TOKENIZERS = {"zoo": tokenize, "keras": keras_tokenize, "none": None}


def is_blank(text: str) -> bool:
    """True when ``text`` holds no letter or digit once HTML line breaks are removed (``""``, ``"<br />"``)."""
    return not re.search(r"[^\W_]", _BREAK.sub(" ", normalize_text(text)))


# -- vocabulary --------------------------------------------------------------------------------------
class Vocabulary:
    """Words by id: 0 ``<pad>``, 1 ``<start>``, 2 ``<unk>``, then words by training frequency.

    Args:
        words: Every word in id order, starting with :data:`RESERVED`.
        counts: Optional training-set count of each word (same order), for export.
        tokenizer: How the training text was cut into these words, a key of
            :data:`TOKENIZERS`; new text is cut the same way (:meth:`tokenize`).

    Raises:
        ZooError: for words that do not start with :data:`RESERVED`, or an unknown tokenizer.
    """

    def __init__(self, words: Sequence[str], counts: Sequence[int] | None = None, tokenizer: str = "zoo"):
        words = list(words)
        if tuple(words[:3]) != RESERVED:
            raise ZooError(f"a vocabulary must start with {', '.join(RESERVED)}")
        if tokenizer not in TOKENIZERS:
            raise ZooError(f"unknown tokenizer {tokenizer!r} (known: {', '.join(TOKENIZERS)})")
        self.words = words
        self.counts = None if counts is None else [int(c) for c in counts]
        self.tokenizer = tokenizer
        self.index = {word: i for i, word in enumerate(words)}

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (self.words, self.tokenizer) == (other.words, other.tokenizer)

    def tokenize(self, text: str) -> list[str]:
        """``text`` cut into tokens as this vocabulary's training text was.

        Raises:
            ZooError: when the vocabulary holds ids, not words (Keras' npz without its word index).
        """
        split = TOKENIZERS[self.tokenizer]
        if split is None:
            raise ZooError("this run was trained on Keras' imdb.npz without imdb_word_index.json, so its "
                           "vocabulary holds word ids, not words, and every word of a text would be <unk>; "
                           "retrain with imdb_word_index.json beside imdb.npz, or on the aclImdb archive")
        return split(text)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown words become :data:`UNK`. No start token is added."""
        get = self.index.get
        return [get(token, UNK) for token in tokens]

    def decode(self, ids: Iterable[int]) -> str:
        """The words of ``ids`` joined by spaces, skipping padding and start tokens.

        Raises:
            ZooError: for an id outside the vocabulary.
        """
        flat = np.asarray(ids, dtype=np.int64).ravel()
        bad = flat[(flat < 0) | (flat >= len(self.words))]
        if bad.size:
            raise ZooError(f"id {int(bad[0])} is outside the vocabulary (ids 0..{len(self.words) - 1})")
        return " ".join(self.words[i] for i in flat if i not in (PAD, START))

    def word_index(self) -> dict[str, int]:
        """``{word: id}`` for every word (reserved tokens included)."""
        return dict(self.index)

    def to_json(self) -> str:
        payload: dict[str, Any] = {"words": self.words, "tokenizer": self.tokenizer}
        if self.counts is not None:
            payload["counts"] = self.counts
        return json.dumps(payload, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        try:
            payload = json.loads(text)
            words = payload["words"]
            tokenizer = payload.get("tokenizer") or _tokenizer_of(words)
            return cls(words, payload.get("counts"), tokenizer)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ZooError(f"not a vocabulary file ({err})") from None

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _tokenizer_of(words: Sequence[str]) -> str:
    """The tokenizer of a vocabulary saved before it was recorded, told from its words."""
    if len(words) > 3 and words[3] == "<unused>":  # Keras' npz: id 3 (rank 0) never occurs
        named = any(word != f"<{i}>" for i, word in enumerate(words[4:], start=4))
        return "keras" if named else "none"
    return "zoo"


# -- batches and splits ------------------------------------------------------------------------------
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


def _ragged_take(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a ragged array (``flat`` cut at ``offsets``), as a new flat array and offsets."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = offsets[rows + 1] - offsets[rows]
    new_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
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
    new_offsets = np.zeros_like(offsets)
    np.cumsum(np.minimum(lengths, maxlen), out=new_offsets[1:])
    return flat[keep], new_offsets


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
        flat, _ = _ragged_take(self.ids, self.offsets, rows)
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
        ids, offsets = _ragged_take(self.ids, self.offsets, rows)
        return Split(ids, offsets, self.labels[rows], self.raw_lengths[rows], self.movies[rows],
                     self.review_ids[rows], self.config)


@dataclasses.dataclass
class Dataset:
    """A prepared dataset.

    Attributes:
        vocab: Built from the training split only.
        train, val, test: The splits.
        config: The settings that made it.
        source: Where the data was read from.
        checksum: sha256 of the source file (a fingerprint of the files for a folder).
        report: What the preparation did: counts, truncated and dropped reviews,
            OOV rates, the split method, warnings, the cache file and timings.
    """

    vocab: Vocabulary
    train: Split
    val: Split
    test: Split
    config: DataConfig
    source: str
    checksum: str
    report: dict


# -- the tokenised corpus (what is cached) -----------------------------------------------------------
@dataclasses.dataclass
class Corpus:
    """Every review of a source, tokenised: what the cache holds.

    Attributes:
        words: Table of every distinct token. Alphabetical for text sources;
            for Keras' npz, in Keras' rank order (``ranked``), entry 0 unused.
        tokens: int32 ids into ``words``, all reviews concatenated (no start token).
        offsets: int64 ``[n + 1]`` review boundaries in ``tokens``.
        labels: int8 ``[n]`` 1 = positive. splits: int8 ``[n]`` 0 = train, 1 = test.
        movies: int64 ``[n]`` IMDb title number, -1 unknown. ratings: int8 ``[n]`` stars, 0 unknown.
        review_ids: int32 ``[n]`` file id within its split and label folder.
        ranked: Whether ``words`` is already the vocabulary's order (Keras ids).
        kind: ``"archive"``, ``"folder"`` or ``"npz"``.
        tokenizer: How the text was cut into ``words`` (a key of :data:`TOKENIZERS`):
            ``"zoo"`` for text sources, ``"keras"`` for an npz with its word index,
            ``"none"`` for one without (its words are bare ids).
    """

    words: list[str]
    tokens: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    movies: np.ndarray
    ratings: np.ndarray
    review_ids: np.ndarray
    ranked: bool
    kind: str
    tokenizer: str = "zoo"

    def __len__(self) -> int:
        return len(self.labels)

    def to_arrays(self) -> dict[str, np.ndarray]:
        # Words travel as one UTF-8 blob: tokens never contain whitespace, and no pickle is needed.
        blob = np.frombuffer("\n".join(self.words).encode("utf-8"), dtype=np.uint8)
        return {
            "words": blob, "tokens": self.tokens, "offsets": self.offsets, "labels": self.labels,
            "splits": self.splits, "movies": self.movies, "ratings": self.ratings, "review_ids": self.review_ids,
            "meta": np.frombuffer(json.dumps({"ranked": self.ranked, "kind": self.kind, "tokenizer": self.tokenizer,
                                              "version": CACHE_VERSION, "normalization": NORMALIZATION}).encode(),
                                  dtype=np.uint8),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> "Corpus":
        meta = json.loads(bytes(arrays["meta"]).decode())
        if meta.get("version") != CACHE_VERSION or meta.get("normalization") != NORMALIZATION:
            raise ValueError("cache version differs")
        corpus = cls(
            words=bytes(arrays["words"]).decode("utf-8").split("\n"),
            tokens=arrays["tokens"], offsets=arrays["offsets"], labels=arrays["labels"], splits=arrays["splits"],
            movies=arrays["movies"], ratings=arrays["ratings"], review_ids=arrays["review_ids"],
            ranked=bool(meta["ranked"]), kind=str(meta["kind"]), tokenizer=str(meta["tokenizer"]),
        )
        n = len(corpus.labels)
        if len(corpus.offsets) != n + 1 or corpus.offsets[-1] != len(corpus.tokens) or (
                len(corpus.tokens) and corpus.tokens.max() >= len(corpus.words)):
            raise ValueError("inconsistent arrays")
        return corpus


MAX_REVIEW_ID = int(np.iinfo(np.int32).max)  # review ids are stored as int32


def _review_numbers(name: str, review_id: str, rating: str) -> tuple[int, int]:
    """The id and rating in a review file's name ``<id>_<rating>.txt``, checked.

    Raises:
        ZooError: for an id beyond :data:`MAX_REVIEW_ID` or a rating outside 1..10.
    """
    # Length first: int() of a thousands-digit name would itself fail.
    if len(review_id.lstrip("0")) > len(str(MAX_REVIEW_ID)) or int(review_id) > MAX_REVIEW_ID:
        raise ZooError(f"{name}: review id {review_id} is too large (review files are named <id>_<rating>.txt, "
                       f"with ids up to {MAX_REVIEW_ID:,}); rename or remove the file")
    if len(rating.lstrip("0")) > 2 or not 1 <= int(rating) <= 10:
        raise ZooError(f"{name}: rating {rating} is outside 1..10 (review files are named <id>_<rating>.txt, "
                       "rated 1-4 in neg/ and 7-10 in pos/); rename or remove the file")
    return int(review_id), int(rating)


class _TokenTable(dict):
    """``token -> id``, giving each new token the next id on first lookup."""

    def __missing__(self, token: str) -> int:
        value = self[token] = len(self)
        return value


class _CorpusBuilder:
    """Collects reviews as they stream in, then sorts them into a canonical :class:`Corpus`."""

    def __init__(self):
        self.table = _TokenTable()
        self.tokens = array.array("i")
        self.lengths = array.array("q")
        self.meta = []  # (split, label, review id, rating) per review
        self.urls: dict[tuple[int, int], list[str]] = {}

    def add_review(self, split: str, label: str, review_id: int, rating: int, text: str) -> None:
        before = len(self.tokens)
        self.tokens.extend(map(self.table.__getitem__, tokenize(text)))
        self.lengths.append(len(self.tokens) - before)
        self.meta.append((SPLITS.index(split), LABELS.index(label), review_id, rating))

    def add_urls(self, split: str, label: str, text: str) -> None:
        self.urls[(SPLITS.index(split), LABELS.index(label))] = text.splitlines()

    def build(self, kind: str) -> Corpus:
        meta = np.array(self.meta, dtype=np.int64).reshape(-1, 4)
        # Canonical order (split, label, review id), whatever order the files came in.
        order = np.lexsort((meta[:, 2], meta[:, 1], meta[:, 0]))
        offsets = np.zeros(len(meta) + 1, dtype=np.int64)
        np.cumsum(np.frombuffer(self.lengths, dtype=np.int64), out=offsets[1:])
        tokens, offsets = _ragged_take(np.frombuffer(self.tokens, dtype=np.int32), offsets, order)
        meta = meta[order]
        # Alphabetical word table, so ties in frequency break alphabetically later on.
        first_seen = list(self.table)
        alphabetical = sorted(range(len(first_seen)), key=first_seen.__getitem__)
        relabel = np.empty(len(first_seen), dtype=np.int32)
        relabel[alphabetical] = np.arange(len(first_seen), dtype=np.int32)
        return Corpus(
            words=[first_seen[i] for i in alphabetical],
            tokens=relabel[tokens] if len(tokens) else tokens.astype(np.int32),
            offsets=offsets,
            labels=meta[:, 1].astype(np.int8),
            splits=meta[:, 0].astype(np.int8),
            movies=self._movies(meta),
            ratings=meta[:, 3].astype(np.int8),
            review_ids=meta[:, 2].astype(np.int32),
            ranked=False,
            kind=kind,
        )

    def _movies(self, meta: np.ndarray) -> np.ndarray:
        """IMDb title numbers from ``urls_{pos,neg}.txt``: line ``i`` is review file ``i``'s movie."""
        movies = np.full(len(meta), -1, dtype=np.int64)
        for row, (split, label, review_id, _) in enumerate(meta):
            lines = self.urls.get((int(split), int(label)), ())
            if review_id < len(lines):
                match = _MOVIE.search(lines[review_id])
                if match and len(match.group(1).lstrip("0")) > 18:  # beyond int64
                    raise ZooError(f"{SPLITS[split]}/urls_{LABELS[label]}.txt, line {review_id + 1}: movie number "
                                   f"tt{match.group(1)} is too large; fix or remove that urls file")
                if match:
                    movies[row] = int(match.group(1))
        return movies


# -- reading sources ---------------------------------------------------------------------------------
def _progressbar(enabled: bool, length: int, label: str):
    if not enabled:
        return _NoProgress()
    return click.progressbar(length=length, label=label, file=sys.stderr, show_eta=True)


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        pass


def _tar_mode(path: Path) -> str:
    """gzip for ``.gz``/``.tgz`` (so a damaged file says "not a gzip file"), else let tarfile detect."""
    return "r:gz" if path.suffix.lower() in (".gz", ".tgz") else "r:*"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _corrupt(path: Path, err: BaseException) -> ZooError:
    return ZooError(f"{path} is corrupt or truncated ({_one_line(err)}); download it again or point --data elsewhere")


def _read_archive(path: Path, progress: bool) -> Corpus:
    """Streams a Stanford ``.tar.gz`` once, tokenising reviews as they come."""
    builder = _CorpusBuilder()
    size = path.stat().st_size
    try:
        with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode=_tar_mode(path)) as tar, \
                _progressbar(progress, size, f"tokenising {path.name}") as bar:
            done = 0
            for member in tar:
                review = _REVIEW_FILE.search(member.name)
                urls = None if review else _URLS_FILE.search(member.name)
                if (review or urls) and member.isfile():
                    if review:
                        split, label, review_id, rating = review.groups()
                        review_id, rating = _review_numbers(member.name, review_id, rating)
                    text = tar.extractfile(member).read().decode("utf-8", "replace")
                    if review:
                        builder.add_review(split, label, review_id, rating, text)
                    else:
                        builder.add_urls(*urls.groups(), text)
                position = raw.tell()
                if position - done >= 1 << 20:  # redraw per MiB read, not per file
                    bar.update(position - done)
                    done = position
            bar.update(size - done)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise _corrupt(path, err) from None
    return builder.build("archive")


def _stanford_root(folder: Path) -> Path | None:
    """The folder holding ``train/`` and ``test/``: ``folder`` itself or its ``aclImdb/``."""
    for candidate in (folder, folder / "aclImdb"):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    return None


def _stanford_files(root: Path) -> list[Path]:
    files = []
    for split in SPLITS:
        files.extend(p for p in (root / split).glob("urls_*.txt"))
        for label in LABELS:
            files.extend((root / split / label).glob("*_*.txt"))
    return files


def _read_folder(root: Path, progress: bool) -> Corpus:
    """Reads an extracted ``aclImdb/`` tree."""
    builder = _CorpusBuilder()
    files = _stanford_files(root)
    with _progressbar(progress, len(files), f"tokenising {root}") as bar:
        for file in files:
            name = file.relative_to(root).as_posix()
            review, urls = _REVIEW_FILE.search(name), _URLS_FILE.search(name)
            if review:
                split, label, review_id, rating = review.groups()
                review_id, rating = _review_numbers(str(file), review_id, rating)
            try:
                text = file.read_text(encoding="utf-8", errors="replace")
            except OSError as err:
                raise ZooError(f"cannot read {file}: {err.strerror or _one_line(err)}") from None
            if review:
                builder.add_review(split, label, review_id, rating, text)
            elif urls:
                builder.add_urls(*urls.groups(), text)
            bar.update(1)
    return builder.build("folder")


class _CheckedArray(np.ndarray):
    """The only array class the restricted unpickler builds: its state must fill its shape exactly.

    A pickle names its own shape; without this check a few bytes claiming
    ``(10**12,)`` would make numpy allocate terabytes before failing.
    """

    def __setstate__(self, state):
        shape, dtype, data = (state[1], state[2], state[4]) if len(state) == 5 else (state[0], state[1], state[3])
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise pickle.UnpicklingError(f"a pickled array has shape {shape!r}")
        held = len(data) if isinstance(data, list) else len(data) // max(1, np.dtype(dtype).itemsize)
        if math.prod(shape) != held:
            raise pickle.UnpicklingError(f"a pickled array claims shape {shape} but holds {held:,} values")
        super().__setstate__(state)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy object arrays of int lists and nothing else, as Keras' own npz reader does.

    ``np.load(allow_pickle=True)`` would run any code a tampered file carries.
    """

    _ALLOWED = {("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) == ("numpy", "ndarray"):
            return _CheckedArray
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


# Keras' imdb.npz members are about 20 MB each once unzipped; far larger is not that file.
MAX_NPY_BYTES = 1 << 30


def _read_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member; its header is checked against its size before anything is allocated.

    Raises:
        ValueError: a header or pickle that is not a sane array (the caller names the file).
    """
    if info.file_size > MAX_NPY_BYTES:
        raise ValueError(f"{info.file_size:,} bytes unzipped, more than an imdb.npz member ({MAX_NPY_BYTES:,})")
    with archive.open(info) as member:
        buffer = io.BytesIO(member.read())
    version = np.lib.format.read_magic(buffer)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"npy format version {version[0]}.{version[1]} is not read here")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(buffer)
    if not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"its header gives shape {shape}")
    count, available = math.prod(shape), len(buffer.getbuffer()) - buffer.tell()
    # An object array's pickle needs at least a byte per element; a plain one its itemsize.
    needed = count if dtype.hasobject else count * dtype.itemsize
    if needed > available:
        raise ValueError(f"its header claims shape {shape} ({count:,} values) but only {available:,} bytes follow")
    if not dtype.hasobject:
        buffer.seek(0)
        return np.lib.format.read_array(buffer, allow_pickle=False)
    try:
        array = _ArrayUnpickler(buffer).load()
    except Exception as err:  # noqa: BLE001 - any failure to unpickle untrusted bytes is a bad file
        raise ValueError(f"its pickled data is not an array ({_one_line(err)})") from None
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise ValueError(f"its pickled data is not the {shape} array its header announces")
    return np.asarray(array)


def read_keras_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Keras' ``imdb.npz``: ``x_train, y_train, x_test, y_test``.

    The ``x`` arrays hold one list per review of word *ranks* (1 = most frequent
    word), without start token; ``keras.datasets.imdb.load_data`` turns rank ``r``
    into id ``r + 3`` and prepends the start id 1.

    Raises:
        ZooError: for a file that is not such an npz (not a zip, a member that is
            not a sane array, missing arrays), naming the file and the member.
    """
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    try:
                        arrays[info.filename[:-4]] = _read_npy(archive, info)
                    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                        raise ZooError(f"{path}: {info.filename} is not a readable array ({_one_line(err)}); "
                                       "expected Keras' imdb.npz") from None
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as err:
        raise ZooError(f"{path} is not a readable Keras imdb.npz ({_one_line(err)})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise ZooError(f"{path} lacks {', '.join(missing)} (expected Keras' imdb.npz)")
    return arrays


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _npz_reviews(path: Path, name: str, x: np.ndarray) -> list:
    """The reviews of ``x`` (``x_train`` or ``x_test``) as sequences of ints, checked.

    Raises:
        ZooError: unless ``x`` is a 1-D array of integer lists (Keras' layout) or a 2-D integer array.
    """
    expected = f"{path}: {name} must hold one list of word ranks (whole numbers) per review"
    if x.ndim == 2 and x.dtype.kind in "iu":
        return list(x)
    if x.ndim != 1 or x.dtype != object:
        raise ZooError(f"{expected}; it holds a {x.ndim}-D array of {x.dtype} values")
    rows = list(x)
    for row in rows:
        if isinstance(row, np.ndarray) and not (row.ndim == 1 and row.dtype.kind in "iu"):
            raise ZooError(f"{expected}; one is a {row.ndim}-D array of {row.dtype} values")
        if not isinstance(row, (list, tuple, np.ndarray)):
            raise ZooError(f"{expected}; one review is a {type(row).__name__} ({repr(row)[:30]})")
    kinds = set(map(type, itertools.chain.from_iterable(r for r in rows if not isinstance(r, np.ndarray))))
    bad = [t for t in kinds if t is bool or not issubclass(t, (int, np.integer))]
    if bad:
        raise ZooError(f"{expected}; it holds {bad[0].__name__} values")
    return rows


def _npz_labels(path: Path, name: str, y: np.ndarray, reviews: int) -> np.ndarray:
    """``y`` (``y_train`` or ``y_test``) as int8 0/1 labels, one per review, checked.

    Raises:
        ZooError: for labels that are not one 0 or 1 per review (2, -1, 0.7, "pos", a 2-D array ...).
    """
    if y.ndim != 1:
        raise ZooError(f"{path}: {name} must be one label per review; it is a {y.ndim}-D array of shape {y.shape}")
    if len(y) != reviews:
        raise ZooError(f"{path}: {name} has {_plural(len(y), 'label')} for {_plural(reviews, 'review')} in "
                       f"x_{name[2:]}; each review needs exactly one label")
    if y.dtype == object:  # a pickled array of Python numbers
        try:
            y = np.array(y.tolist())
        except ValueError:
            pass
    if y.dtype.kind not in "biuf":
        raise ZooError(f"{path}: {name} holds {y.dtype} values; labels must be 0 (negative) or 1 (positive)")
    wrong = y[(y != 0) & (y != 1)]
    if wrong.size:
        shown = ", ".join(str(v) for v in np.unique(wrong)[:3].tolist())
        raise ZooError(f"{path}: {name} holds labels {shown}; labels must be 0 (negative) or 1 (positive)")
    return y.astype(np.int8)


def _read_word_index(path: Path) -> dict[str, int]:
    """``imdb_word_index.json``: ``{word: rank}``, ranks whole numbers from 1.

    Raises:
        ZooError: for a file that is not such a JSON object.
    """
    fix = "fix it, or move it away (an npz without it has no words, so text cannot be encoded)"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ZooError(f"{path} is not a readable JSON word index ({_one_line(err)}); {fix}") from None
    if not isinstance(index, dict):
        raise ZooError(f"{path} must be a JSON object {{word: rank}}; it is a {type(index).__name__}; {fix}")
    for word, rank in index.items():
        if type(rank) is not int or rank < 1:
            raise ZooError(f"{path}: word {word!r} has rank {rank!r}; ranks are whole numbers from 1; {fix}")
        if "\n" in word:  # the cache stores words one per line
            raise ZooError(f"{path}: word {word!r} holds a line break; {fix}")
    return index


# num_words is at most this, so a rank at or above it is never in any vocabulary: all such ranks share
# one placeholder, which keeps a file claiming rank 10**12 from asking for a table that long.
MAX_NPZ_RANK = {f.name: f for f in dataclasses.fields(DataConfig)}["num_words"].metadata["high"]


def _read_npz(path: Path, progress: bool) -> Corpus:
    """Keras' ``imdb.npz`` with ``imdb_word_index.json`` beside it if there is one."""
    arrays = read_keras_npz(path)
    sequences = [_npz_reviews(path, "x_train", arrays["x_train"]), _npz_reviews(path, "x_test", arrays["x_test"])]
    labels = np.concatenate([_npz_labels(path, "y_train", arrays["y_train"], len(sequences[0])),
                             _npz_labels(path, "y_test", arrays["y_test"], len(sequences[1]))])
    lengths = np.array([len(s) for part in sequences for s in part], dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    try:
        tokens = np.fromiter(itertools.chain.from_iterable(itertools.chain(*sequences)), dtype=np.int64,
                             count=int(offsets[-1]))
    except OverflowError:
        raise ZooError(f"{path}: a word rank is beyond 64-bit integers; expected Keras' imdb.npz") from None
    if tokens.size and tokens.min() < 1:
        raise ZooError(f"{path}: word ranks start at 1 in Keras' imdb.npz, found {int(tokens.min())}")
    np.minimum(tokens, MAX_NPZ_RANK, out=tokens)
    top = int(tokens.max(initial=0))
    words = [f"<{rank + 3}>" for rank in range(top + 1)]  # placeholders named by Keras id
    words[0] = "<unused>"  # Keras id 3 (rank 0) never occurs
    if top == MAX_NPZ_RANK:
        words[top] = "<rare>"
    index_file = path.with_name("imdb_word_index.json")
    named = index_file.is_file()
    if named:
        for word, rank in _read_word_index(index_file).items():
            if rank <= top and rank < MAX_NPZ_RANK:
                words[rank] = word
    n_train = len(sequences[0])
    return Corpus(
        words=words, tokens=tokens.astype(np.int32), offsets=offsets, labels=labels,
        splits=(np.arange(len(labels)) >= n_train).astype(np.int8),
        movies=np.full(len(labels), -1, dtype=np.int64), ratings=np.zeros(len(labels), dtype=np.int8),
        review_ids=np.concatenate([np.arange(n_train), np.arange(len(labels) - n_train)]).astype(np.int32),
        ranked=True, kind="npz", tokenizer="keras" if named else "none",
    )


def source_kind(path: Path) -> str:
    """``"npz"``, ``"folder"`` or ``"archive"``."""
    if path.is_dir():
        return "folder"
    return "npz" if path.suffix == ".npz" else "archive"


def read_corpus(path: str | os.PathLike, progress: bool = False) -> Corpus:
    """Reads and tokenises every review of a source (slow: see :func:`load_corpus` for the cached way).

    Raises:
        ZooError: for a source that is missing a split, has training reviews of one
            class only, or cannot be read (see the readers).
    """
    path = Path(path)
    kind = source_kind(path)
    if kind == "npz":
        corpus = _read_npz(path, progress)
    elif kind == "folder":
        root = _stanford_root(path)
        if root is None:
            raise ZooError(f"{path} holds no aclImdb/ train and test folders")
        corpus = _read_folder(root, progress)
    else:
        corpus = _read_archive(path, progress)
    for split in (0, 1):
        if not np.any(corpus.splits == split):
            raise ZooError(f"{path} holds no {SPLITS[split]} reviews (expected the aclImdb layout)")
    train_labels = corpus.labels[corpus.splits == 0]
    if _one_class(train_labels):
        raise ZooError(f"{path} holds {_one_class(train_labels)} training reviews ({len(train_labels):,} in all); "
                       "a classifier needs positive and negative ones (aclImdb/train/pos and aclImdb/train/neg)")
    return corpus


def _one_class(labels: np.ndarray) -> str:
    """What ``labels`` hold when it is not both classes (``"no"``, ``"only positive"``), else ``""``."""
    if not len(labels):
        return "no"
    if labels.min() == labels.max():
        return "only " + ("negative", "positive")[int(labels[0])]
    return ""


# -- finding, checking and caching sources -----------------------------------------------------------
def keras_datasets_dir() -> Path:
    """Where Keras keeps datasets: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def candidate_sources(config: DataConfig, settings) -> list[tuple[Path, str]]:
    """Where the loader looks, in order: ``(path, why)``."""
    if config.source:
        # The CLI's --data flag also reads $ZOO_DATA: name the one the user actually set.
        why = "ZOO_DATA" if config.source == os.environ.get("ZOO_DATA") else "--data"
        return [(Path(config.source).expanduser(), why)]
    if os.environ.get("ZOO_DATA"):
        return [(Path(os.environ["ZOO_DATA"]).expanduser(), "ZOO_DATA")]
    return [(Path(p), "search path") for p in settings.search_path]


def find_source(config: DataConfig, settings, allow_download: bool = False, progress: bool = True) -> Path:
    """The first existing source; downloads Stanford's archive as a last resort when allowed.

    Cheap (no TensorFlow, one small read: :func:`check_source`), so commands call it before slow setup.

    Raises:
        ZooError: naming every place looked at and how to point elsewhere, or
            naming a source found that is no IMDB source (:func:`check_source`).
    """
    candidates = candidate_sources(config, settings)
    for path, _ in candidates:
        if path.exists():
            return check_source(path)
    if config.source or os.environ.get("ZOO_DATA"):
        path, why = candidates[0]
        raise ZooError(f"no IMDB data at {path} (from {why}); give an existing .tar.gz, aclImdb/ folder or imdb.npz")
    if allow_download:
        return download_imdb(progress=progress)
    looked = ", ".join(str(p) for p, _ in candidates) or "nowhere (registry.toml has no [data] search_path)"
    # Only what every command that loads data has: --data, $ZOO_DATA and `zoo data download`.
    raise ZooError(f"no IMDB data found; looked in: {looked}; point to a copy with --data PATH or ZOO_DATA=PATH, "
                   "or fetch Stanford's archive with `zoo data download`")


#: What an IMDB source may be, for the messages that refuse something else.
SOURCE_KINDS = "a .tar.gz archive, an aclImdb/ folder or Keras' imdb.npz"
#: How the archives tarfile reads begin: gzip, bzip2, xz; an uncompressed tar says "ustar" at byte 257.
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def check_source(path: Path) -> Path:
    """``path`` if it can be an IMDB source, judged from its first bytes; it is read in full only later.

    Cheap (one small read), so commands call it (through :func:`find_source`)
    before they import TensorFlow, and a text file given as ``--data`` is
    refused at once instead of after seconds of setup. A damaged file of the
    right kind passes here and is named by the reader.

    Raises:
        ZooError: a folder without the aclImdb layout, an empty file, or a file
            that is neither a tar archive nor a zip (an npz).
    """
    if path.is_dir():
        if _stanford_root(path) is None:
            raise ZooError(f"{path} holds no aclImdb/ train and test folders")
        return path
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as err:
        raise ZooError(f"cannot read {path}: {err.strerror or err}") from None
    if not head:
        raise ZooError(f"{path} is empty: expected {SOURCE_KINDS}")
    if source_kind(path) == "npz":
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise ZooError(f"{path} is not a readable Keras imdb.npz (not a zip file)")
        return path
    gzip_only = _tar_mode(path) == "r:gz"
    if head.startswith(_ARCHIVE_MAGIC[:1] if gzip_only else _ARCHIVE_MAGIC) or (
            not gzip_only and head[257:262] == b"ustar"):
        return path
    looks = "text" if _looks_like_text(head) else "data of another kind"
    raise ZooError(f"{path} is not {SOURCE_KINDS}: it holds {looks}")


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # a character cut at the end of the sample is still text
            return False
    return b"\x00" not in head


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, write) -> None:
    """Calls ``write(file)`` on a temporary file beside ``path``, then renames it into place.

    A crash or error midway leaves no partial file at ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remembered_sha256(path: Path, cache_dir: Path) -> str:
    """sha256 of a file, remembered in ``cache_dir/checksums.json`` by (path, size, mtime)."""
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_file = cache_dir / "checksums.json"
    try:
        memo = json.loads(memo_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if not isinstance(memo, dict):
        memo = {}
    if key not in memo:
        memo[key] = _sha256_file(path)
        _write_atomic(memo_file, lambda f: f.write(json.dumps(memo, indent=1).encode()))
    return memo[key]


def source_checksum(path: Path, cache_dir: Path) -> str:
    """sha256 of a source file, computed once per (path, size, mtime).

    A folder gets a fingerprint of its files' names, sizes and modification times;
    an ``imdb.npz`` also depends on the word index beside it, which names its words.
    """
    path = path.resolve()
    if path.is_dir():
        root = _stanford_root(path) or path
        digest = hashlib.sha256()
        for file in sorted(_stanford_files(root)):
            stat = file.stat()
            digest.update(f"{file.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return "folder-" + digest.hexdigest()
    checksum = _remembered_sha256(path, cache_dir)
    word_index = path.with_name("imdb_word_index.json")
    if source_kind(path) == "npz" and word_index.is_file():
        checksum += "+index-" + _remembered_sha256(word_index, cache_dir)[:16]
    return checksum


def cache_file(cache_dir: Path, checksum: str) -> Path:
    """The cache file of a source: keyed on its checksum, the tokenizer's version and the text normalisation."""
    key = hashlib.sha256(f"{checksum}|{NORMALIZATION}".encode()).hexdigest()[:24]
    return Path(cache_dir) / f"imdb-{key}-v{CACHE_VERSION}.npz"


def load_corpus(path: Path, cache_dir: Path, progress: bool = True) -> tuple[Corpus, dict]:
    """The tokenised corpus of ``path``, from the cache when there, else read and cached.

    Returns:
        ``(corpus, info)`` with info keys ``checksum``, ``cache``, ``cache_hit``,
        ``seconds`` and ``warnings``.
    """
    started = time.perf_counter()
    warnings = []
    checksum = source_checksum(path, cache_dir)
    file = cache_file(cache_dir, checksum)
    corpus = None
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as arrays:
                corpus = Corpus.from_arrays(arrays)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.append(f"cache file {file} is corrupt ({err}); rebuilding it")
            _warn(warnings[-1])
            file.unlink(missing_ok=True)
    hit = corpus is not None
    if corpus is None:
        corpus = read_corpus(path, progress)
        _write_atomic(file, lambda f: np.savez(f, **corpus.to_arrays()))
    info = {"checksum": checksum, "cache": str(file), "cache_hit": hit,
            "seconds": time.perf_counter() - started, "warnings": warnings}
    return corpus, info


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def download_imdb(dest: str | os.PathLike | None = None, url: str = IMDB_URL, sha256: str = IMDB_SHA256,
                  size: int | None = IMDB_SIZE, progress: bool = True) -> Path:
    """Downloads Stanford's archive (or whatever ``url`` names) and verifies it.

    Args:
        dest: Target file; default ``<keras datasets dir>/<url's file name>``.
        url: Where from (``http(s)://`` or ``file://``).
        sha256: Expected sha256 of the file.
        size: Expected size in bytes, or None not to check.
        progress: Show a progress bar on stderr.

    Returns:
        The verified file. An existing file that verifies is reused.

    Raises:
        ZooError: when the download fails or the file does not verify (nothing is kept).
    """
    dest = Path(dest) if dest else keras_datasets_dir() / Path(urllib.parse.urlparse(url).path).name
    if dest.is_file() and (size is None or dest.stat().st_size == size) and _sha256_file(dest) == sha256:
        return dest
    digest = hashlib.sha256()

    def write(f) -> None:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or size or 0)
            with _progressbar(progress and total > 0, total, f"downloading {url}") as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    f.write(chunk)
                    bar.update(len(chunk))
        got = f.tell()
        if size is not None and got != size:
            raise ZooError(f"download of {url} has {got:,} bytes, expected {size:,}; nothing kept")
        if digest.hexdigest() != sha256:
            raise ZooError(f"download of {url} has sha256 {digest.hexdigest()}, expected {sha256}; nothing kept")

    try:
        _write_atomic(dest, write)
    except (urllib.error.URLError, OSError) as err:
        raise ZooError(f"could not download {url} ({getattr(err, 'reason', err)}); "
                       "fetch it by hand and pass --data PATH") from None
    return dest


# -- corpus -> dataset -------------------------------------------------------------------------------
def stratified_subset(rows: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` of ``rows`` drawn without replacement, keeping the label proportions; sorted."""
    if n >= len(rows):
        return rows
    classes = np.unique(labels[rows])
    shares = np.array([np.sum(labels[rows] == c) for c in classes]) * n / len(rows)
    quota = np.floor(shares).astype(int)
    quota[np.argsort(quota - shares)[: n - quota.sum()]] += 1  # largest remainders first
    picked = [rng.choice(rows[labels[rows] == c], size=q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked))


def movie_split(rows: np.ndarray, movies: np.ndarray, fraction: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Splits ``rows`` into (train, val) with whole movies in val, about ``fraction`` of the reviews.

    Movies are taken in a seeded random order until val holds ``fraction`` of the
    reviews. Reviews of unknown movie (-1) count as movies of their own.
    """
    target = round(fraction * len(rows))
    if target == 0:
        return rows, rows[:0]
    groups = np.where(movies[rows] >= 0, movies[rows], -1 - np.arange(len(rows)))
    unique, group_of = np.unique(groups, return_inverse=True)
    sizes = np.bincount(group_of)
    order = rng.permutation(len(unique))
    # The smallest prefix of shuffled movies reaching the target, leaving train at least one movie.
    taken = min(int(np.searchsorted(np.cumsum(sizes[order]), target)) + 1, len(unique) - 1)
    in_val = np.zeros(len(unique), dtype=bool)
    in_val[order[:taken]] = True
    return rows[~in_val[group_of]], rows[in_val[group_of]]


def random_split(rows: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Splits ``rows`` into (train, val) at random, ``round(fraction * n)`` in val."""
    shuffled = rng.permutation(rows)
    n_val = round(fraction * len(rows))
    return np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val])


def build_vocabulary(corpus: Corpus, train_rows: np.ndarray, num_words: int) -> tuple[Vocabulary, np.ndarray]:
    """The vocabulary and a lookup table from corpus word ids to vocabulary ids.

    Text sources rank words by their count in ``train_rows`` (ties alphabetical);
    Keras' npz keeps Keras' ids, ranks above the limit becoming UNK as ``load_data`` does.
    """
    lookup = np.full(len(corpus.words), UNK, dtype=np.int32)
    if corpus.ranked:
        kept = min(num_words - len(RESERVED), len(corpus.words))
        order = np.arange(kept)
        counts = np.bincount(_ragged_take(corpus.tokens, corpus.offsets, train_rows)[0],
                             minlength=len(corpus.words))[:kept]
    else:
        counts = np.bincount(_ragged_take(corpus.tokens, corpus.offsets, train_rows)[0], minlength=len(corpus.words))
        by_count = np.argsort(-counts, kind="stable")  # stable: equal counts stay alphabetical
        order = by_count[counts[by_count] > 0][: num_words - len(RESERVED)]
        counts = counts[order]
    lookup[order] = np.arange(len(RESERVED), len(RESERVED) + len(order), dtype=np.int32)
    words = list(RESERVED) + [corpus.words[i] for i in order]
    return Vocabulary(words, [0, 0, 0] + counts.tolist(), corpus.tokenizer), lookup


def make_split(corpus: Corpus, rows: np.ndarray, lookup: np.ndarray, config: DataConfig) -> Split:
    """Reviews ``rows`` as vocabulary ids with the start token, truncated to ``config.maxlen``."""
    words, offsets = _ragged_take(corpus.tokens, corpus.offsets, rows)
    ids = lookup[words]
    oov = int(np.count_nonzero(ids == UNK))
    ids = np.insert(ids, offsets[:-1], START)
    offsets = offsets + np.arange(len(offsets))
    raw_lengths = np.diff(offsets)
    ids, offsets = truncate_rows(ids, offsets, config.maxlen, config.truncating)
    return Split(ids, offsets, corpus.labels[rows], raw_lengths, corpus.movies[rows], corpus.review_ids[rows],
                 config, oov_tokens=oov)


def prepare(corpus: Corpus, config: DataConfig, seed: int = 0) -> tuple[Vocabulary, dict[str, Split], dict]:
    """Applies the settings to a tokenised corpus: limit, validation split, drop, vocabulary, truncation.

    Returns:
        ``(vocab, {"train", "val", "test": Split}, report)``.
    """
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {"warnings": []}
    train_rows = np.flatnonzero(corpus.splits == 0)
    test_rows = np.flatnonzero(corpus.splits == 1)
    if config.limit:
        train_rows = stratified_subset(train_rows, corpus.labels, config.limit, rng)
        test_rows = stratified_subset(test_rows, corpus.labels, config.limit, rng)

    split_method = config.split
    if split_method == "movie" and np.all(corpus.movies[train_rows] < 0):
        split_method = "random"
        report["warnings"].append(f"no movie ids in the {corpus.kind} source (no urls files); "
                                  "the validation split is random, not disjoint by movie")
        _warn(report["warnings"][-1])
    if split_method == "movie":
        train_rows, val_rows = movie_split(train_rows, corpus.movies, config.val_fraction, rng)
    else:
        train_rows, val_rows = random_split(train_rows, config.val_fraction, rng)
    report["split"] = split_method

    raw_lengths = np.diff(corpus.offsets) + 1  # + the start token
    too_long = raw_lengths[train_rows] > config.maxlen
    report["dropped"] = {"train": int(too_long.sum()) if config.long == "drop" else 0}
    if config.long == "drop":
        train_rows = train_rows[~too_long]

    if _one_class(corpus.labels[train_rows]):  # the source has both: --limit, the split or --long drop took one
        raise ZooError(f"the training split holds {_one_class(corpus.labels[train_rows])} reviews "
                       f"({len(train_rows):,} in all) after limit {config.limit}, val_fraction "
                       f"{config.val_fraction:g} and long={config.long}; a classifier needs both classes: "
                       "raise --limit or lower data.val_fraction")
    vocab, lookup = build_vocabulary(corpus, train_rows, config.num_words)
    splits = {name: make_split(corpus, rows, lookup, config)
              for name, rows in (("train", train_rows), ("val", val_rows), ("test", test_rows))}
    report["reviews"] = {name: len(split) for name, split in splits.items()}
    report["truncated"] = {name: int(np.sum(s.raw_lengths > config.maxlen)) for name, s in splits.items()}
    report["tokens_lost"] = {name: int(np.sum(s.raw_lengths - s.lengths)) for name, s in splits.items()}
    report["oov_rate"] = {name: s.oov_tokens / max(1, int(s.raw_lengths.sum()) - len(s))
                          for name, s in splits.items()}
    return vocab, splits, report


def load_dataset(config: DataConfig, settings, seed: int = 0, progress: bool = True,
                 allow_download: bool = False) -> Dataset:
    """Finds, reads (or takes from the cache) and prepares IMDB.

    Args:
        config: Data settings.
        settings: ``registry.toml``'s settings (search path, cache directory).
        seed: Seeds the ``limit`` subset and the validation split.
        progress: Show a progress bar on stderr while tokenising the first time.
        allow_download: Download Stanford's archive when no source is found.

    Raises:
        ZooError: missing, corrupt or unreadable data.
    """
    started = time.perf_counter()
    path = find_source(config, settings, allow_download, progress)
    corpus, info = load_corpus(path, Path(settings.cache_dir), progress)
    vocab, splits, report = prepare(corpus, config, seed)
    report["warnings"] = info.pop("warnings") + report["warnings"]
    report.update(info, kind=corpus.kind, seconds=time.perf_counter() - started)
    return Dataset(vocab=vocab, train=splits["train"], val=splits["val"], test=splits["test"], config=config,
                   source=str(path), checksum=info["checksum"], report=report)


# -- texts from elsewhere (predict, evaluate) --------------------------------------------------------
def encode_texts(texts: Sequence[str], vocab: Vocabulary, config: DataConfig) -> Batch:
    """Turns raw texts into one batch exactly as training data was: start token, truncation, padding.

    Each text is cut by the vocabulary's own tokenizer (:meth:`Vocabulary.tokenize`),
    as its training text was. Pads to ``config.maxlen`` with ``batching="padded"``,
    else to the longest text. Labels are zero.

    Raises:
        ZooError: when the vocabulary cannot encode text (Keras' npz without its word index).
    """
    sequences = [[START] + vocab.encode(vocab.tokenize(text)) for text in texts]
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int32, count=int(offsets[-1]))
    flat, offsets = truncate_rows(flat, offsets, config.maxlen, config.truncating)
    lengths = np.diff(offsets)
    width = config.maxlen if config.batching == "padded" else int(lengths.max(initial=1))
    ids, mask = pad_rows(flat, lengths, width, config.padding)
    return Batch(ids=ids, mask=mask, labels=np.zeros(len(sequences), dtype=np.int32))


_LABEL_WORDS = {"1": 1, "pos": 1, "positive": 1, "0": 0, "neg": 0, "negative": 0}


def text_lines(text: str) -> list[str]:
    """``text`` cut at ``\\n`` and ``\\r\\n`` only: one line of a file is one review.

    ``str.splitlines`` would also cut at U+0085, U+2028, form feeds and more,
    which occur inside IMDB's reviews. A final line break ends the last line
    rather than starting an empty one.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _csv_unquote(field: str) -> str:
    """A field that is exactly one CSV-quoted value (``"Great, fun"``, inner quotes doubled), unquoted."""
    inner = field[1:-1]
    if len(field) >= 2 and field[0] == field[-1] == '"' and '"' not in inner.replace('""', ""):
        return inner.replace('""', '"')
    return field


def _read_table(path: Path) -> tuple[list[str], np.ndarray]:
    """``label<TAB>text`` (.tsv, .txt) or ``label,text`` (.csv) rows, one review per line.

    Lines end only at ``\\n`` or ``\\r\\n`` (:func:`text_lines`), and the text is
    everything after the first delimiter, quotes included, so a quote never joins
    lines. In a .csv, a text that is one CSV-quoted field is unquoted. A UTF-8
    byte-order mark is dropped; line 1 may be a header (a first field of letters
    only, such as ``label``); blank lines are skipped.

    Raises:
        ZooError: for a file that is not UTF-8, an unknown label, a line without a
            text, an empty review, or no rows at all, naming the line.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ZooError(f"{path} is not UTF-8 text (bad byte at offset {err.start})") from None
    except OSError as err:
        raise ZooError(f"cannot read {path}: {err.strerror or _one_line(err)}") from None
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    texts, labels = [], []
    for number, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        field, found, review = line.partition(delimiter)
        label = _LABEL_WORDS.get(field.strip().strip('"').lower())
        if label is None:
            if number == 1 and re.fullmatch(r"[A-Za-z_ ]+", field.strip().strip('"')):
                continue  # a header
            raise ZooError(f"{path}:{number}: label {field!r} is not 0/1/pos/neg/positive/negative")
        if not found:
            raise ZooError(f"{path}:{number}: expected label{'TAB' if delimiter == chr(9) else ','}text")
        review = _csv_unquote(review) if delimiter == "," else review
        if is_blank(review):
            raise ZooError(f"{path}:{number}: the review is empty (no word in {review!r})")
        texts.append(review)
        labels.append(label)
    if not texts:
        raise ZooError(f"{path} holds no labelled reviews")
    return texts, np.array(labels, dtype=np.int32)


#: Files of ``label<TAB>text`` rows that :func:`read_labelled` reads.
LABELLED_SUFFIXES = (".tsv", ".csv", ".txt")


def check_labelled(path: str | os.PathLike) -> Path:
    """``path`` if :func:`read_labelled` can read it, judged without reading it all (see :func:`check_source`).

    Raises:
        ZooError: a missing path, Keras' npz (ids, not texts), or a source of no known kind.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ZooError(f"{path} does not exist")
    if path.suffix.lower() in LABELLED_SUFFIXES:
        return path
    if source_kind(path) == "npz":
        raise ZooError(f"{path}: Keras' imdb.npz holds ids, not texts; evaluate on the aclImdb archive or a .tsv")
    return check_source(path)


def read_labelled(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Raw texts and labels to evaluate on.

    Accepts the IMDB layout (``.tar.gz`` or folder; its *test* split, in canonical
    order) or a ``.tsv``/``.csv`` of ``label<TAB>text`` rows (labels 0/1, neg/pos).

    Raises:
        ZooError: for a missing or unreadable file.
    """
    path = check_labelled(path)
    if path.suffix.lower() in LABELLED_SUFFIXES:
        return _read_table(path)
    records = []  # (label, review id, text) of the test split
    if path.is_dir():
        root = _stanford_root(path)
        if root is None:
            raise ZooError(f"{path} holds no aclImdb/ train and test folders")
        for label in LABELS:
            for file in (root / "test" / label).glob("*_*.txt"):
                match = _REVIEW_FILE.search(file.relative_to(root).as_posix())
                if match:
                    records.append((LABELS.index(label), int(match.group(3)),
                                    file.read_text(encoding="utf-8", errors="replace")))
    else:
        try:
            with tarfile.open(path, mode=_tar_mode(path)) as tar:
                for member in tar:
                    match = _REVIEW_FILE.search(member.name)
                    if match and match.group(1) == "test" and member.isfile():
                        text = tar.extractfile(member).read().decode("utf-8", "replace")
                        records.append((LABELS.index(match.group(2)), int(match.group(3)), text))
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise _corrupt(path, err) from None
    if not records:
        raise ZooError(f"{path} holds no test reviews (expected aclImdb/test/{{pos,neg}}/<id>_<rating>.txt)")
    records.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in records], np.array([r[0] for r in records], dtype=np.int32)


# -- statistics (for `zoo data stats`) ---------------------------------------------------------------
PERCENTILES = (50, 75, 90, 95, 99, 100)


def length_percentiles(lengths: np.ndarray) -> dict[str, int]:
    """Review length at :data:`PERCENTILES` (100 = max), rounded up to whole tokens."""
    if not len(lengths):
        return {f"p{p}" if p < 100 else "max": 0 for p in PERCENTILES}
    values = np.percentile(lengths, PERCENTILES, method="higher")
    return {f"p{p}" if p < 100 else "max": int(v) for p, v in zip(PERCENTILES, values)}


def padding_efficiency(lengths: np.ndarray, batch_size: int, mode: str, maxlen: int = 0, seed: int = 0) -> float:
    """Real tokens / processed tokens when batching reviews of ``lengths``.

    Args:
        lengths: Tokens per review (after truncation for ``"maxlen"`` and ``"bucket"``).
        batch_size: Reviews per batch.
        mode: ``"global"`` pads every review to the longest of all; ``"maxlen"``
            to ``maxlen``; ``"batch"`` each shuffled batch to its longest;
            ``"bucket"`` each length-sorted batch to its longest.
        maxlen: The width for ``"maxlen"``.
        seed: Shuffles ``"batch"``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if not len(lengths):
        return 1.0
    if mode == "global":
        processed = len(lengths) * int(lengths.max())
    elif mode == "maxlen":
        processed = len(lengths) * maxlen
    elif mode in ("batch", "bucket"):
        batches = batch_order(lengths, batch_size, bucket=mode == "bucket", shuffle=True, seed=seed)
        processed = sum(len(rows) * int(lengths[rows].max()) for rows in batches)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return float(lengths.sum()) / max(1, processed)
