"""Issue 16: ``zoo ensemble RUN...`` averages recorded runs' P(positive), scores it and records it as a run.

One module-scoped scratch database holds four tiny ``zoo train`` runs on one tiny archive: ``a`` and ``b``
(elman-last, seeds 0 and 1, one setup), ``c`` (gru-mean at another maxlen: another setup, the same reviews)
and ``other`` (elman-last on fewer reviews: another test set), then the ensemble of ``a``, ``b`` and ``c``.
Tests that write work on a copy of it. The ensemble's scores are checked against a NumPy recomputation
from its members' own probabilities, computed here without the ensemble's code.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import zoo
from tests.imdb_fixtures import make_imdb_archive
from tests.test_results import FakeResult, make_run
from tests.isolation import home_env
from zoo_core.leaderboard import setup_key
from zoo_core.results import ResultsDB

# Tiny models; 80 train and 80 test reviews, a quarter of train held out (both classes in validation).
TINY = ["--epochs", "1", "--set", "cell.units=4", "--set", "encoder.dim=4", "--set", "data.val_fraction=0.25", "-q"]

# The ``runs`` table as schema 3 created it, before ``members_json`` (printed by zoo_core.results._SCHEMA
# at commit a471446): an older results file must still load, and migrate when written.
SCHEMA_3 = """
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    key             TEXT NOT NULL,  -- RunSpec.key(): model + data + train + seed
    group_key       TEXT NOT NULL,  -- the same without the seed: runs averaged together
    seed            INTEGER NOT NULL,
    label           TEXT NOT NULL,  -- the model's name, or its combination
    encoder         TEXT NOT NULL,
    cell            TEXT NOT NULL,
    aggregator      TEXT NOT NULL,
    head            TEXT NOT NULL,
    spec_json       TEXT NOT NULL,  -- the full RunSpec: rebuilds the run exactly
    status          TEXT NOT NULL,
    train_status    TEXT NOT NULL DEFAULT '',  -- completed | early-stopped | nan | interrupted
    message         TEXT NOT NULL DEFAULT '',
    val_accuracy    REAL,
    val_loss        REAL,
    val_auc         REAL,
    test_accuracy   REAL,
    test_loss       REAL,
    test_auc        REAL,
    best_epoch      INTEGER,
    epochs_run      INTEGER,
    params          INTEGER,
    wall_time       REAL,
    tokens_per_sec  REAL,
    curves_json     TEXT NOT NULL DEFAULT '[]',
    data_checksum   TEXT NOT NULL DEFAULT '',
    run_dir         TEXT NOT NULL DEFAULT '',
    tf_version      TEXT NOT NULL DEFAULT '',
    project_version TEXT NOT NULL DEFAULT '',
    git_commit      TEXT NOT NULL DEFAULT '',
    host            TEXT NOT NULL DEFAULT '',
    pid             INTEGER,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    proc_start      TEXT NOT NULL DEFAULT '',  -- boot id and start time of process pid (schema 2)
    pruned_at       TEXT  -- when `zoo runs --prune` deleted its weights (schema 3)
);
CREATE INDEX runs_by_key ON runs (key, status);
CREATE INDEX runs_by_group ON runs (group_key, status);
CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL);
INSERT INTO schema_version VALUES (3, '2025-01-01T00:00:00+00:00');
"""


def recorded_id(result) -> str:
    """The run id from a ``recorded as [...] run ID in DB ...`` line on stderr."""
    line = next(line for line in result.stderr.splitlines() if line.startswith("recorded as "))
    return line.split(" run ", 1)[1].split()[0]


def one_error_line(result, *expected: str) -> str:
    """Exit 2, no traceback, one ``Error:`` line holding each of ``expected``."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and sum(l.startswith("Error:") for l in lines) == 1, result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in lines[-1], lines[-1]
    return lines[-1]


def json_rows(*args) -> list[dict]:
    return json.loads(zoo(*args, "--format", "json").stdout)


