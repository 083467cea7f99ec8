"""The data pipeline on tiny IMDB-layout data the tests make (never the real archive)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.imdb_fixtures import archive_tree, make_imdb_archive, make_imdb_tree, write_imdb_tree
from zoo_core import data
from zoo_core.config import DataConfig
from zoo_core.errors import ZooError
from zoo_core.settings import load_settings


def settings_for(tmp_path: Path, search_path=()):
    """The checkout's settings with a private cache and the given search path."""
    return dataclasses.replace(load_settings(), cache_dir=tmp_path / "cache", search_path=tuple(search_path))


def load(source, tmp_path, seed=0, warn=None, **config):
    return data.load_dataset(DataConfig(source=str(source), **config), settings_for(tmp_path), seed=seed,
                             progress=False, warn=warn)


def words_of(vocab, ids):
    return [vocab.words[i] for i in ids]


# -- tokenizer and vocabulary ------------------------------------------------------------------------
@pytest.mark.parametrize("text, tokens", [
    ("It's GREAT.<br /><br />10/10!", ["it's", "great", ".", "10", "/", "10", "!"]),
    ("don't <BR>stop", ["don't", "stop"]),
    ("'quoted' well-made...", ["'", "quoted", "'", "well", "-", "made", ".", ".", "."]),
    ("Café naïve_x", ["café", "naïve", "_", "x"]),
    ("", []),
])
def test_tokenize_follows_the_documented_rule(text, tokens):
    assert data.tokenize(text) == tokens


def test_vocabulary_ranks_training_words_by_count_with_alphabetical_ties(tmp_path):
    tree = write_imdb_tree(tmp_path, {
        "train/pos": ["b b b c", "a c"], "train/neg": ["d z"],
        "test/pos": ["q q q q q"], "test/neg": ["b"],
    }, movies={"train/pos": [1, 2], "train/neg": [3], "test/pos": [4], "test/neg": [5]})
    ds = load(tree, tmp_path, val_fraction=0.0)
    # b:3, c:2, then a, d, z once each (alphabetical); q only occurs in test.
    assert ds.vocab.words == ["<pad>", "<start>", "<unk>", "b", "c", "a", "d", "z"]
    assert ds.vocab.counts == [0, 0, 0, 3, 2, 1, 1, 1]
    assert words_of(ds.vocab, ds.test.sequence(0)) == ["<start>", "b"]  # test/neg comes first (label 0)
    assert words_of(ds.vocab, ds.test.sequence(1)) == ["<start>"] + ["<unk>"] * 5
    assert ds.report["oov_rate"]["test"] == pytest.approx(5 / 6)

    small = load(tree, tmp_path, val_fraction=0.0, num_words=5)
    assert small.vocab.words == ["<pad>", "<start>", "<unk>", "b", "c"]
    assert words_of(small.vocab, small.train.sequence(small.train.labels.tolist().index(0))) == [
        "<start>", "<unk>", "<unk>"]


def test_vocabulary_encode_decode_and_json_round_trip(tmp_path):
    vocab = data.Vocabulary(list(data.RESERVED) + ["the", "film", "good"], counts=[0, 0, 0, 5, 3, 1])
    assert len(vocab) == 6
    assert vocab.encode(["the", "good", "unseen"]) == [3, 5, 2]
    assert vocab.decode([0, 0, 1, 3, 4, 2, 5]) == "the film <unk> good"
    assert vocab.decode(np.array([[1, 3], [0, 5]])) == "the good"
    with pytest.raises(ZooError, match="outside the vocabulary"):
        vocab.decode([3, 6])
    assert data.Vocabulary.from_json(vocab.to_json()) == vocab
    vocab.save(tmp_path / "vocab.json")
    loaded = data.Vocabulary.load(tmp_path / "vocab.json")
    assert loaded.words == vocab.words and loaded.counts == vocab.counts
    with pytest.raises(ZooError):
        data.Vocabulary(["the", "film"])


# -- lengths, padding, truncation, masks -------------------------------------------------------------
LENGTH_TREE = {
    "train/pos": ["one two three four five", "six", "x y z"], "train/neg": ["bad"],
    "test/pos": ["one two three four five", "six", "x y z"], "test/neg": ["bad"],
}


