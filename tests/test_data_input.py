"""Data and text input as a hostile user feeds it: bad sources, nonsense labels, Unicode, files, empty text.

Every bad source is one ``ZooError`` (one line, exit status 2 from the CLI)
with nothing left in the cache; text is normalised and tokenised the same way
in training and prediction; one input line is one review.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.bad_sources import BAD_SOURCES, npz, ragged
from tests.cli_helpers import zoo
from tests.imdb_fixtures import write_imdb_tree
from zoo_core import data, runs
from zoo_core.config import DataConfig, ModelSpec, RunSpec
from zoo_core.errors import ZooError
from zoo_core.results import ResultsDB
from zoo_core.settings import load_settings

CHECKOUT = Path(__file__).resolve().parents[1]


def settings_for(tmp_path: Path, search_path=()):
    return dataclasses.replace(load_settings(), cache_dir=tmp_path / "cache", search_path=tuple(search_path))


def load(source, tmp_path, **config):
    return data.load_dataset(DataConfig(source=str(source), **config), settings_for(tmp_path), progress=False)


def cache_files(folder: Path) -> list[str]:
    """What a cache folder holds besides the checksum memo (prepared data, partial files)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "checksums.json") if folder.is_dir() else []


def built(tmp_path: Path, build) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    return build(folder)


# -- bad sources -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, build, message", BAD_SOURCES, ids=[row[0] for row in BAD_SOURCES])
def test_a_bad_source_is_one_zoo_error_and_caches_nothing(tmp_path, name, build, message):
    source = built(tmp_path, build)
    with pytest.raises(ZooError) as err:
        load(source, tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert cache_files(tmp_path / "cache") == []


CLI_ROWS = ["review id beyond int range (archive)", "npz labels are strings", "npz header claims 10^12 ints",
            "word index is malformed JSON", "only positive reviews"]


@pytest.mark.parametrize("name", CLI_ROWS)
def test_a_bad_source_is_one_line_and_exit_2_from_a_real_zoo_process(tmp_path, name):
    _, build, message = next(row for row in BAD_SOURCES if row[0] == name)
    source = built(tmp_path, build)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "zoo_core.cli", "data", "info", "--data", str(source)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    *progress, last = done.stderr.splitlines()
    assert last.startswith("Error: ") and message in last and done.stdout == ""
    assert all(line.startswith("tokenising ") for line in progress)  # the progress bar's label, nothing else
    assert cache_files(tmp_path / "cache" / "rnn-zoo") == []


# A source of the wrong kind is refused before TensorFlow is imported: at once, not after seconds of setup.
FAST_FAILURES = [
    (["train", "--data", "{text}"], "it holds text"),
    (["train", "elman-last", "--data", "{empty_archive}", "--epochs", "1"], "is empty"),
    (["train", "--data", "{folder}"], "no aclImdb/"),
    (["train", "--data", "{binary}"], "data of another kind"),
    (["rank", "elman-last", "--data", "{text}", "--results", "{results}"], "it holds text"),
    (["diagnose", "--data", "{text}"], "it holds text"),
    (["evaluate", "best", "--data", "{missing}"], "does not exist"),
    (["evaluate", "best", "--data", "{empty_tsv}"], "is empty"),
    (["evaluate", "best", "--data", "{npz}"], "holds ids, not texts"),
    (["evaluate", "best", "--data", "{text_archive}"], "it holds text"),
]


@pytest.mark.parametrize("args, message", FAST_FAILURES, ids=[" ".join(a) for a, _ in FAST_FAILURES])
def test_a_source_of_the_wrong_kind_fails_before_tensorflow_is_imported(tmp_path, args, message):
    files = {"text": ("reviews.txt", b"1\tgood film\n"), "empty_archive": ("imdb.tar.gz", b""),
             "binary": ("imdb.bin", bytes(range(256))), "empty_tsv": ("reviews.tsv", b"\n"),
             "npz": ("imdb.npz", b"PK\x05\x06" + b"\0" * 18),
             "text_archive": ("aclImdb_v1.tar.gz", b"<html>Not Found</html>\n")}
    paths = {"folder": tmp_path, "missing": tmp_path / "nowhere", "results": tmp_path / "results.sqlite"}
    for key, (name, content) in files.items():
        paths[key] = tmp_path / name
        paths[key].write_bytes(content)
    argv = [str(paths[a[1:-1]]) if a.startswith("{") else a for a in args]
    script = f"""
import sys
from zoo_core.cli import main
try:
    main({argv!r})
except SystemExit as done:
    print("exit", done.code)
print("tensorflow imported:", "tensorflow" in sys.modules)
"""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_DATA_HOME": str(tmp_path / "share")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                          cwd=CHECKOUT)
    assert done.stdout.splitlines()[-2:] == ["exit 2", "tensorflow imported: False"], done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert not paths["results"].exists() or ResultsDB(paths["results"]).runs() == []


# Odd but meaningful sources load, with the meaning they have (and a bounded word table).
@pytest.mark.parametrize("name, build, unknown", [
    ("float labels that are exactly 0.0 and 1.0", npz(y_train=np.array([1.0, 0.0, 1.0, 0.0])), 0),
    ("bool labels", npz(y_train=np.array([True, False, True, False])), 0),
    ("a word rank beyond any vocabulary", npz(x_train=ragged([[10**12, 1], [3, 1, 4], [2, 2], [5]])), 1),
])
def test_odd_but_meaningful_npz_sources_load(tmp_path, name, build, unknown):
    ds = load(built(tmp_path, build), tmp_path, val_fraction=0.0, split="random")
    assert sorted(ds.train.labels.tolist()) == [0, 0, 1, 1]
    assert int(np.sum(ds.train.ids == data.UNK)) == unknown
    assert len(ds.vocab) <= ds.config.num_words


def test_a_training_split_of_one_class_after_limit_is_refused(tmp_path):
    tree = write_imdb_tree(tmp_path, {"train/pos": ["good", "fine"], "train/neg": ["bad", "dull"],
                                      "test/pos": ["good"], "test/neg": ["bad"]})
    with pytest.raises(ZooError, match=r"training split holds only (positive|negative) reviews \(1 in all\)"):
        load(tree, tmp_path, limit=1, val_fraction=0.0)


# -- text normalisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("typed, plain", [
    ("I don\u2019t think so", "I don't think so"),        # right single quotation mark
    ("I don\u2018t think so", "I don't think so"),        # left single quotation mark
    ("I don\u00b4t think so", "I don't think so"),        # acute accent used as an apostrophe
    ("I don\x92t think so", "I don't think so"),          # Windows-1252 apostrophe as a C1 control
    ("\u201cGreat\u201d film", '"Great" film'),           # curly double quotes
    ("a \ufb01ne \uff27\uff4f\uff4f\uff44 film", "a fine Good film"),  # ligature, full-width letters
    ("wait\x85what", "wait...what"),                      # IMDB's ellipsis (U+0085)
    ("wait\u2026what", "wait...what"),
    ("no\u00a0break", "no break"),
])
def test_typographic_text_tokenises_as_its_ascii_form(typed, plain):
    assert data.tokenize(typed) == data.tokenize(plain)
    assert data.keras_tokenize(typed) == data.keras_tokenize(plain)