def copy_db(scratch, folder: Path) -> Path:
    """A copy of the scratch database (its WAL folded in); the runs' recorded folders stay where they are."""
    with contextlib.closing(sqlite3.connect(scratch["db"])) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(scratch["db"], folder / "results.sqlite")
    return folder / "results.sqlite"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    home = tmp_path_factory.mktemp("ensemble")
    archive = make_imdb_archive(home / "data" / "aclImdb_v1.tar.gz", n_per_class=40)
    db = home / "scratch" / "results.sqlite"
    common = ["--data", archive, "--results", db, *TINY]
    with home_env(home):
        # Trained first, so the latest elman-last setup is a's and b's.
        other = recorded_id(zoo("train", "elman-last", "--limit", 60, "--maxlen", 20, *common))
        a = recorded_id(zoo("train", "elman-last", "--limit", 80, "--maxlen", 20, *common))
        b = recorded_id(zoo("train", "elman-last", "--limit", 80, "--maxlen", 20, "--seed", 1, *common))
        c = recorded_id(zoo("train", "gru-mean", "--limit", 80, "--maxlen", 30, *common))
        made = zoo("ensemble", a, b[:6], c, "--data", archive, "--results", db)
    return {"home": home, "archive": archive, "db": db, "a": a, "b": b, "c": c, "other": other,
            "made": made, "ensemble": recorded_id(made)}


# -- the scores --------------------------------------------------------------------------------------
def _numpy_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(a positive scores above a negative), ties half: every pair compared (tiny splits)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def _members_probabilities(scratch, registry):
    """Each member's own P(positive) on validation and test, from its saved weights and its own data."""
    from zoo_core.data import load_dataset
    from zoo_core.ranking import DATA_SEED
    from zoo_core.runs import load_run
    from zoo_core.settings import load_settings
    from zoo_core.training import predict

    db = ResultsDB(scratch["db"], readonly=True)
    out = []
    for run_id in (scratch["a"], scratch["b"], scratch["c"]):
        model, _, run = load_run(db.get(run_id).run_dir, registry)
        data = load_dataset(run.data, load_settings(), seed=DATA_SEED)
        out.append({split: (getattr(data, split).labels, predict(model, getattr(data, split), run).astype(np.float64))
                    for split in ("val", "test")})
    return out


def test_the_ensembles_scores_are_the_mean_probability_scored_in_numpy(scratch, registry):
    members = _members_probabilities(scratch, registry)
    record = ResultsDB(scratch["db"], readonly=True).get(scratch["ensemble"])
    for split in ("val", "test"):
        labels = members[0][split][0]
        assert all(np.array_equal(m[split][0], labels) for m in members)  # the same reviews, in the same order
        assert len(set(labels.tolist())) == 2
        p = np.mean([m[split][1] for m in members], axis=0)
        clipped = np.clip(p, 1e-7, 1 - 1e-7)
        expected = {"accuracy": float(((p > 0.5) == (labels == 1)).mean()),
                    "auc": _numpy_auc(labels, p),
                    "loss": float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))}
        assert {m: record.metric(split, m) for m in expected} == pytest.approx(expected, abs=1e-6)
    # Each member scored by the same rules gives the accuracy and AUC its training recorded.
    rows = {r["run"]: r for r in json.loads(zoo("ensemble", scratch["a"], scratch["b"], "--results",
                                                 copy_db(scratch, scratch["home"] / "again"), "-q",
                                                 "--format", "json").stdout)}
    for run_id in (scratch["a"], scratch["b"]):
        trained = ResultsDB(scratch["db"], readonly=True).get(run_id)
        assert rows[run_id]["test_accuracy"] == pytest.approx(trained.test_accuracy, abs=1e-6)
        assert rows[run_id]["test_auc"] == pytest.approx(trained.test_auc, abs=1e-6)


