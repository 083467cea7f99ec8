"""The kinds of IMDB copy the loader reads, one :class:`Source` class each, and the :class:`Corpus` they read into.

* :class:`ImdbArchive`: Stanford's ``aclImdb_v1.tar.gz`` (or the labelled-only
  copy), streamed once with :mod:`tarfile` and never unpacked to disk;
* :class:`ImdbFolder`: an extracted ``aclImdb/`` folder (or a folder holding one);
* :class:`KerasNpz`: Keras' ``imdb.npz``, with ``imdb_word_index.json`` beside it if there is one.

:data:`SOURCES` lists them in the order :func:`source_for` tries them. Adding a
kind of source is one :class:`Source` subclass, listed there: its ``kind``
and ``description``, which paths it ``matches``, a cheap ``check`` of its first
bytes (optional), its ``fingerprint`` (the cache key), how to ``read`` it into a
:class:`Corpus` and, if it holds texts, how to ``read_labelled`` its test split
(and ``check_labelled`` it).
"""

from __future__ import annotations

import abc
import array
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import os
import pickle
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from zoo_core.config import DataConfig
from zoo_core.data.batching import offsets_from_lengths, ragged_take
from zoo_core.data.tokens import tokenize
from zoo_core.errors import ZooError
from zoo_core.lazy import np
from zoo_core.progress import Progress

SPLITS = ("train", "test")
LABELS = ("neg", "pos")  # label id = index: 1 = positive

_REVIEW_FILE = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_URLS_FILE = re.compile(r"(?:^|/)(train|test)/urls_(pos|neg)\.txt$")
_MOVIE = re.compile(r"/title/tt(\d+)")

# How the data reports progress: zoo_core.progress.Progress, a factory ``progress(length, label)`` whose bar
# is advanced by ``update(n)`` (the same factory that draws training's bars). Anything not callable (None, a
# bool) draws nothing here: the library has no terminal.


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        pass


def progress_bar(progress: Progress | None, length: int, label: str) -> AbstractContextManager:
    """``progress(length, label)``, or a bar that draws nothing when ``progress`` is not callable."""
    return progress(length, label) if callable(progress) else _NoProgress()