@pytest.mark.parametrize("text, tokens", [
    ("Great film, I loved it.", ["great", "film", "i", "loved", "it"]),
    ("It's GREAT.<br /><br />10/10!", ["it's", "great", "br", "br", "10", "10"]),
    ("\u201cDon\u2019t\u201d -- (really)", ["don't", "really"]),
    ("", []),
])
def test_keras_tokenizer_drops_punctuation_as_keras_data_does(text, tokens):
    assert data.keras_tokenize(text) == tokens


def test_training_and_prediction_normalise_alike(tmp_path):
    tree = write_imdb_tree(tmp_path, {"train/pos": ["I don\u2019t regret it", "great"], "train/neg": ["dull", "bad"],
                                      "test/pos": ["great"], "test/neg": ["bad"]})
    ds = load(tree, tmp_path, val_fraction=0.0)
    assert "don't" in ds.vocab.index and "\u2019" not in ds.vocab.index
    trained = [ds.train.sequence(i).tolist() for i in range(len(ds.train))]
    for text in ("I don't regret it", "I don\u2019t regret it", "I don\u00b4t regret it"):
        batch = data.encode_texts([text], ds.vocab, dataclasses.replace(ds.config, batching="bucket"))
        assert batch.ids[0].tolist() in trained


def test_the_cache_notices_a_change_of_normalisation(tmp_path, monkeypatch):
    tree = write_imdb_tree(tmp_path, {"train/pos": ["good"], "train/neg": ["bad"], "test/pos": ["good"],
                                      "test/neg": ["bad"]})
    assert load(tree, tmp_path, val_fraction=0.0).report["cache_hit"] is False
    assert load(tree, tmp_path, val_fraction=0.0).report["cache_hit"] is True
    monkeypatch.setattr(data.tokens, "NORMALIZATION", data.NORMALIZATION + ",something-else")
    assert load(tree, tmp_path, val_fraction=0.0).report["cache_hit"] is False