def test_zoo_ensemble_prints_members_and_ensemble_side_by_side_and_says_where_it_went(scratch):
    made = scratch["made"]
    table = made.stdout.splitlines()
    assert table[0].split()[:4] == ["run", "model", "seed", "val_accuracy"]
    for run_id in (scratch["a"], scratch["b"], scratch["c"], scratch["ensemble"]):
        assert any(line.startswith(run_id) for line in table), made.stdout
    assert "ensemble(elman-last x2 + gru-mean)" in made.stdout
    said = [line for line in made.stderr.splitlines() if line.startswith("recorded as")][0]
    assert str(scratch["db"]) in said and "3 members" in said and "different setups" in said
    assert f"zoo predict {scratch['ensemble']}" in said
    progress = [line for line in made.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == 3 and all(line.startswith(f"[{i}/3] run {scratch[k]} (")
                                      for i, (line, k) in enumerate(zip(progress, "abc"), start=1)), progress


# -- the recorded row --------------------------------------------------------------------------------
def test_the_ensemble_is_its_own_row_in_zoo_runs_and_the_leaderboard(scratch):
    runs = {r["id"]: r for r in json_rows("runs", "--results", scratch["db"])}
    ensemble = runs[scratch["ensemble"]]
    assert ensemble["status"] == "finished" and ensemble["model"] == "ensemble(elman-last x2 + gru-mean)"
    assert ensemble["members"] == " ".join((scratch["a"], scratch["b"], scratch["c"]))
    assert ensemble["params"] == sum(runs[i]["params"] for i in (scratch["a"], scratch["b"], scratch["c"]))
    assert runs[scratch["a"]]["members"] == ""
    text = zoo("runs", scratch["ensemble"], "--results", scratch["db"]).stdout
    assert "finished (ensemble of 3)" in text

    board = json_rows("leaderboard", "--setup", "all", "--results", scratch["db"])
    by_model = {}
    for row in board:
        by_model.setdefault(row["model"], []).append(row)
    [row] = by_model["ensemble(elman-last x2 + gru-mean)"]
    [elman] = [r for r in by_model["elman-last"] if r["seeds"] == 2]
    assert row["best_run"] == scratch["ensemble"] and row["seeds"] == 1
    db = ResultsDB(scratch["db"], readonly=True)
    setup = setup_key(db.get(scratch["a"]))
    assert setup_key(db.get(scratch["ensemble"])) == setup  # ranked in its first member's setup, beside it
    assert row["setup"] == elman["setup"]
    assert row["test_accuracy_mean"] == pytest.approx(runs[scratch["ensemble"]]["test_accuracy"], abs=1e-4)
    # The members' own row is untouched: the mean of a's and b's test accuracy.
    assert elman["test_accuracy_mean"] == pytest.approx(
        (runs[scratch["a"]]["test_accuracy"] + runs[scratch["b"]]["test_accuracy"]) / 2, abs=1e-4)  # 4 digits
    text = zoo("leaderboard", "--setup", setup, "--results", scratch["db"]).stdout
    assert "ensemble rows" in text and "(ensemble)" in text  # its one value is no seed's
    # No component option stands for an ensemble in the marginal tables.
    cells = {r["cell"] for r in json_rows("leaderboard", "--by", "cell", "--setup", setup,
                                          "--results", scratch["db"])}
    assert cells == {"tanh"}


def test_predict_and_evaluate_on_the_ensemble_average_its_members(scratch):
    texts = ["A wonderful, moving film.", "Dull and far too long.", "great great superb"]
    db = ["--results", scratch["db"]]

    def predict(run_id):
        return zoo("predict", run_id, *texts, *db, "--format", "json")

    members = [[r["p_positive"] for r in json.loads(predict(scratch[k]).stdout)] for k in ("a", "b", "c")]
    shown = predict(scratch["ensemble"])
    # Printed to 4 digits, as each member's.
    assert [r["p_positive"] for r in json.loads(shown.stdout)] == pytest.approx(np.mean(members, axis=0), abs=1e-4)
    assert shown.stderr.startswith(f"ensemble {scratch['ensemble']}: ensemble(elman-last x2 + gru-mean)")

    # `zoo evaluate` on the archive's test split: the same 80 reviews, in the archive's order, as recorded.
    [scored] = json_rows("evaluate", scratch["ensemble"], *db)
    record = ResultsDB(scratch["db"], readonly=True).get(scratch["ensemble"])
    assert scored["reviews"] == 80
    assert [scored[m] for m in ("accuracy", "loss", "auc")] == pytest.approx(
        [record.test_accuracy, record.test_loss, record.test_auc], abs=1e-4)


def test_the_notebook_api_makes_and_loads_ensembles(scratch):
    from zoo_core import api

    path = copy_db(scratch, scratch["home"] / "api")
    made = api.ensemble([scratch["a"], scratch["c"]], name="elman+gru", data=scratch["archive"], results=path,
                        progress=False)
    assert isinstance(made, api.EnsembleRun) and made.label == "elman+gru" and len(made.members) == 2
    assert made.id in repr(made) and made.test == pytest.approx(
        {m: ResultsDB(path).get(made.id).metric("test", m) for m in ("accuracy", "auc", "loss")})
    loaded = api.load(made.id, results=path)
    assert isinstance(loaded, api.EnsembleRun) and [m.id for m in loaded.members] == [scratch["a"], scratch["c"]]
    texts = ["A wonderful, moving film.", "Dull and far too long."]
    assert loaded.predict(texts) == pytest.approx(np.mean([m.predict(texts) for m in loaded.members], axis=0),
                                                  abs=1e-7)
    assert [r.id for r in api.runs("elman+gru", results=path)] == [made.id]


def test_model_makes_an_ensemble_of_every_seed_of_one_model(scratch, tmp_path):
    path = copy_db(scratch, tmp_path)
    made = zoo("ensemble", "--model", "elman-last", "--results", path, "-q")
    assert "ensemble(elman-last x2)" in made.stdout
    assert {line.split()[0] for line in made.stdout.splitlines()[2:4]} == {scratch["a"], scratch["b"]}
    record = ResultsDB(path).get(recorded_id(made))
    assert record.members == [scratch["a"], scratch["b"]]
    assert record.spec.model.params == ResultsDB(path).get(scratch["a"]).spec.model.params  # one model: its own


def test_pruning_keeps_every_member_of_an_ensemble(scratch, tmp_path):
    """Without the ensemble, b (the other elman-last seed) would be pruned; its weights stay, and predict works."""
    path = copy_db(scratch, tmp_path / "db")
    runs_dir = tmp_path / "runs"
    shutil.copytree(scratch["db"].parent / "runs", runs_dir)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE runs SET run_dir = replace(run_dir, ?, ?)", (str(scratch["db"].parent / "runs"),
                                                                          str(runs_dir)))
        conn.commit()
    zoo("runs", "--prune", "--yes", "--results", path, "--runs", runs_dir)
    left = {p.name for p in runs_dir.iterdir()}
    assert {scratch["a"], scratch["b"], scratch["c"]} <= left
    zoo("predict", scratch["ensemble"], "great", "--results", path, "--runs", runs_dir)