@pytest.mark.parametrize("padding, truncating, expected", [
    # test/neg "bad", then test/pos 0..2; maxlen 4, the start token counts in the length.
    ("pre", "pre", [["<pad>", "<pad>", "<start>", "bad"], ["two", "three", "four", "five"],
                    ["<pad>", "<pad>", "<start>", "six"], ["<start>", "x", "y", "z"]]),
    ("pre", "post", [["<pad>", "<pad>", "<start>", "bad"], ["<start>", "one", "two", "three"],
                     ["<pad>", "<pad>", "<start>", "six"], ["<start>", "x", "y", "z"]]),
    ("post", "pre", [["<start>", "bad", "<pad>", "<pad>"], ["two", "three", "four", "five"],
                     ["<start>", "six", "<pad>", "<pad>"], ["<start>", "x", "y", "z"]]),
    ("post", "post", [["<start>", "bad", "<pad>", "<pad>"], ["<start>", "one", "two", "three"],
                      ["<start>", "six", "<pad>", "<pad>"], ["<start>", "x", "y", "z"]]),
])
def test_padding_and_truncation_match_hand_computed_sequences(tmp_path, padding, truncating, expected):
    tree = write_imdb_tree(tmp_path, LENGTH_TREE, movies={k: [i] * len(v) for i, (k, v) in
                                                          enumerate(LENGTH_TREE.items())})
    ds = load(tree, tmp_path, maxlen=4, padding=padding, truncating=truncating, val_fraction=0.0)
    batch = next(ds.test.batches(batch_size=8))
    assert [words_of(ds.vocab, row) for row in batch.ids] == expected
    assert batch.ids.dtype == np.int32 and batch.mask.dtype == bool and batch.labels.dtype == np.int32
    assert batch.labels.tolist() == [0, 1, 1, 1]
    # The mask marks exactly the real tokens.
    assert np.array_equal(batch.mask, np.array(expected) != "<pad>")
    assert ds.test.raw_lengths.tolist() == [2, 6, 2, 4]
    assert ds.test.lengths.tolist() == [2, 4, 2, 4]
    assert ds.report["truncated"]["test"] == 1 and ds.report["tokens_lost"]["test"] == 2


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_padded_batches_match_keras_pad_sequences(tiny_imdb_archive, tmp_path, padding, truncating):
    keras = pytest.importorskip("keras")
    ds = load(tiny_imdb_archive, tmp_path, maxlen=12, padding=padding, truncating=truncating)
    full = load(tiny_imdb_archive, tmp_path, maxlen=10_000)  # same vocabulary, nothing cut
    rows = np.arange(len(ds.train))
    expected = keras.utils.pad_sequences([full.train.sequence(i) for i in rows], maxlen=12, padding=padding,
                                         truncating=truncating, value=0)
    got = np.concatenate([b.ids for b in ds.train.batches(batch_size=16)])
    assert np.array_equal(got, expected)
    masks = np.concatenate([b.mask for b in ds.train.batches(batch_size=16)])
    assert np.array_equal(masks, expected != 0)


# -- batching ----------------------------------------------------------------------------------------
def test_bucketing_serves_every_review_once_in_length_homogeneous_batches(tmp_path):
    archive = make_imdb_archive(tmp_path / "imdb.tar.gz", n_per_class=30, max_words=60)
    ds = load(archive, tmp_path, maxlen=40, batching="bucket", val_fraction=0.0)
    split = ds.train
    batches = list(split.batches(batch_size=7, shuffle=True, seed=3))
    seen = np.concatenate([b.ids[b.mask] for b in batches])
    # Every example exactly once: the multiset of served sequences equals the split's.
    served = sorted(tuple(b.ids[r][b.mask[r]]) for b in batches for r in range(len(b)))
    assert served == sorted(tuple(split.sequence(i)) for i in range(len(split)))
    assert len(seen) == split.num_tokens()
    assert sum(len(b) for b in batches) == len(split)
    # Each batch pads only to its own longest review, and batches do not interleave in length.
    lengths = [np.sort(b.mask.sum(axis=1)) for b in batches]
    for batch, lens in zip(batches, lengths):
        assert batch.ids.shape[1] == lens[-1]
    ranges = sorted((lens[0], lens[-1]) for lens in lengths)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(ranges, ranges[1:]))
    # The order of batches is shuffled by the seed, reproducibly.
    order = [b.mask.sum() for b in batches]
    assert order == [b.mask.sum() for b in split.batches(batch_size=7, shuffle=True, seed=3)]
    assert order != [b.mask.sum() for b in split.batches(batch_size=7, shuffle=True, seed=4)]
    assert order != sorted(order)