# -- the tokenizer travels with the vocabulary -------------------------------------------------------
KERAS_TRAIN = ["A good film, a good cast.", "Bad film!<br />Awful.", "good good story", "bad bad plot, bad film"]
KERAS_TEST = ["good plot twist", "a bad, bad ending"]


def write_keras_style_npz(folder: Path, with_word_index: bool) -> Path:
    """An npz made as Keras made imdb.npz: text_to_word_sequence tokens, ranks by training frequency."""
    from collections import Counter

    counts = Counter(t for text in KERAS_TRAIN for t in data.keras_tokenize(text))
    index = {w: r for r, w in enumerate(sorted(counts, key=lambda w: (-counts[w], w)), start=1)}
    for text in KERAS_TEST:
        for token in data.keras_tokenize(text):
            index.setdefault(token, len(index) + 1)
    path = folder / "imdb.npz"
    np.savez(path, x_train=ragged([[index[t] for t in data.keras_tokenize(x)] for x in KERAS_TRAIN]),
             y_train=np.array([1, 0, 1, 0]), x_test=ragged([[index[t] for t in data.keras_tokenize(x)]
                                                            for x in KERAS_TEST]), y_test=np.array([1, 0]))
    if with_word_index:
        (folder / "imdb_word_index.json").write_text(json.dumps(index))
    return path


def test_text_is_encoded_as_keras_npz_was_made(tmp_path):
    ds = load(write_keras_style_npz(tmp_path, True), tmp_path, val_fraction=0.0, split="random")
    assert ds.vocab.tokenizer == "keras"
    config = dataclasses.replace(ds.config, batching="bucket")
    for i, text in enumerate(KERAS_TEST):  # no <unk> for the punctuation Keras' data never held
        assert data.encode_texts([text], ds.vocab, config).ids[0].tolist() == ds.test.sequence(i).tolist()
    assert data.UNK not in data.encode_texts(["Bad film!<br />Awful."], ds.vocab, config).ids[0]


def test_text_is_refused_for_an_npz_without_its_word_index(tmp_path):
    ds = load(write_keras_style_npz(tmp_path, False), tmp_path, val_fraction=0.0, split="random")
    assert ds.vocab.tokenizer == "none"
    with pytest.raises(ZooError, match="imdb_word_index.json") as err:
        data.encode_texts(["good film"], ds.vocab, ds.config)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("words, tokenizer", [
    (["<pad>", "<start>", "<unk>", "the", "film"], "zoo"),
    (["<pad>", "<start>", "<unk>", "<unused>", "the", "film"], "keras"),
    (["<pad>", "<start>", "<unk>", "<unused>", "<4>", "<5>"], "none"),
])
def test_vocabularies_saved_before_the_tokenizer_was_recorded_get_theirs(words, tokenizer):
    assert data.Vocabulary.from_json(json.dumps({"words": words})).tokenizer == tokenizer
    vocab = data.Vocabulary(words, tokenizer=tokenizer)
    assert data.Vocabulary.from_json(vocab.to_json()) == vocab


# -- labelled tables (zoo evaluate --data F.tsv/.csv) ------------------------------------------------
@pytest.mark.parametrize("name, content, texts, labels", [
    ("byte-order mark", "\ufeff1\tgreat film\n0\tbad movie\n", ["great film", "bad movie"], [1, 0]),
    ("text starting with a quote", '1\t"Great" film\n0\tbad movie\n1\tgood\n', ['"Great" film', "bad movie", "good"],
     [1, 0, 1]),
    ("unbalanced quote", '1\t"Great film\n0\tbad" movie\n', ['"Great film', 'bad" movie'], [1, 0]),
    ("U+0085 and U+2028 inside a review", "1\tgreat\x85film\n0\tbad\u2028movie\n", ["great\x85film", "bad\u2028movie"],
     [1, 0]),
    ("CRLF line ends", "1\tgreat film\r\n0\tbad movie\r\n", ["great film", "bad movie"], [1, 0]),
    ("a header", "label\ttext\npos\tgreat\nneg\tbad\n", ["great", "bad"], [1, 0]),
    ("tabs in the text", "1\tgreat\tfilm\n", ["great\tfilm"], [1]),
])
def test_a_tsv_line_is_one_review_and_quotes_are_text(tmp_path, name, content, texts, labels):
    path = tmp_path / "mine.tsv"
    path.write_text(content, encoding="utf-8", newline="")
    got_texts, got_labels = data.read_labelled(path)
    assert got_texts == texts and got_labels.tolist() == labels