# -- bad input: one line, exit 2, nothing recorded ---------------------------------------------------------
def _spoiled(scratch, tmp_path) -> dict:
    """A copy of the database with a pruned, an interrupted, a running and a diverged run added."""
    path = copy_db(scratch, tmp_path / "spoiled")
    db = ResultsDB(path)
    db.mark_pruned(scratch["b"])
    interrupted = db.claim(make_run(cell="lstm"))
    db.mark(interrupted, "interrupted", "Ctrl-C")
    diverged = db.record(make_run(seed=7), FakeResult(status="nan"))
    return {"db": path, "interrupted": interrupted, "diverged": diverged}


BAD = [
    # (name, arguments after `zoo ensemble` ({key} from the fixtures), expected in the error line)
    ("one run", ["{a}"], "needs 2 or more runs, got only"),
    ("no run", [], "needs 2 or more runs, got none"),
    ("unknown id", ["{a}", "zzzz"], "unknown run 'zzzz'"),
    ("the same run twice", ["{a}", "{a6}"], "is given twice"),
    ("an empty id", ["{a}", " "], "a RUN is empty"),
    ("a pruned run", ["{a}", "{b}"], "weights were pruned"),
    ("an interrupted run", ["{a}", "{interrupted}"], "is interrupted, not finished"),
    ("a diverged run", ["{a}", "{diverged}"], "diverged"),
    ("an ensemble as a member", ["{ensemble}", "{a}"], "is an ensemble itself"),
    ("a different test set", ["{a}", "{other}"], "different reviews (limit 80 and 60)"),
    ("other data", ["{a}", "{c}", "--data", "{other_archive}"], "was trained on other data than"),
    ("missing data", ["{a}", "{c}", "--data", "{absent}"], "absent.tar.gz"),
    ("runs and --model", ["{a}", "--model", "elman-last"], "not both"),
    ("--model with one run", ["--model", "gru-mean"], "only 1 finished run"),
    ("--model unknown", ["--model", "no-such-model"], "no finished run of model 'no-such-model'"),
    ("--setup without --model", ["{a}", "{c}", "--setup", "abc"], "--setup goes with --model"),
    ("an empty --name", ["{a}", "{c}", "--name", " "], "--name is empty"),
]