def test_padded_batching_serves_every_review_once_at_maxlen(tiny_imdb_archive, tmp_path):
    ds = load(tiny_imdb_archive, tmp_path, maxlen=16)
    batches = list(ds.train.batches(batch_size=6, shuffle=True, seed=1))
    assert all(b.ids.shape == (len(b), 16) for b in batches)
    served = sorted(tuple(b.ids[r][b.mask[r]]) for b in batches for r in range(len(b)))
    assert served == sorted(tuple(ds.train.sequence(i)) for i in range(len(ds.train)))
    plain = [b.labels.tolist() for b in ds.train.batches(batch_size=6)]
    assert sum(plain, []) == ds.train.labels.tolist()  # no shuffle: the split's order


def test_padding_efficiency_matches_the_batches_actually_served(tmp_path):
    archive = make_imdb_archive(tmp_path / "imdb.tar.gz", n_per_class=25, max_words=50)
    for batching, mode in (("bucket", "bucket"), ("padded", "maxlen")):
        ds = load(archive, tmp_path, maxlen=30, batching=batching, val_fraction=0.0)
        batches = list(ds.train.batches(batch_size=8, shuffle=True, seed=5))
        measured = sum(b.mask.sum() for b in batches) / sum(b.mask.size for b in batches)
        assert data.padding_efficiency(ds.train.lengths, 8, mode, maxlen=30, seed=5) == pytest.approx(measured)
    assert data.padding_efficiency(np.array([1, 2, 3, 4]), 2, "global") == pytest.approx(10 / 16)
    assert data.padding_efficiency(np.array([1, 2, 3, 4]), 2, "bucket") == pytest.approx(10 / 12)


def test_length_percentiles():
    stats = data.length_percentiles(np.arange(1, 101))
    assert stats == {"p50": 51, "p75": 76, "p90": 91, "p95": 96, "p99": 100, "max": 100}


# -- splits ------------------------------------------------------------------------------------------
def test_validation_split_is_disjoint_by_movie(tmp_path):
    archive = make_imdb_archive(tmp_path / "imdb.tar.gz", n_per_class=60, reviews_per_movie=6)
    ds = load(archive, tmp_path, val_fraction=0.2, seed=7)
    assert not set(ds.train.movies) & set(ds.val.movies)
    assert -1 not in set(ds.train.movies)
    assert len(ds.train) + len(ds.val) == 120
    assert 0.15 <= len(ds.val) / 120 <= 0.3
    assert ds.report["split"] == "movie"
    # Seeded: the same seed gives the same split, another seed another one.
    assert np.array_equal(load(archive, tmp_path, val_fraction=0.2, seed=7).val.review_ids, ds.val.review_ids)
    other = load(archive, tmp_path, val_fraction=0.2, seed=8)
    assert set(zip(other.val.labels, other.val.review_ids)) != set(zip(ds.val.labels, ds.val.review_ids))
    # A plain random split of the same reviews straddles movies.
    rand = load(archive, tmp_path, val_fraction=0.2, seed=7, split="random")
    assert len(rand.val) == 24 and set(rand.train.movies) & set(rand.val.movies)


def test_movies_come_from_the_urls_line_of_each_review_id(tmp_path):
    texts = {k: ["good film", "bad film", "fine"] for k in ("train/pos", "train/neg", "test/pos", "test/neg")}
    movies = {"train/pos": [11, 12, 13], "train/neg": [21, 22, 23], "test/pos": [31, 32, 33], "test/neg": [1, 2, 3]}
    ds = load(write_imdb_tree(tmp_path, texts, movies), tmp_path, val_fraction=0.0)
    by_review = {(int(lab), int(rid)): int(m) for lab, rid, m in zip(ds.train.labels, ds.train.review_ids,
                                                                     ds.train.movies)}
    assert by_review == {(1, 0): 11, (1, 1): 12, (1, 2): 13, (0, 0): 21, (0, 1): 22, (0, 2): 23}


def test_without_urls_files_the_split_falls_back_to_random_with_a_warning(tmp_path, capsys):
    texts = {k: [f"word{i} film" for i in range(10)] for k in ("train/pos", "train/neg", "test/pos", "test/neg")}
    warnings = []
    ds = load(write_imdb_tree(tmp_path, texts, movies=None), tmp_path, val_fraction=0.2, warn=warnings.append)
    assert ds.report["split"] == "random" and len(ds.val) == 4
    assert len(warnings) == 1 and "random" in warnings[0] and "\n" not in warnings[0]
    assert capsys.readouterr().err == ""  # the library prints nothing: warnings reach `warn` alone


