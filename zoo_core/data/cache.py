"""The prepared-data cache: one ``.npz`` per source holding its tokenised :class:`~zoo_core.data.sources.Corpus`.

Tokenising 50k reviews is the expensive step, so it runs once per source. The
cache file is named after the source's fingerprint
(:meth:`~zoo_core.data.sources.Source.fingerprint`: a sha256, computed once per
file and remembered in ``checksums.json``), :data:`CACHE_VERSION` (the
tokenizer's rule and the file layout) and
:data:`~zoo_core.data.tokens.NORMALIZATION` (what is done to text before
tokenising). Nothing in :class:`~zoo_core.config.DataConfig` changes the cached
arrays, so one file serves every setting. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from zoo_core.data import tokens
from zoo_core.data.sources import Corpus, Progress, Source, read_corpus, source_for
from zoo_core.lazy import np

# Bump when the tokenizer or the cached layout changes: old cache files are then ignored.
CACHE_VERSION = 2


# -- files -------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, write: Callable[[BinaryIO], Any]) -> None:
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


def remembered_sha256(path: Path, cache_dir: Path) -> str:
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
        memo[key] = sha256_file(path)
        write_atomic(memo_file, lambda f: f.write(json.dumps(memo, indent=1).encode()))
    return memo[key]


def source_checksum(path: Path, cache_dir: Path, source: Source | None = None) -> str:
    """The fingerprint of a source (default: :func:`~zoo_core.data.sources.source_for` ``path``).

    Each file is hashed once per (path, size, mtime); see the sources' ``fingerprint``.
    """
    path = Path(path).resolve()
    source = source or source_for(path)
    return source.fingerprint(path, lambda file: remembered_sha256(file, Path(cache_dir)))


# -- the cache file ----------------------------------------------------------------------------------
def cache_file(cache_dir: Path, checksum: str) -> Path:
    """The cache file of a source: keyed on its checksum, the tokenizer's version and the text normalisation."""
    key = hashlib.sha256(f"{checksum}|{tokens.NORMALIZATION}".encode()).hexdigest()[:24]
    return Path(cache_dir) / f"imdb-{key}-v{CACHE_VERSION}.npz"


def corpus_arrays(corpus: Corpus) -> dict[str, np.ndarray]:
    """The arrays of a cache file (its format: what :func:`corpus_from_arrays` reads back)."""
    # Words travel as one UTF-8 blob: tokens never contain whitespace, and no pickle is needed.
    blob = np.frombuffer("\n".join(corpus.words).encode("utf-8"), dtype=np.uint8)
    meta = {"ranked": corpus.ranked, "kind": corpus.kind, "tokenizer": corpus.tokenizer,
            "version": CACHE_VERSION, "normalization": tokens.NORMALIZATION}
    return {
        "words": blob, "tokens": corpus.tokens, "offsets": corpus.offsets, "labels": corpus.labels,
        "splits": corpus.splits, "movies": corpus.movies, "ratings": corpus.ratings,
        "review_ids": corpus.review_ids, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
    }


def corpus_from_arrays(arrays: Any) -> Corpus:
    """The :class:`Corpus` of a cache file's arrays.

    Raises:
        ValueError: for another :data:`CACHE_VERSION` or normalisation, or arrays that do not fit together.
        KeyError: for a missing array.
    """
    meta = json.loads(bytes(arrays["meta"]).decode())
    if meta.get("version") != CACHE_VERSION or meta.get("normalization") != tokens.NORMALIZATION:
        raise ValueError("cache version differs")
    corpus = Corpus(
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


def load_corpus(path: Path, cache_dir: Path, progress: Progress | None = None,
                warn: Callable[[str], None] | None = None) -> tuple[Corpus, dict]:
    """The tokenised corpus of ``path``, from the cache when there, else read and cached.

    Args:
        path: The source.
        cache_dir: Where cache files and ``checksums.json`` live.
        progress: Draws a progress bar while tokenising (see :data:`zoo_core.progress.Progress`).
        warn: Called with a line for a cache file found corrupt (it is then rebuilt).

    Returns:
        ``(corpus, info)`` with info keys ``checksum``, ``cache``, ``cache_hit`` and ``seconds``.

    Raises:
        ZooError: for a source that cannot be read.
    """
    started = time.perf_counter()
    checksum = source_checksum(path, cache_dir)
    file = cache_file(cache_dir, checksum)
    corpus = None
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as arrays:
                corpus = corpus_from_arrays(arrays)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            if warn:
                warn(f"cache file {file} is corrupt ({err}); rebuilding it")
            file.unlink(missing_ok=True)
    hit = corpus is not None
    if corpus is None:
        corpus = read_corpus(path, progress)
        write_atomic(file, lambda f: np.savez(f, **corpus_arrays(corpus)))
    info = {"checksum": checksum, "cache": str(file), "cache_hit": hit, "seconds": time.perf_counter() - started}
    return corpus, info
