"""The IMDB data pipeline: raw reviews -> tokens -> ids -> padded, masked batches.

One module per step, every public name re-exported here:

* :mod:`~zoo_core.data.locate`: where the data is. ``DataConfig.source``
  (``--data PATH`` or ``$ZOO_DATA``), then ``registry.toml``'s ``[data]
  search_path``; :func:`find_source` (which refuses a file of the wrong kind
  from its first bytes: :func:`check_source`), :func:`download_imdb`.
* :mod:`~zoo_core.data.sources`: what it is. One :class:`Source` class per kind
  of copy (Stanford's archive, an extracted folder, Keras' ``imdb.npz``), each
  reading into a :class:`Corpus` and checking its first bytes (``check``);
  :data:`SOURCES` is their table.
* :mod:`~zoo_core.data.tokens`: text -> tokens (:func:`normalize_text`,
  :func:`tokenize`) and the :class:`Vocabulary`.
* :mod:`~zoo_core.data.cache`: the tokenised corpus cached once per source,
  keyed on the source's fingerprint, :data:`CACHE_VERSION` and
  :data:`NORMALIZATION` (:func:`load_corpus`).
* :mod:`~zoo_core.data.dataset`: the settings applied (limit, validation split,
  vocabulary, truncation) with vectorised numpy in well under a second:
  :func:`load_dataset` -> :class:`Dataset`.
* :mod:`~zoo_core.data.batching`: ragged splits served as padded, masked
  batches (:class:`Split`, :class:`Batch`), and new text encoded as training
  data was (:func:`encode_texts`).
* :mod:`~zoo_core.data.texts`: labelled texts to evaluate on (:func:`read_labelled`,
  checked cheaply first by :func:`check_labelled`).
* :mod:`~zoo_core.data.stats`: length percentiles and padding efficiency.

Conventions (as in ``keras.datasets.imdb``): id 0 is padding, 1 the start token
prepended to every review, 2 an unknown word, and words from 3 on by frequency
in the training reviews. The start token counts in a review's length, so it is
cut like any other token when ``truncating="pre"`` removes a review's head.

Nothing here prints or imports click: progress bars and warnings reach the
caller through ``progress`` and ``warn`` callbacks, and ``$ZOO_DATA`` is read by
the CLI's ``--data`` option alone (the caller passes where a path came from,
``origin``, for errors to name). NumPy is imported on first use
(:mod:`zoo_core.lazy`), so finding a source, and failing to, costs no NumPy
import.
"""

from zoo_core.data.batching import (
    Batch, Split, batch_order, encode_texts, offsets_from_lengths, pad_rows, ragged_take, truncate_rows,
)
from zoo_core.data.cache import (
    CACHE_VERSION, cache_file, corpus_arrays, corpus_from_arrays, load_corpus, remembered_sha256, sha256_file,
    source_checksum, write_atomic,
)
from zoo_core.data.dataset import (
    Dataset, build_vocabulary, load_dataset, make_split, movie_split, prepare, random_split, stratified_subset,
)
from zoo_core.data.locate import (
    IMDB_SHA256, IMDB_SIZE, IMDB_URL, candidate_sources, download_imdb, find_source, keras_datasets_dir,
)
from zoo_core.data.sources import (
    LABELS, MAX_NPY_BYTES, MAX_NPZ_RANK, MAX_REVIEW_ID, SOURCES, SPLITS, Corpus, ImdbArchive, ImdbFolder,
    KerasNpz, Progress, Source, check_source, describe_sources, read_corpus, read_keras_npz, source_for,
    source_kind,
)
from zoo_core.data.stats import PERCENTILES, length_percentiles, padding_efficiency
from zoo_core.data.texts import LABELLED_SUFFIXES, check_labelled, read_labelled, text_lines
from zoo_core.data.tokens import (
    NORMALIZATION, PAD, RESERVED, START, TOKENIZERS, UNK, Vocabulary, is_blank, keras_tokenize, normalize_text,
    tokenize,
)

__all__ = [
    # tokens
    "PAD", "START", "UNK", "RESERVED", "NORMALIZATION", "TOKENIZERS", "normalize_text", "tokenize",
    "keras_tokenize", "is_blank", "Vocabulary",
    # sources
    "SPLITS", "LABELS", "Progress", "Corpus", "Source", "ImdbArchive", "ImdbFolder", "KerasNpz", "SOURCES",
    "source_for", "source_kind", "check_source", "describe_sources", "read_corpus", "read_keras_npz", "MAX_REVIEW_ID", "MAX_NPY_BYTES", "MAX_NPZ_RANK",
    # cache
    "CACHE_VERSION", "cache_file", "corpus_arrays", "corpus_from_arrays", "load_corpus", "remembered_sha256",
    "sha256_file", "source_checksum", "write_atomic",
    # locate
    "IMDB_URL", "IMDB_SHA256", "IMDB_SIZE", "keras_datasets_dir", "candidate_sources", "find_source",
    "download_imdb",
    # dataset
    "stratified_subset", "movie_split", "random_split", "build_vocabulary", "make_split", "prepare", "Dataset",
    "load_dataset",
    # batching
    "offsets_from_lengths", "ragged_take", "pad_rows", "truncate_rows", "batch_order", "Batch", "Split",
    "encode_texts",
    # texts
    "LABELLED_SUFFIXES", "text_lines", "check_labelled", "read_labelled",
    # stats
    "PERCENTILES", "length_percentiles", "padding_efficiency",
]
