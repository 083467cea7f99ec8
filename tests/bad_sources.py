"""A table of broken data sources, each built in a temporary folder (never real IMDB data).

Each row is ``(name, build, message)``: ``build(folder)`` writes the bad source
under ``folder`` and returns the path to give as ``--data``; ``message`` is a
fragment the one-line error must contain. ``tests/test_data_input.py`` checks
every row at the library and CLI level, and ``tests/sweep_data_input.py`` runs
them all through real ``zoo`` processes.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np

from tests.imdb_fixtures import archive_tree, write_imdb_tree

TWO_CLASSES = {"train/pos": ["good film", "great fun"], "train/neg": ["bad film", "dull plot"],
               "test/pos": ["good plot"], "test/neg": ["bad fun"]}


# -- archives and folders ----------------------------------------------------------------------------
def tree_with(folder: Path, extra: dict[str, str] | None = None, reviews: dict | None = None) -> Path:
    """A small two-class aclImdb tree plus ``extra`` files ``{relative path: text}``."""
    top = write_imdb_tree(folder, reviews or TWO_CLASSES)
    for name, text in (extra or {}).items():
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_text(text, encoding="utf-8")
    return top


def as_archive(build):
    """The same tree packed as a ``.tar.gz``."""
    def make(folder: Path) -> Path:
        return archive_tree(build(folder / "tree"), folder / "imdb.tar.gz")
    return make


def huge_id(folder):
    return tree_with(folder, {"train/pos/99999999999999999999_9.txt": "a fine film"})


def rating(value):
    return lambda folder: tree_with(folder, {f"train/pos/7_{value}.txt": "a fine film"})


def single_class(*keys):
    return lambda folder: write_imdb_tree(folder, {k: v for k, v in TWO_CLASSES.items() if k in keys})


def huge_movie(folder):
    top = tree_with(folder)
    (top / "train" / "urls_pos.txt").write_text("http://www.imdb.com/title/tt99999999999999999999/usercomments\n"
                                                "http://www.imdb.com/title/tt0000002/usercomments\n")
    return top


def directory_named_like_a_review(folder):
    top = tree_with(folder)
    (top / "train" / "pos" / "5_8.txt").mkdir()
    return top


def empty_split_folders(folder):
    top = Path(folder) / "aclImdb"
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            (top / split / label).mkdir(parents=True)
    return top


def file_named(name: str, content: bytes):
    def make(folder: Path) -> Path:
        path = Path(folder) / name
        path.write_bytes(content)
        return path
    return make


# -- Keras' imdb.npz ---------------------------------------------------------------------------------
def ragged(rows) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = [list(r) for r in rows]
    return out


GOOD_NPZ = {"x_train": ragged([[1, 2], [3, 1, 4], [2, 2], [5]]), "y_train": np.array([1, 0, 1, 0]),
            "x_test": ragged([[1, 3], [4]]), "y_test": np.array([1, 0])}


def npz(**changes):
    """Keras-style ``imdb.npz`` with some arrays replaced (None removes one)."""
    def make(folder: Path) -> Path:
        arrays = {k: v for k, v in {**GOOD_NPZ, **changes}.items() if v is not None}
        path = Path(folder) / "imdb.npz"
        np.savez(path, **arrays)
        return path
    return make


def npy_header(descr: str, shape: tuple) -> bytes:
    """A version 1.0 ``.npy`` header, padded as numpy pads it."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def npz_member(name: str, payload: bytes):
    """A good npz whose member ``name`` is replaced by raw ``payload`` bytes."""
    def make(folder: Path) -> Path:
        path = npz()(folder)
        with zipfile.ZipFile(path) as src:
            members = {n: src.read(n) for n in src.namelist()}
        members[f"{name}.npy"] = payload
        with zipfile.ZipFile(path, "w") as out:
            for n, data in members.items():
                out.writestr(n, data)
        return path
    return make


def pickled_shape(shape: tuple) -> bytes:
    """An object-array ``.npy`` whose header says (2,) but whose pickle builds ``shape``."""
    import pickle

    array = np.empty(2, dtype=object)
    array[:] = [[1, 2], [3]]
    data = pickle.dumps(array, protocol=3)
    # Swap the pickled shape tuple (2,) for ``shape``: protocol 3 writes it as K\x02\x85 (BININT1 2, TUPLE1).
    fake = pickle.dumps(shape, protocol=3)[2:-1]  # the tuple's opcodes without PROTO and STOP
    assert data.count(b"K\x02\x85") >= 1
    return npy_header("|O", (2,)) + data.replace(b"K\x02\x85", fake, 1)


def with_index(index_bytes: bytes):
    """A good npz with ``imdb_word_index.json`` holding ``index_bytes``."""
    def make(folder: Path) -> Path:
        path = npz()(folder)
        (Path(folder) / "imdb_word_index.json").write_bytes(index_bytes)
        return path
    return make


def index_of(mapping) -> bytes:
    return json.dumps(mapping).encode()