def one_line(err: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


# -- what every source reads into --------------------------------------------------------------------
@dataclasses.dataclass
class Corpus:
    """Every review of a source, tokenised: what the cache holds (see :mod:`zoo_core.data.cache`).

    Attributes:
        words: Table of every distinct token. Alphabetical for text sources;
            for Keras' npz, in Keras' rank order (``ranked``), entry 0 unused.
        tokens: int32 ids into ``words``, all reviews concatenated (no start token).
        offsets: int64 ``[n + 1]`` review boundaries in ``tokens``.
        labels: int8 ``[n]`` 1 = positive. splits: int8 ``[n]`` 0 = train, 1 = test.
        movies: int64 ``[n]`` IMDb title number, -1 unknown. ratings: int8 ``[n]`` stars, 0 unknown.
        review_ids: int32 ``[n]`` file id within its split and label folder.
        ranked: Whether ``words`` is already the vocabulary's order (Keras ids).
        kind: The :attr:`Source.kind` it was read from: ``"archive"``, ``"folder"`` or ``"npz"``.
        tokenizer: How the text was cut into ``words`` (a key of :data:`~zoo_core.data.tokens.TOKENIZERS`):
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


# -- the interface -----------------------------------------------------------------------------------
class Source(abc.ABC):
    """One kind of IMDB copy: how to recognise, fingerprint and read it.

    Sources hold no state; :data:`SOURCES` holds one instance of each.

    Attributes:
        kind: Short name, recorded as :attr:`Corpus.kind` and shown by ``zoo data info``.
        description: What to give, for messages ("give an existing aclImdb/ folder, imdb.npz or .tar.gz").
    """

    kind: str = ""
    description: str = ""

    @abc.abstractmethod
    def matches(self, path: Path) -> bool:
        """Whether ``path`` (which exists) is this kind of source."""

    def check(self, path: Path) -> None:
        """Refuses ``path`` (which :meth:`matches`) if its first bytes show it is no such source.

        Cheap (one small read at most, no NumPy or TensorFlow), so commands call it,
        through :func:`check_source`, before slow setup. A damaged file of the right
        kind passes and is named by :meth:`read`. By default nothing is checked.

        Raises:
            ZooError: naming ``path`` and what it holds instead.
        """

    def fingerprint(self, path: Path, file_sha256: Callable[[Path], str]) -> str:
        """What identifies the source's content in the cache key: here the sha256 of the file.

        Args:
            path: The source, resolved.
            file_sha256: Gives a file's sha256 (remembered by the cache, so each file is hashed once).

        Returns:
            A string that changes whenever what :meth:`read` returns would.
        """
        return file_sha256(path)

    @abc.abstractmethod
    def read(self, path: Path, progress: Progress | None = None) -> Corpus:
        """Reads and tokenises every review (slow: :func:`zoo_core.data.cache.load_corpus` caches it).

        Raises:
            ZooError: for a source that cannot be read, naming it and what is wrong.
        """

    def read_labelled(self, path: Path) -> tuple[list[str], np.ndarray]:
        """Raw texts and int32 labels of the test split, in canonical order (label, then review id).

        Raises:
            ZooError: always, for a source without texts; else when it holds no test reviews.
        """
        raise self.no_texts(path)

    def check_labelled(self, path: Path) -> None:
        """Refuses ``path`` unless :meth:`read_labelled` may read it, judged as cheaply as :meth:`check`.

        Raises:
            ZooError: always, for a source without texts (the default); else as :meth:`check`.
        """
        raise self.no_texts(path)

    def no_texts(self, path: Path) -> ZooError:
        """The error for evaluating on a source that holds no texts."""
        return ZooError(f"{path}: a {self.kind} source holds no texts to evaluate on; "
                        "evaluate on the aclImdb archive or a .tsv")


# -- the aclImdb layout, packed or extracted ---------------------------------------------------------
MAX_REVIEW_ID = 2**31 - 1  # review ids are stored as int32


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
        offsets = offsets_from_lengths(np.frombuffer(self.lengths, dtype=np.int64))
        tokens, offsets = ragged_take(np.frombuffer(self.tokens, dtype=np.int32), offsets, order)
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


# Called once per file of a Stanford layout: (name for messages, path inside the layout, reads its text).
Visit = Callable[[str, str, Callable[[], str]], None]


class _StanfordLayout(Source):
    """``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` with ``urls_{pos,neg}.txt``, packed or not.

    One walk over the files (:meth:`walk`) serves both :meth:`read` and
    :meth:`read_labelled`; a file's text is read only when the visitor asks.
    """

    @abc.abstractmethod
    def walk(self, path: Path, progress: Progress | None, visit: Visit) -> None:
        """Calls ``visit(shown, name, text)`` for every file; ``name`` ends in ``train/pos/0_9.txt`` and the like.

        Raises:
            ZooError: for a source that cannot be read (corrupt, unreadable, no aclImdb layout).
        """

    def read(self, path: Path, progress: Progress | None = None) -> Corpus:
        builder = _CorpusBuilder()

        def visit(shown: str, name: str, text: Callable[[], str]) -> None:
            review = _REVIEW_FILE.search(name)
            urls = None if review else _URLS_FILE.search(name)
            if review:
                split, label, review_id, rating = review.groups()
                review_id, rating = _review_numbers(shown, review_id, rating)  # before reading: fail fast
                builder.add_review(split, label, review_id, rating, text())
            elif urls:
                builder.add_urls(*urls.groups(), text())

        self.walk(Path(path), progress, visit)
        return builder.build(self.kind)

    def read_labelled(self, path: Path) -> tuple[list[str], np.ndarray]:
        records = []  # (label, review id, text) of the test split

        def visit(shown: str, name: str, text: Callable[[], str]) -> None:
            match = _REVIEW_FILE.search(name)
            if match and match.group(1) == "test":
                records.append((LABELS.index(match.group(2)), int(match.group(3)), text()))

        self.walk(Path(path), None, visit)
        if not records:
            raise ZooError(f"{path} holds no test reviews (expected aclImdb/test/{{pos,neg}}/<id>_<rating>.txt)")
        records.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in records], np.array([r[0] for r in records], dtype=np.int32)

    def check_labelled(self, path: Path) -> None:
        self.check(path)


def _tar_mode(path: Path) -> str:
    """gzip for ``.gz``/``.tgz`` (so a damaged file says "not a gzip file"), else let tarfile detect."""
    return "r:gz" if path.suffix.lower() in (".gz", ".tgz") else "r:*"


def _file_head(path: Path, size: int = 512) -> bytes:
    """The first ``size`` bytes of a source file, for the :meth:`Source.check` methods.

    Raises:
        ZooError: for a file that cannot be read or is empty.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(size)
    except OSError as err:
        raise ZooError(f"cannot read {path}: {err.strerror or one_line(err)}") from None
    if not head:
        raise ZooError(f"{path} is empty: expected an IMDB source ({describe_sources()})")
    return head


def _looks_like_text(head: bytes) -> bool:
    """Whether the first bytes of a file are UTF-8 text (what a mistaken ``--data`` often is)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # a character cut at the end of the sample is still text
            return False
    return b"\x00" not in head


def _corrupt(path: Path, err: BaseException) -> ZooError:
    return ZooError(f"{path} is corrupt or truncated ({one_line(err)}); download it again or point --data elsewhere")


class ImdbArchive(_StanfordLayout):
    """Stanford's ``.tar.gz``, streamed once and never unpacked to disk.

    Last in :data:`SOURCES`, it takes any file the others do not: :meth:`check`
    then refuses one that does not begin as a tar archive (text, other data),
    and :meth:`read` reports a damaged one as corrupt, naming it.
    """

    kind = "archive"
    description = ".tar.gz"

    #: How the archives tarfile reads begin: gzip, bzip2, xz; an uncompressed tar says "ustar" at byte 257.
    MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")

    def matches(self, path: Path) -> bool:
        return not path.is_dir()

    def check(self, path: Path) -> None:
        """Refuses an empty file, or one that begins as no tar archive (gzip only for ``.gz``/``.tgz``)."""
        head = _file_head(path)
        gzip_only = _tar_mode(path) == "r:gz"
        if head.startswith(self.MAGIC[:1] if gzip_only else self.MAGIC) or (
                not gzip_only and head[257:262] == b"ustar"):
            return
        looks = "text" if _looks_like_text(head) else "data of another kind"
        raise ZooError(f"{path} is not an IMDB source ({describe_sources()}): it holds {looks}")

    def walk(self, path: Path, progress: Progress | None, visit: Visit) -> None:
        size = path.stat().st_size
        try:
            with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode=_tar_mode(path)) as tar, \
                    progress_bar(progress, size, f"tokenising {path.name}") as bar:
                done = 0
                for member in tar:
                    if member.isfile():
                        visit(member.name, member.name,
                              lambda: tar.extractfile(member).read().decode("utf-8", "replace"))
                    position = raw.tell()
                    if position - done >= 1 << 20:  # redraw per MiB read, not per file
                        bar.update(position - done)
                        done = position
                bar.update(size - done)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise _corrupt(path, err) from None


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


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ZooError(f"cannot read {file}: {err.strerror or one_line(err)}") from None


class ImdbFolder(_StanfordLayout):
    """An extracted ``aclImdb/`` folder, or a folder holding one."""

    kind = "folder"
    description = "aclImdb/ folder"

    def matches(self, path: Path) -> bool:
        return path.is_dir()

    def check(self, path: Path) -> None:
        """Refuses a folder with neither ``train/`` and ``test/`` nor an ``aclImdb/`` holding them."""
        if _stanford_root(path) is None:
            raise ZooError(f"{path} holds no aclImdb/ train and test folders")

    def fingerprint(self, path: Path, file_sha256: Callable[[Path], str]) -> str:
        """``folder-`` and the sha256 of its review and urls files' names, sizes and modification times."""
        root = _stanford_root(path) or path
        digest = hashlib.sha256()
        for file in sorted(_stanford_files(root)):
            stat = file.stat()
            digest.update(f"{file.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return "folder-" + digest.hexdigest()

    def walk(self, path: Path, progress: Progress | None, visit: Visit) -> None:
        root = _stanford_root(path)
        if root is None:
            raise ZooError(f"{path} holds no aclImdb/ train and test folders")
        files = _stanford_files(root)
        with progress_bar(progress, len(files), f"tokenising {root}") as bar:
            for file in files:
                visit(str(file), file.relative_to(root).as_posix(), functools.partial(_read_text, file))
                bar.update(1)


# -- Keras' imdb.npz ---------------------------------------------------------------------------------
@functools.cache
def _checked_array() -> type:
    """The only array class the restricted unpickler builds: its state must fill its shape exactly.

    A pickle names its own shape; without this check a few bytes claiming
    ``(10**12,)`` would make numpy allocate terabytes before failing. (Made on
    first use, since subclassing ``np.ndarray`` imports NumPy.)
    """

    class CheckedArray(np.ndarray):
        def __setstate__(self, state):
            shape, dtype, data = (state[1], state[2], state[4]) if len(state) == 5 else (state[0], state[1], state[3])
            if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
                raise pickle.UnpicklingError(f"a pickled array has shape {shape!r}")
            held = len(data) if isinstance(data, list) else len(data) // max(1, np.dtype(dtype).itemsize)
            if math.prod(shape) != held:
                raise pickle.UnpicklingError(f"a pickled array claims shape {shape} but holds {held:,} values")
            super().__setstate__(state)

    return CheckedArray


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy object arrays of int lists and nothing else, as Keras' own npz reader does.

    ``np.load(allow_pickle=True)`` would run any code a tampered file carries.
    """

    _ALLOWED = {("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) == ("numpy", "ndarray"):
            return _checked_array()
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
        raise ValueError(f"its pickled data is not an array ({one_line(err)})") from None
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
                        raise ZooError(f"{path}: {info.filename} is not a readable array ({one_line(err)}); "
                                       "expected Keras' imdb.npz") from None
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as err:
        raise ZooError(f"{path} is not a readable Keras imdb.npz ({one_line(err)})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise ZooError(f"{path} lacks {', '.join(missing)} (expected Keras' imdb.npz)")
    return arrays


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
        raise ZooError(f"{path} is not a readable JSON word index ({one_line(err)}); {fix}") from None
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


class KerasNpz(Source):
    """Keras' ``imdb.npz``, named by ``imdb_word_index.json`` beside it if there is one.

    Its reviews are word ranks, not texts, so it has no :meth:`read_labelled`.
    """

    kind = "npz"
    description = "imdb.npz"

    #: How a zip file (an npz) begins: a local file header, or the end record of an empty zip.
    MAGIC = (b"PK\x03\x04", b"PK\x05\x06")

    def matches(self, path: Path) -> bool:
        return path.suffix == ".npz" and not path.is_dir()

    def check(self, path: Path) -> None:
        """Refuses an empty file, or one that is not a zip file."""
        if not _file_head(path).startswith(self.MAGIC):
            raise ZooError(f"{path} is not a readable Keras imdb.npz (not a zip file)")

    @staticmethod
    def word_index_file(path: Path) -> Path:
        return path.with_name("imdb_word_index.json")

    def fingerprint(self, path: Path, file_sha256: Callable[[Path], str]) -> str:
        """The npz's sha256, then ``+index-`` and 16 hex digits of the word index's, which names its words."""
        checksum = file_sha256(path)
        word_index = self.word_index_file(path)
        if word_index.is_file():
            checksum += "+index-" + file_sha256(word_index)[:16]
        return checksum

    def read(self, path: Path, progress: Progress | None = None) -> Corpus:
        path = Path(path)
        arrays = read_keras_npz(path)
        sequences = [_npz_reviews(path, "x_train", arrays["x_train"]),
                     _npz_reviews(path, "x_test", arrays["x_test"])]
        labels = np.concatenate([_npz_labels(path, "y_train", arrays["y_train"], len(sequences[0])),
                                 _npz_labels(path, "y_test", arrays["y_test"], len(sequences[1]))])
        offsets = offsets_from_lengths(np.array([len(s) for part in sequences for s in part], dtype=np.int64))
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
        index_file = self.word_index_file(path)
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
            ranked=True, kind=self.kind, tokenizer="keras" if named else "none",
        )

    def no_texts(self, path: Path) -> ZooError:
        return ZooError(f"{path}: Keras' imdb.npz holds ids, not texts; evaluate on the aclImdb archive or a .tsv")


# -- the table ---------------------------------------------------------------------------------------
SOURCES: tuple[Source, ...] = (ImdbFolder(), KerasNpz(), ImdbArchive())
"""Every kind of source, in the order :func:`source_for` tries them (the archive, last, takes any other file)."""


def source_for(path: str | os.PathLike) -> Source:
    """The first of :data:`SOURCES` that matches ``path`` (an existing file or folder)."""
    path = Path(path)
    return next(source for source in SOURCES if source.matches(path))


def check_source(path: str | os.PathLike) -> Path:
    """``path`` (which exists) if it can be a source, judged from its first bytes by its :meth:`Source.check`.

    Cheap (one small read), so commands call it, through
    :func:`~zoo_core.data.locate.find_source`, before they import TensorFlow: a
    text file given as ``--data`` is refused at once instead of after seconds of
    setup. A damaged file of the right kind passes and is named by the reader.

    Raises:
        ZooError: a folder without the aclImdb layout, an empty file, a file that
            is neither a tar archive nor (named ``.npz``) a zip.
    """
    path = Path(path)
    source_for(path).check(path)
    return path


def describe_sources() -> str:
    """What may be given as a source, from :data:`SOURCES`: ``"aclImdb/ folder, imdb.npz or .tar.gz"``."""
    names = [source.description for source in SOURCES]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def source_kind(path: str | os.PathLike) -> str:
    """``"folder"``, ``"npz"`` or ``"archive"``: the :attr:`Source.kind` of ``path``."""
    return source_for(path).kind


def read_corpus(path: str | os.PathLike, progress: Progress | None = None) -> Corpus:
    """Reads and tokenises every review of a source (slow: see :func:`zoo_core.data.cache.load_corpus`).

    Raises:
        ZooError: for a source that is missing a split, has training reviews of one
            class only, or cannot be read (see the :class:`Source` classes).
    """
    path = Path(path)
    corpus = source_for(path).read(path, progress)
    for split in (0, 1):
        if not np.any(corpus.splits == split):
            raise ZooError(f"{path} holds no {SPLITS[split]} reviews (expected the aclImdb layout)")
    train_labels = corpus.labels[corpus.splits == 0]
    if one_class(train_labels):
        raise ZooError(f"{path} holds {one_class(train_labels)} training reviews ({len(train_labels):,} in all); "
                       "a classifier needs positive and negative ones (aclImdb/train/pos and aclImdb/train/neg)")
    return corpus


def one_class(labels: np.ndarray) -> str:
    """What ``labels`` hold when it is not both classes (``"no"``, ``"only positive"``), else ``""``."""
    if not len(labels):
        return "no"
    if labels.min() == labels.max():
        return "only " + ("negative", "positive")[int(labels[0])]
    return ""