@pytest.mark.parametrize("name, args, expected", BAD, ids=[case[0] for case in BAD])
def test_bad_input_is_one_line_and_records_nothing(name, args, expected, scratch, tmp_path):
    spoiled = _spoiled(scratch, tmp_path)
    other_archive = make_imdb_archive(tmp_path / "other" / "aclImdb_v1.tar.gz", n_per_class=40, seed=5) \
        if "{other_archive}" in args else None
    names = {**scratch, **spoiled, "a6": scratch["a"][:6], "other_archive": other_archive,
             "absent": tmp_path / "absent.tar.gz"}
    before = [r.id for r in ResultsDB(spoiled["db"], readonly=True).runs()]
    result = zoo("ensemble", *[a.format(**names) for a in args], "--results", spoiled["db"], expect=None)
    one_error_line(result, expected)
    assert [r.id for r in ResultsDB(spoiled["db"], readonly=True).runs()] == before


def test_commands_that_need_one_models_weights_refuse_an_ensemble_in_one_line(scratch):
    one_error_line(zoo("diagnose", "--run", scratch["ensemble"], "--results", scratch["db"], expect=None),
                   "is an ensemble of runs", "give one of its members")


# -- an older results file ------------------------------------------------------------------------------
def test_a_schema_3_file_lists_and_ranks_as_it_is_then_takes_an_ensemble(scratch, tmp_path):
    old = tmp_path / "old.sqlite"
    with contextlib.closing(sqlite3.connect(old)) as conn:
        conn.executescript(SCHEMA_3)
        columns = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
        assert "members_json" not in columns
        conn.execute("ATTACH DATABASE ? AS scratch", (str(scratch["db"]),))
        conn.execute(f"INSERT INTO runs SELECT {', '.join(columns)} FROM scratch.runs WHERE id IN (?, ?)",
                     (scratch["a"], scratch["b"]))
        conn.commit()
    listed = json_rows("runs", "--results", old)  # read as it is: a reader migrates nothing
    assert {r["id"]: r["members"] for r in listed} == {scratch["a"]: "", scratch["b"]: ""}
    assert ResultsDB(old, readonly=True).schema_version() == 3
    assert json_rows("leaderboard", "--results", old)[0]["seeds"] == 2

    made = zoo("ensemble", scratch["a"], scratch["b"], "--results", old, "-q")
    assert ResultsDB(old, readonly=True).schema_version() == 4
    ensemble = ResultsDB(old).get(recorded_id(made))
    assert ensemble.members == [scratch["a"], scratch["b"]]
    assert [r.members for r in ResultsDB(old).runs() if r.id != ensemble.id] == [[], []]
    assert {r["model"] for r in json_rows("leaderboard", "--results", old)} == {"elman-last",
                                                                               "ensemble(elman-last x2)"}