def test_limit_takes_a_stratified_subset_of_train_and_test(tmp_path):
    archive = make_imdb_archive(tmp_path / "imdb.tar.gz", n_per_class=30)
    ds = load(archive, tmp_path, limit=20, val_fraction=0.25)
    assert len(ds.train) + len(ds.val) == 20 and len(ds.test) == 20
    labels = np.concatenate([ds.train.labels, ds.val.labels])
    assert labels.sum() == 10 and ds.test.labels.sum() == 10


def test_long_drop_removes_overlong_reviews_from_train_only(tiny_imdb_archive, tmp_path):
    cut = load(tiny_imdb_archive, tmp_path, maxlen=20)
    drop = load(tiny_imdb_archive, tmp_path, maxlen=20, long="drop")
    too_long = int(np.sum(cut.train.raw_lengths > 20))
    assert too_long > 0
    assert len(drop.train) == len(cut.train) - too_long
    assert drop.train.raw_lengths.max() <= 20
    assert drop.report["dropped"] == {"train": too_long}
    # Validation and test keep every review, truncated.
    assert len(drop.test) == len(cut.test) and len(drop.val) == len(cut.val)
    assert drop.report["truncated"]["test"] > 0 and drop.test.lengths.max() == 20


def test_archive_and_folder_give_the_same_dataset(tmp_path):
    tree = make_imdb_tree(tmp_path / "t", n_per_class=10)
    archive = archive_tree(tree, tmp_path / "imdb.tar.gz")
    a, f = load(archive, tmp_path), load(tree, tmp_path)
    assert f.report["kind"] == "folder" and a.report["kind"] == "archive"
    assert a.vocab == f.vocab
    for name in ("train", "val", "test"):
        assert np.array_equal(getattr(a, name).ids, getattr(f, name).ids)
    assert load(tree.parent, tmp_path).vocab == a.vocab  # the folder holding aclImdb/ works too


# -- sources and their fingerprints (the cache key: must never change for an unchanged source) ---------
def fixed_tree(tmp_path: Path) -> Path:
    """A tiny aclImdb tree whose files have fixed modification times, so its fingerprint is known."""
    tree = write_imdb_tree(tmp_path, {"train/pos": ["good film", "fine"], "train/neg": ["bad"], "test/pos": ["great"],
                                      "test/neg": ["awful", "dull"]},
                           {"train/pos": [1, 1], "train/neg": [2], "test/pos": [3], "test/neg": [4, 4]})
    (tree / "README").write_text("x")
    for i, file in enumerate(sorted(p for p in tree.rglob("*") if p.is_file())):
        os.utime(file, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + 1000 * i))
    return tree


def test_fingerprints_and_cache_file_names_are_those_recorded_before(tmp_path):
    # Values computed by the single-module zoo_core/data.py this package replaced: existing cache files
    # and the data checksums of recorded runs stay valid only while these hold, byte for byte.
    tree, cache = fixed_tree(tmp_path / "t"), tmp_path / "cache"
    folder = "folder-af5d140df165319db8fa63a6166e5807296a10428a11cf4a4836755f68e4d3df"
    assert data.source_checksum(tree, cache) == data.source_checksum(tree.parent, cache) == folder
    archive = tmp_path / "aclImdb_v1.tar.gz"
    archive.write_bytes(b"any bytes: the fingerprint never opens the file")
    assert data.source_checksum(archive, cache) == hashlib.sha256(archive.read_bytes()).hexdigest()
    npz = tmp_path / "k" / "imdb.npz"
    npz.parent.mkdir()
    npz.write_bytes(b"npz bytes")
    assert data.source_checksum(npz, cache) == hashlib.sha256(b"npz bytes").hexdigest()
    (npz.parent / "imdb_word_index.json").write_text('{"good": 1}')
    assert data.source_checksum(npz, cache) == (hashlib.sha256(b"npz bytes").hexdigest() + "+index-"
                                                + hashlib.sha256(b'{"good": 1}').hexdigest()[:16])
    assert data.cache_file(Path("/c"), "folder-abc") == Path("/c/imdb-92e238a9723308e2cf110fe4-v2.npz")
    assert data.cache_file(Path("/c"), "0" * 64 + "+index-" + "1" * 16).name == "imdb-03cc7a038e5587c3df8c1570-v2.npz"