# -- the table ---------------------------------------------------------------------------------------
BAD_SOURCES = [
    # name, build(folder) -> path, fragment of the one-line error
    ("review id beyond int range (folder)", huge_id, "99999999999999999999_9.txt"),
    ("review id beyond int range (archive)", as_archive(huge_id), "99999999999999999999_9.txt"),
    ("rating 300", rating(300), "rating 300"),
    ("rating 0", rating(0), "rating 0"),
    ("rating 11 (archive)", as_archive(rating(11)), "rating 11"),
    ("only positive reviews", single_class("train/pos", "test/pos"), "only positive"),
    ("only positive reviews (archive)", as_archive(single_class("train/pos", "test/pos")), "only positive"),
    ("training reviews all negative", single_class("train/neg", "test/pos", "test/neg"), "only negative"),
    ("no test reviews", single_class("train/pos", "train/neg"), "train and test"),
    ("movie number beyond int range", huge_movie, "tt99999999999999999999"),
    ("a folder named like a review", directory_named_like_a_review, "5_8.txt"),
    ("split folders without reviews", empty_split_folders, "no train reviews"),
    ("empty folder", lambda folder: Path(folder), "no aclImdb/"),
    ("empty .tar.gz", file_named("imdb.tar.gz", b""), "is empty"),
    ("text file as the source", file_named("reviews.txt", b"1\tgood film\n"), "it holds text"),
    ("text file named .tar.gz", file_named("aclImdb_v1.tar.gz", b"<html>Not Found</html>\n"), "it holds text"),
    ("binary file as the source", file_named("imdb.bin", bytes(range(256)) * 4), "data of another kind"),
    ("truncated .tar.gz", file_named("imdb.tar.gz", b"\x1f\x8b\x08\x00broken"), "corrupt"),
    ("npz labels are strings", npz(y_train=np.array(["pos", "neg", "pos", "neg"])), "y_train"),
    ("npz labels 2 and -1", npz(y_train=np.array([2, 0, -1, 0])), "y_train"),
    ("npz float labels 0.3 and 0.7", npz(y_train=np.array([0.7, 0.3, 0.7, 0.3])), "y_train"),
    ("npz more labels than reviews", npz(y_train=np.array([1, 0, 1, 0, 1])), "5 labels"),
    ("npz fewer labels than reviews", npz(y_test=np.array([1])), "1 label for 2 reviews"),
    ("npz 2-D labels", npz(y_train=np.array([[1, 0], [1, 0]])), "y_train"),
    ("npz only positive training labels", npz(y_train=np.array([1, 1, 1, 1])), "only positive"),
    ("npz no training reviews", npz(x_train=ragged([]), y_train=np.array([], dtype=int)), "no train reviews"),
    ("npz reviews given as strings", npz(x_train=np.array(["good film", "bad", "ok", "meh"])), "x_train"),
    ("npz reviews as an object array of strings",
     npz(x_train=np.array(["good film", "bad", "ok", "meh"], dtype=object)), "x_train"),
    ("npz nested lists", npz(x_test=ragged([[[1, 2]], [4]])), "x_test"),
    ("npz float word ranks", npz(x_test=ragged([[1.5, 2.0], [4.0]])), "x_test"),
    ("npz word rank 0", npz(x_test=ragged([[0, 1], [4]])), "ranks start at 1"),
    ("npz negative word rank", npz(x_test=ragged([[-3, 1], [4]])), "ranks start at 1"),
    ("npz word rank beyond 64 bits", npz(x_test=ragged([[10**30, 1], [4]])), "64-bit"),
    ("npz scalar reviews", npz(x_train=np.array(5)), "x_train"),
    ("npz header claims 10^12 ints", npz_member("x_train", npy_header("<i8", (10**12,)) + b"\0" * 64), "x_train.npy"),
    ("npz header claims 10^12 objects", npz_member("y_test", npy_header("|O", (10**12,)) + b"\0" * 64), "y_test"),
    ("npz pickle builds 10^12 objects", npz_member("x_test", pickled_shape((10**12,))), "x_test"),
    ("npz member is not an array", npz_member("x_test", b"not numpy at all"), "x_test"),
    ("npz lacks y_test", npz(y_test=None), "y_test"),
    ("npz is not a zip", file_named("imdb.npz", b"PK\x03\x04 broken"), "imdb.npz"),
    ("npz is empty", file_named("imdb.npz", b""), "imdb.npz"),
    ("word index is malformed JSON", with_index(b'{"good": 1,'), "imdb_word_index.json"),
    ("word index is empty", with_index(b""), "imdb_word_index.json"),
    ("word index is a list", with_index(b'["good", "bad"]'), "imdb_word_index.json"),
    ("word index rank is a string", with_index(index_of({"good": "1"})), "imdb_word_index.json"),
    ("word index rank is a float", with_index(index_of({"good": 1.5})), "imdb_word_index.json"),
    ("word index rank is true", with_index(index_of({"good": True})), "imdb_word_index.json"),
    ("word index rank is 0", with_index(index_of({"good": 0})), "imdb_word_index.json"),
    ("word index rank is negative", with_index(index_of({"good": -2})), "imdb_word_index.json"),
    ("word index word holds a line break", with_index(index_of({"go\nod": 1})), "imdb_word_index.json"),
    ("word index is not UTF-8", with_index(b'{"caf\xe9": 1}'), "imdb_word_index.json"),
]
