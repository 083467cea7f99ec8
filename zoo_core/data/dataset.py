"""Corpus -> :class:`Dataset`: the settings applied (limit, validation split, vocabulary, truncation).

:func:`load_dataset` is the whole pipeline: find the source
(:func:`~zoo_core.data.locate.find_source`), take its tokenised corpus from the
cache or read it (:func:`~zoo_core.data.cache.load_corpus`), then
:func:`prepare` it with vectorised numpy in well under a second.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo_core.config import DataConfig
from zoo_core.data.batching import Split, ragged_take, truncate_rows
from zoo_core.data.cache import load_corpus
from zoo_core.data.locate import find_source
from zoo_core.data.sources import Corpus, Progress, one_class
from zoo_core.data.tokens import RESERVED, START, UNK, Vocabulary
from zoo_core.errors import ZooError
from zoo_core.lazy import np


# -- which reviews go where --------------------------------------------------------------------------
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


# -- words -> ids ------------------------------------------------------------------------------------
def build_vocabulary(corpus: Corpus, train_rows: np.ndarray, num_words: int) -> tuple[Vocabulary, np.ndarray]:
    """The vocabulary and a lookup table from corpus word ids to vocabulary ids.

    Text sources rank words by their count in ``train_rows`` (ties alphabetical);
    Keras' npz keeps Keras' ids, ranks above the limit becoming UNK as ``load_data`` does.
    """
    lookup = np.full(len(corpus.words), UNK, dtype=np.int32)
    counts = np.bincount(ragged_take(corpus.tokens, corpus.offsets, train_rows)[0], minlength=len(corpus.words))
    if corpus.ranked:
        kept = min(num_words - len(RESERVED), len(corpus.words))
        order = np.arange(kept)
        counts = counts[:kept]
    else:
        by_count = np.argsort(-counts, kind="stable")  # stable: equal counts stay alphabetical
        order = by_count[counts[by_count] > 0][: num_words - len(RESERVED)]
        counts = counts[order]
    lookup[order] = np.arange(len(RESERVED), len(RESERVED) + len(order), dtype=np.int32)
    words = list(RESERVED) + [corpus.words[i] for i in order]
    return Vocabulary(words, [0, 0, 0] + counts.tolist(), corpus.tokenizer), lookup


def make_split(corpus: Corpus, rows: np.ndarray, lookup: np.ndarray, config: DataConfig) -> Split:
    """Reviews ``rows`` as vocabulary ids with the start token, truncated to ``config.maxlen``."""
    words, offsets = ragged_take(corpus.tokens, corpus.offsets, rows)
    ids = lookup[words]
    oov = int(np.count_nonzero(ids == UNK))
    ids = np.insert(ids, offsets[:-1], START)
    offsets = offsets + np.arange(len(offsets))
    raw_lengths = np.diff(offsets)
    ids, offsets = truncate_rows(ids, offsets, config.maxlen, config.truncating)
    return Split(ids, offsets, corpus.labels[rows], raw_lengths, corpus.movies[rows], corpus.review_ids[rows],
                 config, oov_tokens=oov)


# -- the pipeline ------------------------------------------------------------------------------------
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
            OOV rates, the split method, the source's kind, the cache file and timings.
    """

    vocab: Vocabulary
    train: Split
    val: Split
    test: Split
    config: DataConfig
    source: str
    checksum: str
    report: dict


def prepare(corpus: Corpus, config: DataConfig, seed: int = 0, warn: Callable[[str], None] | None = None
            ) -> tuple[Vocabulary, dict[str, Split], dict]:
    """Applies the settings to a tokenised corpus: limit, validation split, drop, vocabulary, truncation.

    Args:
        warn: Called with a line when the movie split falls back to a random one (no movie ids).

    Returns:
        ``(vocab, {"train", "val", "test": Split}, report)``.

    Raises:
        ZooError: when the settings leave the training split with one class only.
    """
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {}
    train_rows = np.flatnonzero(corpus.splits == 0)
    test_rows = np.flatnonzero(corpus.splits == 1)
    if config.limit:
        train_rows = stratified_subset(train_rows, corpus.labels, config.limit, rng)
        test_rows = stratified_subset(test_rows, corpus.labels, config.limit, rng)

    split_method = config.split
    if split_method == "movie" and np.all(corpus.movies[train_rows] < 0):
        split_method = "random"
        if warn:
            warn(f"no movie ids in the {corpus.kind} source (no urls files); "
                 "the validation split is random, not disjoint by movie")
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

    if one_class(corpus.labels[train_rows]):  # the source has both: --limit, the split or --long drop took one
        raise ZooError(f"the training split holds {one_class(corpus.labels[train_rows])} reviews "
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


def load_dataset(config: DataConfig, settings, seed: int = 0, progress: Progress | None = None,
                 allow_download: bool = False, warn: Callable[[str], None] | None = None,
                 origin: str | None = None) -> Dataset:
    """Finds, reads (or takes from the cache) and prepares IMDB.

    Args:
        config: Data settings.
        settings: ``registry.toml``'s settings (search path, cache directory).
        seed: Seeds the ``limit`` subset and the validation split.
        progress: Draws a progress bar while tokenising the first time (or downloading);
            see :data:`zoo_core.progress.Progress`. None: no bar.
        allow_download: Download Stanford's archive when no source is found.
        warn: Called once with each warning line (a corrupt cache file rebuilt, a movie
            split that fell back to random). None: warnings are dropped.
        origin: Where ``config.source`` came from, named in errors (``"--data"``, ``"ZOO_DATA"``).

    Raises:
        ZooError: missing, corrupt or unreadable data.
    """
    started = time.perf_counter()
    path = find_source(config, settings, allow_download, progress, origin)
    corpus, info = load_corpus(path, Path(settings.cache_dir), progress, warn)
    vocab, splits, report = prepare(corpus, config, seed, warn)
    report.update(info, kind=corpus.kind, seconds=time.perf_counter() - started)
    return Dataset(vocab=vocab, train=splits["train"], val=splits["val"], test=splits["test"], config=config,
                   source=str(path), checksum=info["checksum"], report=report)