@pytest.mark.parametrize("content, texts", [
    ('1,"great, fun"\n0,"she said ""dull"""\n', ["great, fun", 'she said "dull"']),
    ('1,"great" film\n0,bad, really\n', ['"great" film', "bad, really"]),
])
def test_a_csv_text_is_unquoted_only_when_it_is_one_quoted_field(tmp_path, content, texts):
    path = tmp_path / "mine.csv"
    path.write_text(content, encoding="utf-8")
    assert data.read_labelled(path)[0] == texts


@pytest.mark.parametrize("content, message", [
    ("1\tgreat\n0\t<br /><br />\n", "mine.tsv:2: the review is empty"),
    ("1\tgreat\n0\t   \n", "mine.tsv:2: the review is empty"),
    ("2\tgreat\n0\tbad\n", "mine.tsv:1: label '2'"),  # not a header: it was silently dropped
    ("1\tgreat\nmaybe\tok\n", "mine.tsv:2: label 'maybe'"),
    ("1 great\n", "mine.tsv:1: label '1 great'"),
])
def test_bad_tsv_rows_name_their_line(tmp_path, content, message):
    path = tmp_path / "mine.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ZooError, match=re.escape(message)):
        data.read_labelled(path)


# -- zoo predict and zoo evaluate on a saved run -----------------------------------------------------
VOCAB = ["<pad>", "<start>", "<unk>", "i", "don't", "think", "it", "was", "a", "good", "movie", "great", "film",
         "bad", "really", ".", '"', "fun", ","]


@pytest.fixture(scope="module")
def saved_run(registry, tmp_path_factory):
    """A tiny untrained GRU saved with a handmade vocabulary: every word moves its score."""
    import tensorflow as tf

    from zoo_core.model import Classifier
    from zoo_core.runs import save_run
    from zoo_core.training import TrainResult

    folder = tmp_path_factory.mktemp("saved") / "run"
    spec = ModelSpec("embedding", "gru", "mean-states", "sigmoid1", params={"cell": {"units": 4}, "encoder": {"dim": 4}})
    run = RunSpec(spec, data=DataConfig(maxlen=20, batching="bucket"))
    tf.random.set_seed(3)
    model = Classifier(run.model, registry, len(VOCAB))
    scores = {"accuracy": 0.5, "loss": 0.7, "auc": 0.5}
    result = TrainResult(run=run, params=model.count_params(), history=[], best_epoch=1, val=scores, test=scores,
                         wall_time=1.0, tokens_per_sec=1.0, status="completed")
    return save_run(folder, model, data.Vocabulary(VOCAB), run, result)


def predict_json(run_dir, *args) -> list[dict]:
    return json.loads(zoo("predict", run_dir, *args, "--format", "json").stdout)


TYPOGRAPHIC = [  # (typed, plain): each pair must score the same
    ("I don\u2019t think it was a good movie.", "I don't think it was a good movie."),
    ("\u201cgreat\u201d film", '"great" film'),
    ("I don\x92t think so\x85 really", "I don't think so... really"),
]


def test_typographic_text_scores_as_its_ascii_form(saved_run):
    rows = predict_json(saved_run, *[text for pair in TYPOGRAPHIC for text in pair])
    assert [r["p_positive"] for r in rows[0::2]] == [r["p_positive"] for r in rows[1::2]]


@pytest.mark.parametrize("text", ["", "   ", "<br /><br />", "\t", "..."])
def test_an_empty_review_on_the_command_line_is_refused(saved_run, text):
    result = zoo("predict", saved_run, "good film", text, expect=2)
    assert result.output.startswith("Error: review 2 on the command line is empty")
    assert result.output.count("\n") == 1


# (name, file content, the reviews read, which of them are empty)
REVIEW_FILES = [
    ("U+0085 inside a review", "great film\x85 really\nbad movie\n", ["great film\x85 really", "bad movie"], []),
    ("U+2028 and a form feed inside", "great\u2028film\nbad\x0cmovie\n", ["great\u2028film", "bad\x0cmovie"], []),
    ("a blank line keeps its row", "great film\n\nbad movie\n", ["great film", "", "bad movie"], [1]),
    ("a line of only line breaks", "great\n<br /><br />\nbad\n", ["great", "<br /><br />", "bad"], [1]),
    ("CRLF and a missing last newline", "great film\r\nbad movie", ["great film", "bad movie"], []),
    ("a quote opens no multi-line text", '"great film\nbad" movie\n', ['"great film', 'bad" movie'], []),
    ("trailing blank lines", "great\nbad\n\n\n", ["great", "bad"], []),
    ("a byte-order mark", "\ufeffgreat\nbad\n", ["great", "bad"], []),
]