def test_the_cache_file_format_is_unchanged(tiny_imdb_tree, tmp_path):
    ds = load(tiny_imdb_tree, tmp_path)
    with np.load(ds.report["cache"], allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["labels", "meta", "movies", "offsets", "ratings", "review_ids", "splits",
                                        "tokens", "words"]
        assert json.loads(bytes(arrays["meta"])) == {"ranked": False, "kind": "folder", "tokenizer": "zoo",
                                                     "version": 2, "normalization": data.NORMALIZATION}
        assert bytes(arrays["words"]).decode().split("\n") == sorted(bytes(arrays["words"]).decode().split("\n"))


def test_each_source_kind_is_one_class_of_the_table(tiny_imdb_archive, tiny_imdb_tree, tmp_path):
    npz = tmp_path / "imdb.npz"
    npz.write_bytes(b"")
    assert [type(data.source_for(p)) for p in (tiny_imdb_archive, tiny_imdb_tree, tiny_imdb_tree.parent, npz)] == [
        data.ImdbArchive, data.ImdbFolder, data.ImdbFolder, data.KerasNpz]
    assert [s.kind for s in data.SOURCES] == ["folder", "npz", "archive"]
    assert all(isinstance(s, data.Source) for s in data.SOURCES)
    with pytest.raises(ZooError, match="holds ids, not texts"):
        data.read_labelled(npz)


def test_each_source_checks_its_own_first_bytes(tiny_imdb_archive, tiny_imdb_tree, tmp_path):
    for good in (tiny_imdb_archive, tiny_imdb_tree, tiny_imdb_tree.parent):
        assert data.check_source(good) == good
    files = {"a.tar.gz": b"<html>Not Found</html>\n", "a.bin": bytes(range(256)), "a.tar": b"\0" * 600,
             "b.tar": b"\0" * 257 + b"ustar" + b"\0" * 250, "a.tar.bz2": b"BZh91AY", "imdb.npz": b"not a zip",
             "empty.npz": b"", "k.npz": b"PK\x05\x06" + b"\0" * 18}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    refused = {}
    for name in files:
        try:
            data.check_source(tmp_path / name)
        except ZooError as err:
            refused[name] = str(err)
    assert set(refused) == {"a.tar.gz", "a.bin", "a.tar", "imdb.npz", "empty.npz"}  # b.tar, .bz2, k.npz pass
    assert refused["a.tar.gz"].endswith("is not an IMDB source (aclImdb/ folder, imdb.npz or .tar.gz): it holds text")
    assert all(refused[name].endswith("it holds data of another kind") for name in ("a.bin", "a.tar"))
    assert "not a zip file" in refused["imdb.npz"] and "is empty" in refused["empty.npz"]
    (tmp_path / "folder").mkdir()
    with pytest.raises(ZooError, match="holds no aclImdb/ train and test folders"):
        data.ImdbFolder().check(tmp_path / "folder")
    # What evaluate may read: a table as it is, a source with texts checked as a source, an npz refused.
    (tmp_path / "r.tsv").write_bytes(b"no label here")  # read (and refused) only later
    assert data.check_labelled(tmp_path / "r.tsv") == tmp_path / "r.tsv"
    assert data.check_labelled(tiny_imdb_archive) == tiny_imdb_archive
    for path, message in [(tmp_path / "k.npz", "holds ids, not texts"), (tmp_path / "a.tar.gz", "it holds text"),
                          (tmp_path / "missing.tsv", "does not exist")]:
        with pytest.raises(ZooError, match=message):
            data.check_labelled(path)


def test_a_new_source_is_one_class(tmp_path, monkeypatch):
    class OneReview(data.Source):  # a made-up kind: a .review file is one training and one test review
        kind, description = "review", ".review file"

        def matches(self, path):
            return path.suffix == ".review"

        def read(self, path, progress=None):
            words = sorted(set(path.read_text().split()))
            ids = np.array([words.index(w) for w in path.read_text().split()] * 4, dtype=np.int32)
            n = len(ids) // 4
            return data.Corpus(words=words, tokens=ids, offsets=np.arange(5, dtype=np.int64) * n,
                               labels=np.array([0, 1, 0, 1], dtype=np.int8), splits=np.array([0, 0, 1, 1], np.int8),
                               movies=np.full(4, -1, np.int64), ratings=np.zeros(4, np.int8),
                               review_ids=np.arange(4, dtype=np.int32), ranked=False, kind=self.kind)

    monkeypatch.setattr(data.sources, "SOURCES", (OneReview(),) + data.SOURCES)
    source = tmp_path / "a.review"
    source.write_text("good film")
    assert data.check_source(source) == source  # no check() of its own: its reader judges it
    ds = load(source, tmp_path, split="random", val_fraction=0.0)
    assert ds.report["kind"] == "review" and ds.checksum == hashlib.sha256(b"good film").hexdigest()
    assert ds.vocab.decode(ds.test.sequence(0)) == "good film"
    with pytest.raises(ZooError, match=r"give an existing \.review file, aclImdb/ folder, imdb\.npz or \.tar\.gz"):
        load(tmp_path / "missing", tmp_path)


# -- caching -----------------------------------------------------------------------------------------
def test_second_load_comes_from_the_cache(tiny_imdb_archive, tmp_path, monkeypatch):
    first = load(tiny_imdb_archive, tmp_path)
    assert first.report["cache_hit"] is False and Path(first.report["cache"]).is_file()
    assert first.checksum == hashlib.sha256(tiny_imdb_archive.read_bytes()).hexdigest()

    def no_reading(*args, **kwargs):
        raise AssertionError("the source was read again")

    monkeypatch.setattr(data.cache, "read_corpus", no_reading)
    monkeypatch.setattr(data.cache, "sha256_file", no_reading)  # the checksum is remembered too
    second = load(tiny_imdb_archive, tmp_path, maxlen=50, num_words=30)  # other settings, same cache
    assert second.report["cache_hit"] is True and second.report["cache"] == first.report["cache"]
    same = load(tiny_imdb_archive, tmp_path)
    assert same.vocab == first.vocab and np.array_equal(same.train.ids, first.train.ids)


def test_a_corrupt_cache_file_is_rebuilt(tiny_imdb_archive, tmp_path):
    first = load(tiny_imdb_archive, tmp_path)
    cache = Path(first.report["cache"])
    cache.write_bytes(cache.read_bytes()[:1000])
    warnings = []
    rebuilt = load(tiny_imdb_archive, tmp_path, warn=warnings.append)
    assert rebuilt.report["cache_hit"] is False and len(warnings) == 1 and "corrupt" in warnings[0]
    assert rebuilt.vocab == first.vocab and np.array_equal(rebuilt.test.ids, first.test.ids)
    assert load(tiny_imdb_archive, tmp_path).report["cache_hit"] is True


# -- errors ------------------------------------------------------------------------------------------
def test_missing_data_names_every_place_looked_and_how_to_point_elsewhere(tmp_path):
    places = [tmp_path / "nowhere.tar.gz", tmp_path / "aclImdb"]
    with pytest.raises(ZooError) as err:
        data.load_dataset(DataConfig(), settings_for(tmp_path, places), progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert all(str(p) in message for p in places)
    assert "--data PATH" in message and "ZOO_DATA" in message
    with pytest.raises(ZooError, match="nothing.tar.gz"):
        load(tmp_path / "nothing.tar.gz", tmp_path)


def test_the_library_reads_no_environment_the_caller_names_where_the_path_came_from(tiny_imdb_archive, tmp_path,
                                                                                   monkeypatch):
    # $ZOO_DATA is read by the CLI's --data option alone (tests/test_data_cli.py); the library takes the path.
    monkeypatch.setenv("ZOO_DATA", str(tiny_imdb_archive))
    with pytest.raises(ZooError, match="no IMDB data found"):
        data.load_dataset(DataConfig(), settings_for(tmp_path), progress=False)
    missing = tmp_path / "missing.tar.gz"
    for origin, shown in ((None, "data.source"), ("--data", "--data"), ("ZOO_DATA", "ZOO_DATA")):
        with pytest.raises(ZooError, match=rf"no IMDB data at \S*missing.tar.gz \(from {shown}\)"):
            data.find_source(DataConfig(source=str(missing)), settings_for(tmp_path), origin=origin)
    assert data.candidate_sources(DataConfig(), settings_for(tmp_path, [missing])) == [(missing, "search path")]


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupt_archive_is_one_clear_error_and_leaves_no_cache(tiny_imdb_archive, tmp_path, damage):
    content = tiny_imdb_archive.read_bytes()
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(content[: len(content) // 2] if damage == "truncate" else b"\x1f\x8b" + b"x" * 5000)
    with pytest.raises(ZooError) as err:
        load(broken, tmp_path)
    assert str(broken) in str(err.value) and "corrupt" in str(err.value) and "\n" not in str(err.value)
    leftovers = [p.name for p in (tmp_path / "cache").glob("*") if p.name != "checksums.json"]
    assert leftovers == []


# -- Keras' imdb.npz ---------------------------------------------------------------------------------
def write_keras_npz(path: Path, train: list[str], test: list[str], train_labels, test_labels) -> dict[str, int]:
    """Writes texts as Keras stores IMDB: word ranks by training frequency (1 = most frequent), no start."""
    from collections import Counter

    counts = Counter(t for text in train for t in data.tokenize(text))
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    word_index = {w: r for r, w in enumerate(ranked, start=1)}
    for text in test:  # Keras' index also covers words only seen in test
        for token in data.tokenize(text):
            word_index.setdefault(token, len(word_index) + 1)

    def ranks(texts):
        out = np.empty(len(texts), dtype=object)
        out[:] = [[word_index[t] for t in data.tokenize(text)] for text in texts]
        return out

    np.savez(path, x_train=ranks(train), y_train=np.array(train_labels), x_test=ranks(test),
             y_test=np.array(test_labels))
    (path.parent / "imdb_word_index.json").write_text(json.dumps(word_index))
    return word_index


NPZ_TRAIN = ["A good film, a good cast.", "Bad film!", "good good story", "bad bad plot, bad film"]
NPZ_TEST = ["good plot twist", "a bad, bad ending"]


def test_keras_npz_round_trip_decodes_back_to_the_words(tmp_path):
    npz = tmp_path / "imdb.npz"
    write_keras_npz(npz, NPZ_TRAIN, NPZ_TEST, [1, 0, 1, 0], [1, 0])
    ds = load(npz, tmp_path, val_fraction=0.0, split="random")
    assert ds.report["kind"] == "npz"
    assert [ds.vocab.decode(ds.test.sequence(i)) for i in range(2)] == [
        " ".join(data.tokenize(t)) for t in NPZ_TEST]
    assert sorted(ds.vocab.decode(ds.train.sequence(i)) for i in range(4)) == sorted(
        " ".join(data.tokenize(t)) for t in NPZ_TRAIN)
    # Keras ids: rank + 3; the most frequent training word ("good", 5 times ... or "bad") gets id 4.
    assert ds.vocab.words[3] == "<unused>" and ds.vocab.words[4] in ("bad", "good")
    assert ds.test.labels.tolist() == [1, 0]


def test_adding_a_word_index_beside_the_npz_refreshes_the_cache(tmp_path):
    npz = tmp_path / "imdb.npz"
    write_keras_npz(npz, NPZ_TRAIN, NPZ_TEST, [1, 0, 1, 0], [1, 0])
    (tmp_path / "imdb_word_index.json").rename(tmp_path / "later.json")
    unnamed = load(npz, tmp_path, val_fraction=0.0)
    assert unnamed.vocab.decode([4]) == "<4>"  # words named by their Keras id
    (tmp_path / "later.json").rename(tmp_path / "imdb_word_index.json")
    named = load(npz, tmp_path, val_fraction=0.0)
    assert named.report["cache_hit"] is False and named.vocab.decode([4]) in ("bad", "good")


def test_keras_npz_ids_match_keras_load_data(tmp_path, monkeypatch):
    pytest.importorskip("keras")
    from keras.src.datasets import imdb as keras_imdb

    npz = tmp_path / "imdb.npz"
    write_keras_npz(npz, NPZ_TRAIN, NPZ_TEST, [1, 0, 1, 0], [1, 0])
    monkeypatch.setattr(keras_imdb, "get_file", lambda *args, **kwargs: str(npz))
    (x_train, y_train), (x_test, y_test) = keras_imdb.load_data(num_words=8)
    warnings = []
    ds = load(npz, tmp_path, num_words=8, maxlen=100, val_fraction=0.0, warn=warnings.append)
    assert "random" in warnings[0]  # no movies in an npz
    ours = sorted((tuple(ds.train.sequence(i)), int(ds.train.labels[i])) for i in range(len(ds.train)))
    theirs = sorted((tuple(x), int(y)) for x, y in zip(x_train, y_train))
    assert ours == theirs
    assert sorted(tuple(ds.test.sequence(i)) for i in range(2)) == sorted(tuple(x) for x in x_test)
    assert len(ds.vocab) == 8


def test_keras_npz_refuses_pickled_code(tmp_path):
    npz = tmp_path / "evil.npz"
    with zipfile.ZipFile(npz, "w") as archive:
        archive.writestr("x_train.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, "
                         b"'shape': (1,), }" + b" " * 55 + b"\n" + b"cos\nsystem\n(S'echo hi'\ntR.")
    with pytest.raises(ZooError, match="evil.npz"):
        load(npz, tmp_path)


# -- texts from elsewhere ----------------------------------------------------------------------------
def test_encode_texts_matches_the_dataset_pipeline(tiny_imdb_archive, tmp_path):
    ds = load(tiny_imdb_archive, tmp_path, maxlen=15, padding="post", truncating="post")
    texts, labels = data.read_labelled(tiny_imdb_archive)
    assert labels.tolist() == ds.test.labels.tolist()
    batch = data.encode_texts(texts, ds.vocab, ds.config)
    expected = next(ds.test.batches(batch_size=len(texts)))
    assert np.array_equal(batch.ids, expected.ids) and np.array_equal(batch.mask, expected.mask)
    assert batch.labels.tolist() == [0] * len(texts)
    bucketed = data.encode_texts(["good", "a good film"], ds.vocab, dataclasses.replace(ds.config, batching="bucket"))
    assert bucketed.ids.shape == (2, 4) and bucketed.mask.sum(axis=1).tolist() == [2, 4]


def test_read_labelled_reads_folders_and_tables(tmp_path, tiny_imdb_tree):
    archive_texts, archive_labels = data.read_labelled(archive_tree(tiny_imdb_tree, tmp_path / "a.tar.gz"))
    folder_texts, folder_labels = data.read_labelled(tiny_imdb_tree)
    assert archive_texts == folder_texts and archive_labels.tolist() == folder_labels.tolist()
    assert len(folder_texts) == 40 and folder_labels.sum() == 20
    table = tmp_path / "reviews.tsv"
    table.write_text("label\ttext\npos\tLoved it\n0\tDull, dull.\n", encoding="utf-8")
    assert data.read_labelled(table)[0] == ["Loved it", "Dull, dull."]
    assert data.read_labelled(table)[1].tolist() == [1, 0]
    with pytest.raises(ZooError, match="does not exist"):
        data.read_labelled(tmp_path / "missing.tsv")


# -- download ----------------------------------------------------------------------------------------
@pytest.fixture
def served_file(tmp_path):
    """A small file served over HTTP on 127.0.0.1: (url, content)."""
    content = b"not really imdb, " * 1000
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "aclImdb_v1.tar.gz").write_bytes(content)
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(tmp_path / "www"))  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/aclImdb_v1.tar.gz", content
    server.shutdown()


def test_download_verifies_checksum_and_size(served_file, tmp_path):
    url, content = served_file
    sha = hashlib.sha256(content).hexdigest()
    dest = tmp_path / "keras" / "aclImdb_v1.tar.gz"
    assert data.download_imdb(dest, url=url, sha256=sha, size=len(content), progress=False) == dest
    assert dest.read_bytes() == content

    bad = tmp_path / "bad" / "aclImdb_v1.tar.gz"
    with pytest.raises(ZooError, match="sha256"):
        data.download_imdb(bad, url=url, sha256="0" * 64, size=len(content), progress=False)
    with pytest.raises(ZooError, match="bytes"):
        data.download_imdb(bad, url=url, sha256=sha, size=len(content) + 1, progress=False)
    assert list(bad.parent.iterdir()) == []  # nothing partial kept
    with pytest.raises(ZooError, match="could not download"):
        data.download_imdb(bad, url=url + ".missing", sha256=sha, progress=False)


def test_downloaded_archive_loads_via_a_file_url(tmp_path, monkeypatch):
    archive = make_imdb_archive(tmp_path / "src" / "aclImdb_v1.tar.gz", n_per_class=5)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    got = data.download_imdb(url=archive.as_uri(), sha256=sha, size=archive.stat().st_size, progress=False)
    assert got == tmp_path / "keras" / "datasets" / "aclImdb_v1.tar.gz"
    assert len(load(got, tmp_path).test) == 10
