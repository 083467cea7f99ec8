"""``zoo data ...`` on a tiny archive the tests make."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.imdb_fixtures import write_imdb_tree
from zoo_core import data
from zoo_core.cli import cli
from zoo_core.config import DataConfig
from zoo_core.settings import load_settings


def zoo(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def reference(tiny_imdb_archive):
    """What the library gives for the default settings with maxlen 20."""
    return data.load_dataset(DataConfig(source=str(tiny_imdb_archive), maxlen=20), load_settings(), progress=False)


def test_stats_reports_lengths_oov_truncation_and_padding_efficiency(tiny_imdb_archive, reference):
    result = zoo("data", "stats", "--data", str(tiny_imdb_archive), "--maxlen", "20", "--batch-size", "8",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    tables = json.loads(result.stdout)
    lengths, cuts, efficiency = list(tables.values())[1:]
    test_row = lengths[2]
    assert test_row["split"] == "test" and test_row["reviews"] == len(reference.test)
    assert test_row["max"] == int(reference.test.raw_lengths.max())
    assert test_row["p50"] == int(np.percentile(reference.test.raw_lengths, 50, method="higher"))
    train_cut = cuts[0]
    assert train_cut["tokens lost"] == f"{reference.report['tokens_lost']['train']:,}"
    assert train_cut["OOV rate"] == f"{100 * reference.report['oov_rate']['train']:.2f}%"
    too_long = int(np.sum(reference.train.raw_lengths > 20))
    assert train_cut["drop: reviews affected"] == f"{too_long:,} dropped"
    maxlen_efficiency = reference.test.num_tokens() / (len(reference.test) * 20)
    assert efficiency[2]["pad to maxlen 20"] == f"{100 * maxlen_efficiency:.1f}%"
    assert set(efficiency[0]) == {"split", "pad to global max (no cut)", "pad to maxlen 20",
                                  "pad per random batch", "bucketing"}


def test_stats_shows_progress_on_stderr_the_first_time_only(tiny_imdb_archive):
    first = zoo("data", "stats", "--data", str(tiny_imdb_archive))
    assert first.exit_code == 0 and "tokenising" in first.stderr and "tokenising" not in first.stdout
    assert "review length" in first.stdout and "padding efficiency" in first.stdout
    again = zoo("data", "stats", "--data", str(tiny_imdb_archive))
    assert "tokenising" not in again.stderr and "(cache)" in again.stdout


def test_info_lists_where_it_looked_and_the_cache(tiny_imdb_archive, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(tiny_imdb_archive))
    result = zoo("data", "info", "--format", "json")
    assert result.exit_code == 0, result.output
    tables = json.loads(result.stdout)
    assert tables["looked in"] == [{"path": str(tiny_imdb_archive), "from": "ZOO_DATA", "exists": "yes"}]
    values = {row["what"]: row["value"] for row in tables["data"]}
    assert values["source"] == str(tiny_imdb_archive) and values["kind"] == "archive"
    assert values["cache file"].split(" (")[0].endswith(".npz")


def test_missing_data_is_one_error_line_with_exit_status_2(tmp_path):
    result = zoo("data", "stats", "--data", str(tmp_path / "absent.tar.gz"))
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "absent.tar.gz" in result.output


def test_a_missing_source_names_where_its_path_came_from(tiny_imdb_archive, tmp_path, monkeypatch):
    absent = str(tmp_path / "absent.tar.gz")
    monkeypatch.setenv("ZOO_DATA", absent)
    assert f"Error: no IMDB data at {absent} (from ZOO_DATA)" in zoo("data", "info").output
    # The same path given with --data is --data's, though $ZOO_DATA holds it too.
    assert f"no IMDB data at {absent} (from --data)" in zoo("data", "info", "--data", absent).output
    found = zoo("data", "info", "--data", str(tiny_imdb_archive), "--format", "json")  # --data wins
    assert json.loads(found.stdout)["looked in"] == [{"path": str(tiny_imdb_archive), "from": "--data", "exists": "yes"}]
    monkeypatch.delenv("ZOO_DATA")
    set_elsewhere = zoo("train", "--set", f"data.source={absent}")
    assert set_elsewhere.exit_code == 2 and f"no IMDB data at {absent} (from data.source)" in set_elsewhere.output
    registry = tmp_path / "registry.toml"
    registry.write_text(f'[data]\nsearch_path = ["{tmp_path / "nowhere"}"]\n')
    searched = zoo("--registry", str(registry), "data", "info")
    assert searched.exit_code == 2 and f"looked in: {tmp_path / 'nowhere'};" in searched.output


def test_a_warning_is_printed_once_on_stderr(tmp_path):
    texts = {k: [f"word{i} film" for i in range(10)] for k in ("train/pos", "train/neg", "test/pos", "test/neg")}
    tree = write_imdb_tree(tmp_path, texts, movies=None)  # no urls files: the movie split falls back to random
    for command in ("info", "stats"):
        result = zoo("data", command, "--data", str(tree), "--format", "json")
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if "random, not disjoint by movie" in line]
        assert len(warnings) == 1 and warnings[0].startswith("warning: no movie ids in the folder source")
        assert "random, not disjoint" not in result.stdout


def test_vocab_export_round_trips(tiny_imdb_archive, reference, tmp_path):
    out_json, out_tsv = tmp_path / "index.json", tmp_path / "vocab.tsv"
    assert zoo("data", "vocab", "--data", str(tiny_imdb_archive), "--output", str(out_json)).exit_code == 0
    assert json.loads(out_json.read_text()) == reference.vocab.word_index()
    assert zoo("data", "vocab", "--data", str(tiny_imdb_archive), "--output", str(out_tsv)).exit_code == 0
    lines = [line.split("\t") for line in out_tsv.read_text().splitlines()]
    assert [w for _, w, _ in lines] == reference.vocab.words
    assert [int(c) for *_, c in lines] == reference.vocab.counts
    shown = zoo("data", "vocab", "--data", str(tiny_imdb_archive), "--top", "5", "--format", "json")
    assert [row["word"] for row in json.loads(shown.stdout)] == reference.vocab.words[:5]


def test_decode_ids_and_reviews(tiny_imdb_archive, reference, tmp_path):
    ids = [int(i) for i in reference.test.sequence(0)]
    result = zoo("data", "decode", "--data", str(tiny_imdb_archive), "--maxlen", "20", *map(str, ids))
    assert result.stdout.strip() == reference.vocab.decode(ids)
    shown = zoo("data", "decode", "--data", str(tiny_imdb_archive), "--maxlen", "20", "--review", "test:0",
                "--format", "json")
    row = json.loads(shown.stdout)[0]
    assert row["text"] == reference.vocab.decode(ids) and row["ids"] == " ".join(map(str, ids))
    reference.vocab.save(tmp_path / "vocab.json")
    offline = zoo("data", "decode", "--vocab", str(tmp_path / "vocab.json"), *map(str, ids))
    assert offline.stdout.strip() == reference.vocab.decode(ids)
    too_far = zoo("data", "decode", "--data", str(tiny_imdb_archive), "--review", "999")
    assert too_far.exit_code == 2 and "999" in too_far.output
    bad_ref = zoo("data", "decode", "--data", str(tiny_imdb_archive), "--review", "dev:1")
    assert bad_ref.exit_code == 2 and "[SPLIT:]N" in bad_ref.output


def _key_values(block: str) -> dict[str, str]:
    """A key/value block (keys left, values wrapped under each other) read back: continuation lines joined."""
    values: dict[str, list[str]] = {}
    key = None
    for line in block.splitlines():
        if not line[:1].isspace():
            key = line[:17].strip()
            values[key] = []
        values[key].append(line[17:].strip())
    return {k: " ".join(v) for k, v in values.items()}


def test_decode_shows_each_review_as_key_value_wrapped_to_the_terminal(tiny_imdb_archive):
    full = data.load_dataset(DataConfig(source=str(tiny_imdb_archive)), load_settings(), progress=False)
    longest = sorted(range(len(full.test)), key=lambda i: -len(full.test.sequence(i)))[:2]
    result = CliRunner(env={"COLUMNS": "100"}).invoke(
        cli, ["data", "decode", "--data", str(tiny_imdb_archive)] + [f"--review=test:{i}" for i in longest])
    assert result.exit_code == 0, result.output
    blocks = result.stdout.strip().split("\n\n")
    assert len(blocks) == 2
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    for i, block in zip(longest, blocks):
        ids = [int(x) for x in full.test.sequence(i)]
        text = full.vocab.decode(ids)
        assert len(text) > 100 - 17  # too long for one line: it must wrap
        fields = _key_values(block)
        assert list(fields) == ["split", "index", "file id", "label", "tokens kept/all", "text", "ids"]
        assert fields["split"] == "test" and fields["index"] == str(i)
        assert fields["text"] == text  # wrapped at spaces only: nothing lost, no word split
        assert fields["ids"] == " ".join(map(str, ids))  # no id split
        assert sum(1 for line in block.splitlines() if line.startswith(" ")) >= 1
    # Piped (no $COLUMNS, no terminal): one line per field, every value whole.
    piped = zoo("data", "decode", "--data", str(tiny_imdb_archive), f"--review=test:{longest[0]}")
    lines = piped.stdout.strip().splitlines()
    assert len(lines) == 7 and lines[5].split(None, 1)[1] == full.vocab.decode(full.test.sequence(longest[0]))
    # Ids on the command line: the decoded text wraps to the terminal too.
    ids = [str(x) for x in full.test.sequence(longest[0])]
    narrow = CliRunner(env={"COLUMNS": "40"}).invoke(cli, ["data", "decode", "--data", str(tiny_imdb_archive), *ids])
    assert max(map(len, narrow.stdout.splitlines())) <= 40 and " ".join(narrow.stdout.split()) == \
        full.vocab.decode(full.test.sequence(longest[0]))


def test_download_command_verifies_what_it_fetches(tiny_imdb_archive, tmp_path):
    sha = hashlib.sha256(tiny_imdb_archive.read_bytes()).hexdigest()
    dest = tmp_path / "got.tar.gz"
    ok = zoo("data", "download", "--url", tiny_imdb_archive.as_uri(), "--sha256", sha, "--dest", str(dest))
    assert ok.exit_code == 0 and ok.stdout.strip() == str(dest) and dest.read_bytes() == tiny_imdb_archive.read_bytes()
    bad = zoo("data", "download", "--url", tiny_imdb_archive.as_uri(), "--sha256", "0" * 64,
              "--dest", str(tmp_path / "bad.tar.gz"))
    assert bad.exit_code == 2 and "sha256" in bad.output and not (tmp_path / "bad.tar.gz").exists()
    unverified = zoo("data", "download", "--url", tiny_imdb_archive.as_uri())
    assert unverified.exit_code == 2 and "--sha256" in unverified.output