@pytest.mark.parametrize("name, content, reviews, empty", REVIEW_FILES, ids=[row[0] for row in REVIEW_FILES])
def test_one_line_of_a_review_file_is_one_review(tmp_path, name, content, reviews, empty):
    from zoo_core.runs import read_reviews

    path = tmp_path / "reviews.txt"
    path.write_text(content, encoding="utf-8", newline="")
    got = read_reviews(path)
    assert got == reviews and [i for i, text in enumerate(got) if data.is_blank(text)] == empty


def test_predict_file_rows_stay_aligned_with_the_input_lines(saved_run, tmp_path):
    lines = ["great film\x85 really", "", "bad\u2028movie", "<br /><br />", '"great film', 'bad" movie', "fun"]
    path = tmp_path / "reviews.txt"
    path.write_text("\r\n".join(lines) + "\n", encoding="utf-8", newline="")
    rows = predict_json(saved_run, "--file", path)
    assert [r["review"] for r in rows] == lines
    assert [r["label"] == "empty" and r["p_positive"] is None for r in rows] == [
        False, True, False, True, False, False, False]
    alone = predict_json(saved_run, *[line for line in lines if not data.is_blank(line)])
    assert [r["p_positive"] for r in rows if r["label"] != "empty"] == [r["p_positive"] for r in alone]


def test_evaluate_reads_every_line_as_one_review(saved_run, tmp_path):
    path = tmp_path / "mine.tsv"
    path.write_text('\ufeff1\tgreat film\n0\t"bad movie\n1\tgood\x85fun\n0\tbad" film\n', encoding="utf-8")
    scored = json.loads(zoo("evaluate", saved_run, "--data", path, "--format", "json").stdout)[0]
    assert scored["reviews"] == 4


def test_a_run_trained_on_an_npz_without_word_index_refuses_text(saved_run, tmp_path):
    import shutil

    run_dir = Path(shutil.copytree(saved_run, tmp_path / "npz-run"))
    words = ["<pad>", "<start>", "<unk>", "<unused>"] + [f"<{i}>" for i in range(4, len(VOCAB))]
    data.Vocabulary(words, tokenizer="none").save(run_dir / "vocab.json")
    # As an npz run saves it: run.json's checksum is of this vocabulary (else the load refuses a changed file).
    meta = json.loads((run_dir / "run.json").read_text())
    if "checksums" in meta:
        meta["checksums"]["vocab.json"] = runs.sha256_of(run_dir / "vocab.json")
        (run_dir / "run.json").write_text(json.dumps(meta))
    result = zoo("predict", run_dir, "A good film.", expect=2)
    assert result.output.count("\n") == 1 and "imdb_word_index.json" in result.output


# -- missing data ------------------------------------------------------------------------------------
def registry_without_data(tmp_path: Path) -> Path:
    """The checkout's registry.toml with a search path that finds nothing."""
    text = (CHECKOUT / "registry.toml").read_text(encoding="utf-8")
    text = re.sub(r"search_path = \[[^\]]*\]", 'search_path = ["nowhere/aclImdb_v1.tar.gz"]', text)
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [
    ["train", "elman-last", "--epochs", "1"],
    ["rank", "elman-last", "--epochs", "1"],
    ["data", "stats"],
    ["data", "info"],
])
def test_missing_data_is_found_before_any_run_and_suggests_what_exists(tmp_path, command):
    registry_file = registry_without_data(tmp_path)
    db = tmp_path / "results.sqlite"
    extra = ["--results", db] if command[0] == "rank" else []
    result = zoo("--registry", registry_file, *command, *extra, expect=2)
    assert result.output.count("\n") == 1 and result.output.startswith("Error: no IMDB data found")
    assert "`zoo data download`" in result.output and "--download" not in result.output
    if db.exists():
        assert ResultsDB(db).runs() == []


def test_rank_with_a_missing_data_path_leaves_no_failed_run(tmp_path):
    db = tmp_path / "results.sqlite"
    result = zoo("rank", "elman-last", "--epochs", "1", "--data", tmp_path / "gone.tar.gz", "--results", db, expect=2)
    assert result.output.count("\n") == 1 and "gone.tar.gz" in result.output
    assert not db.exists() or ResultsDB(db).runs() == []
