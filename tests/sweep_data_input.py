"""Sweep: bad data sources and text input through real ``zoo`` processes; counts clean answers.

Run from the checkout (several minutes on 2 busy cores; the text part trains two tiny runs)::

    python -m tests.sweep_data_input                  # everything
    python -m tests.sweep_data_input sources text     # some parts: sources, missing, text

Every *bad* input must give exit status 2, one ``Error:`` line (a progress
bar's label may precede it), no traceback, nothing cached and no results row.
Every *good* input (tricky but valid text) must be answered correctly. Each
child runs under a 6 GiB address-space limit, so a source that asks for
terabytes fails fast instead of swapping. Not collected by pytest.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tests.bad_sources import BAD_SOURCES, npz, ragged
from tests.imdb_fixtures import make_imdb_archive

CHECKOUT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--limit", "40", "--maxlen", "20", "--set", "cell.units=4", "--set", "encoder.dim=4"]


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


def zoo(home: Path, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(home / "cache"), "XDG_DATA_HOME": str(home / "share"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name in ("ZOO_DATA", "ZOO_RESULTS", "ZOO_REGISTRY", "ZOO_PLUGINS"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "zoo_core.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, input=stdin, timeout=600, preexec_fn=limit_memory)


def clean_error(done: subprocess.CompletedProcess) -> str:
    """"" when ``done`` is one clean error; else what is wrong with it."""
    if "Traceback" in done.stderr or "Traceback" in done.stdout:
        return "traceback"
    if done.returncode != 2:
        return f"exit {done.returncode}"
    lines = done.stderr.splitlines()
    if not lines or not lines[-1].startswith("Error: "):
        return "no Error line"
    if any(not line.startswith("tokenising ") for line in lines[:-1]) or done.stdout.strip():
        return "more than one line"
    return ""


def leftovers(home: Path) -> list[str]:
    cache = home / "cache" / "rnn-zoo"
    return [p.name for p in cache.iterdir() if p.name != "checksums.json"] if cache.is_dir() else []


class Tally:
    def __init__(self, title: str):
        self.title, self.tried, self.ok, self.bad = title, 0, 0, []

    def add(self, name: str, problem: str) -> None:
        self.tried += 1
        if problem:
            self.bad.append(f"{name}: {problem}")
        else:
            self.ok += 1

    def report(self) -> None:
        print(f"{self.title}: {self.tried} tried, {self.ok} clean")
        for line in self.bad:
            print(f"    NOT CLEAN  {line}")


def sweep_sources(work: Path) -> Tally:
    tally = Tally("bad data sources (`zoo data info --data SOURCE`)")
    for i, (name, build, message) in enumerate(BAD_SOURCES):
        home = work / f"source-{i}"
        (home / "src").mkdir(parents=True)
        done = zoo(home, "data", "info", "--data", build(home / "src"))
        problem = clean_error(done) or ("" if message in done.stderr else f"message lacks {message!r}")
        problem = problem or (f"cached {leftovers(home)}" if leftovers(home) else "")
        tally.add(name, problem)
    return tally


def keras_like_npz(folder: Path) -> Path:
    """40 train and 20 test reviews of random word ranks; no word index beside it."""
    rng = np.random.default_rng(0)
    rows = lambda n: ragged([rng.integers(1, 30, rng.integers(3, 12)).tolist() for _ in range(n)])  # noqa: E731
    folder.mkdir(parents=True)
    return npz(x_train=rows(40), y_train=np.arange(40) % 2, x_test=rows(20), y_test=np.arange(20) % 2)(folder)


def sweep_text(work: Path) -> tuple[Tally, Tally]:
    bad, good = Tally("bad text input (predict/evaluate)"), Tally("tricky valid text input (predict/evaluate)")
    home = work / "text"
    archive = make_imdb_archive(work / "tiny" / "aclImdb_v1.tar.gz", n_per_class=20)
    run_dir, npz_run = home / "run", home / "npz-run"
    for data, target in ((archive, run_dir), (keras_like_npz(work / "npz"), npz_run)):
        done = zoo(home, "train", "elman-last", *TINY, "--data", data, "--save", target, "--quiet")
        if done.returncode != 0:
            raise SystemExit(f"could not train the sweep's run on {data}:\n{done.stderr[-2000:]}")

    def file(name: str, content: str) -> Path:
        path = home / name
        path.write_text(content, encoding="utf-8", newline="")
        return path

    for name, args in [
        ('predict ""', ["predict", run_dir, ""]),
        ('predict "   "', ["predict", run_dir, "   "]),
        ('predict "<br /><br />"', ["predict", run_dir, "<br /><br />"]),
        ('predict "..."', ["predict", run_dir, "fine", "..."]),
        ("predict text with a run trained on an npz without word index", ["predict", npz_run, "A good film."]),
        ("predict --file of blank lines only", ["predict", run_dir, "--file", file("blank.txt", "\n  \n<br />\n")]),
        ("predict --file binary", ["predict", run_dir, "--file", file("bin.txt", "\x00\x01PNG")]),
        ("evaluate a row with an empty review", ["evaluate", run_dir, "--data", file("e1.tsv", "1\tgood\n0\t<br />\n")]),
        ("evaluate label 2 on line 1", ["evaluate", run_dir, "--data", file("e2.tsv", "2\tgood\n0\tbad\n")]),
        ("evaluate an unknown label", ["evaluate", run_dir, "--data", file("e3.tsv", "1\tgood\nmaybe\tbad\n")]),
        ("evaluate a line without a tab", ["evaluate", run_dir, "--data", file("e4.tsv", "1\tgood\n0 bad\n")]),
        ("evaluate a .tsv of only a header", ["evaluate", run_dir, "--data", file("e5.tsv", "label\ttext\n")]),
    ]:
        bad.add(name, clean_error(zoo(home, *args)))

    def predicted(*args) -> list[dict]:
        done = zoo(home, "predict", run_dir, *args, "--format", "json")
        return json.loads(done.stdout) if done.returncode == 0 else [{"error": done.stderr.strip()[-200:]}]

    def evaluated(content: str) -> int | str:
        done = zoo(home, "evaluate", run_dir, "--data", file("mine.tsv", content), "--format", "json")
        return json.loads(done.stdout)[0]["reviews"] if done.returncode == 0 else done.stderr.strip()[-200:]

    curly = predicted("I don\u2019t think it was a good movie.", "I don't think it was a good movie.",
                      "\u201cwonderful\u201d", '"wonderful"', "so\x85 boring", "so... boring")
    same = len(curly) == 6 and all(curly[i].get("p_positive") == curly[i + 1].get("p_positive") for i in (0, 2, 4))
    good.add("typographic quotes, U+0085 score as ASCII", "" if same else f"scores differ: {curly}")
    lines = ["great film\x85 really", "", "bad\u2028movie", "<br /><br />", '"great film', 'bad" movie']
    rows = predicted("--file", file("r.txt", "\r\n".join(lines) + "\n"))
    aligned = [r.get("review") for r in rows] == lines and [r.get("label") == "empty" for r in rows] == [
        False, True, False, True, False, False]
    good.add("predict --file: one row per line, empty lines flagged", "" if aligned else f"got {rows}")
    for name, content, n in [("evaluate: UTF-8 byte-order mark", "\ufeff1\tgreat\n0\tbad\n", 2),
                             ("evaluate: text starting with a quote", '1\t"great film\n0\tbad\n1\tfun"\n', 3),
                             ("evaluate: U+0085 inside a review", "1\tgreat\x85film\n0\tbad\n", 2),
                             ("evaluate: a CSV-quoted text with a comma", None, 2)]:
        if content is None:
            done = zoo(home, "evaluate", run_dir, "--data", file("mine.csv", '1,"great, fun"\n0,bad\n'),
                       "--format", "json")
            got = json.loads(done.stdout)[0]["reviews"] if done.returncode == 0 else done.stderr.strip()
        else:
            got = evaluated(content)
        good.add(name, "" if got == n else f"{got} reviews, expected {n}")
    return bad, good


def sweep_missing_data(work: Path) -> Tally:
    tally = Tally("missing data (train, rank, data)")
    home = work / "missing"
    home.mkdir()
    text = (CHECKOUT / "registry.toml").read_text(encoding="utf-8")
    registry = home / "registry.toml"
    registry.write_text(re.sub(r"search_path = \[[^\]]*\]", 'search_path = ["nowhere.tar.gz"]', text))
    db = home / "results.sqlite"
    for name, args in [("train, nothing on the search path", ["--registry", registry, "train", "--epochs", "1"]),
                       ("rank, nothing on the search path", ["--registry", registry, "rank", "--results", db]),
                       ("data stats, nothing on the search path", ["--registry", registry, "data", "stats"]),
                       ("train --data missing", ["train", "--data", home / "gone.tar.gz"]),
                       ("rank --data missing", ["rank", "elman-last", "--data", home / "gone.tar.gz", "--results", db])]:
        done = zoo(home, *args)
        problem = clean_error(done) or ("suggests --download" if "--download" in done.stderr else "")
        if not problem and db.exists():
            with sqlite3.connect(db) as con:
                rows = con.execute("SELECT count(*) FROM runs").fetchone()[0]
            problem = f"{rows} run rows left behind" if rows else ""
        tally.add(name, problem)
    return tally


def main(parts: list[str]) -> None:
    parts = parts or ["sources", "missing", "text"]
    with tempfile.TemporaryDirectory(prefix="zoo-sweep-") as tmp:
        work = Path(tmp)
        tallies = ([sweep_sources(work)] if "sources" in parts else []) + (
            [sweep_missing_data(work)] if "missing" in parts else []) + (
            list(sweep_text(work)) if "text" in parts else [])
    print()
    for tally in tallies:
        tally.report()
    bad = [t for t in tallies if t.title.startswith(("bad", "missing"))]
    print(f"\nbad inputs: {sum(t.tried for t in bad)} tried, {sum(t.ok for t in bad)} gave one clean line "
          f"(exit 2, no traceback, nothing cached, no run row)")
    good = [t for t in tallies if not t.title.startswith(("bad", "missing"))]
    print(f"tricky valid inputs: {sum(t.tried for t in good)} tried, {sum(t.ok for t in good)} answered correctly")


if __name__ == "__main__":
    main(sys.argv[1:])
