"""``zoo report``: a static HTML site of a real results database, checked as files, as HTML and in a browser.

One module fixture ranks two tiny models with two seeds each, averages one of
them into an ensemble, trains a run of another setup and writes TensorBoard
gradient norms for one run, all through the real CLI and SQLite; the report
is built once from it and read back.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.cli_helpers import TINY_RANK, zoo
from tests.imdb_fixtures import make_imdb_tree
from tests.test_explain import assert_balanced

CHROMIUM = Path("/usr/bin/chromium")
ENSEMBLE = '<i>duo</i> & "co"'


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, tiny_imdb_archive):
    home = tmp_path_factory.mktemp("report")
    db = home / "results.sqlite"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_DATA_HOME", str(home / "share"))
        env.setenv("XDG_CACHE_HOME", str(home / "cache"))
        common = [*TINY_RANK, "--data", tiny_imdb_archive, "--results", db]
        zoo("rank", "elman-last", "gru-mean", "--seeds", "2", *common)
        # A name with markup in it: every page must show it as text.
        zoo("ensemble", "--model", "gru-mean", "--name", ENSEMBLE, "--results", db, "--data", tiny_imdb_archive)
        zoo("train", "gru-mean", *common, "--lr", "0.002")  # a second setup
        runs = json.loads(zoo("runs", "--results", db, "--format", "json").stdout)
        # Gradient norms as training writes them every 100 steps (a tiny run takes one step).
        from zoo_core.tensorboard import EventLogger, run_logdir

        first = runs[0]
        with EventLogger(run_logdir(home / "runs", first["model"], first["seed"], first["id"]), every_steps=1) as log:
            for step, norm in ((100, 0.5), (200, 0.25), (300, 0.125)):
                log.on_step(step, {"grad_norm": norm, "train_loss": 0.7})
        out = home / "report"
        result = zoo("report", "-o", out, "--results", db, "--data", tiny_imdb_archive, "--explain", "2")
    return {"home": home, "db": db, "out": out, "runs": runs, "data": tiny_imdb_archive, "stderr": result.stderr}


def pages(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


class Links(HTMLParser):
    """Every href and src of a page, and its element ids."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.refs.append(value)
            if name == "id":
                self.ids.add(value)


def links_of(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_every_run_has_a_page_and_the_index_links_them(recorded):
    out = recorded["out"]
    assert (out / "index.html").is_file() and (out / "style.css").is_file()
    index_refs = links_of(out / "index.html").refs
    for run in recorded["runs"]:
        assert (out / "runs" / f"{run['id']}.html").is_file()
        assert f"runs/{run['id']}.html" in index_refs
    assert f"wrote {out / 'index.html'}" in recorded["stderr"]
    manifest = (out / ".zoo-report").read_text(encoding="utf-8").split()
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert manifest == written


def test_every_local_link_and_image_resolves_and_nothing_comes_from_the_network(recorded):
    out = recorded["out"].resolve()
    checked = 0
    for page in pages(out):
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and "@import" not in text and "url(" not in text
        for ref in links_of(page).refs:
            assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", ref, re.I), f"{page.name}: {ref} is not a local file"
            path, _, fragment = ref.partition("#")
            target = (page.parent / path).resolve() if path else page
            assert target.is_file() and out in target.parents, f"{page.name}: {ref} resolves to no file"
            if fragment:
                assert fragment in links_of(target).ids, f"{page.name}: {ref}: no such anchor"
            checked += 1
    css = (out / "style.css").read_text(encoding="utf-8")
    assert "url(" not in css and "@import" not in css and "http" not in css
    assert checked > 50
    images = list(out.glob("img/*.png"))
    assert images and all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in images)


def test_pages_parse_with_balanced_tags(recorded):
    for page in pages(recorded["out"]):
        text = page.read_text(encoding="utf-8")
        assert text.startswith("<!DOCTYPE html>")
        assert_balanced(text)


class Tables(HTMLParser):
    """The tables of class ``cls``: ``{their attribute key: [{header: cell text}]}``."""

    def __init__(self, cls: str, key: str = "data-setup"):
        super().__init__()
        self.cls, self.key_attribute, self.tables, self.key = cls, key, {}, None
        self.headers: list[str] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("class") == self.cls:
            self.key, self.headers = attrs.get(self.key_attribute), []
            self.tables[self.key] = []
        elif self.key is not None and tag == "tr":
            self.row = []
        elif self.key is not None and tag in ("td", "th"):
            self.cell = []

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag):
        if self.key is None:
            return
        if tag in ("td", "th") and self.cell is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            if not self.headers:
                self.headers = self.row
            else:
                self.tables[self.key].append(dict(zip(self.headers, self.row)))
            self.row = None
        elif tag == "table":
            self.key = None


def first_number(text: str) -> float:
    return float(re.match(r"-?[\d.]+", text).group())


def test_the_leaderboards_are_zoo_leaderboard_s(recorded):
    machine = json.loads(zoo("leaderboard", "--setup", "all", "--format", "json", "--results", recorded["db"]).stdout)
    parser = Tables("leaderboard", key="data-settings")
    parser.feed((recorded["out"] / "index.html").read_text(encoding="utf-8"))
    shown = parser.tables
    # json's "setup" is each row's settings (its setup id column shares the name and is overwritten).
    assert sorted(shown) == sorted({row["setup"] for row in machine}) and len(shown) == 2
    for setup, rows in shown.items():
        expected = [row for row in machine if row["setup"] == setup]
        assert len(rows) == len(expected)
        for html_row, row in zip(rows, expected):
            assert int(html_row["rank"]) == row["rank"]
            assert html_row["model"] == row["model"]
            assert html_row["best_run"] == row["best_run"]
            assert int(html_row["seeds"]) == row["seeds"] and int(html_row["params"].replace(",", "")) == row["params"]
            assert first_number(html_row["time_s"]) == row["time_s"]
            assert first_number(html_row["test accuracy"]) == pytest.approx(row["test_accuracy_mean"], abs=5e-5)
            assert first_number(html_row["test auc"]) == pytest.approx(row["test_auc_mean"], abs=5e-5)
            if row["test_accuracy_std"] is not None:
                assert f"± {row['test_accuracy_std']:.4f}" in html_row["test accuracy"]
    ensemble = [row for rows in shown.values() for row in rows if row["model"] == ENSEMBLE]
    assert len(ensemble) == 1 and "(ensemble)" in ensemble[0]["test accuracy"]
    assert ensemble[0]["runs"] == "members 1 2"


def test_plots_marginals_and_gradient_norms(recorded):
    out, runs = recorded["out"], recorded["runs"]
    index = (out / "index.html").read_text(encoding="utf-8")
    for kind in ("cell", "aggregator"):
        assert f'data-kind="{kind}"' in index
    images = {p.name for p in out.glob("img/*.png")}
    assert sum(name.startswith("leaderboard-") for name in images) == 2
    assert sum(name.startswith("curves-") for name in images) == 2
    assert sum(name.startswith("grad-norms-") for name in images) == 1  # the setup with event files
    assert "no gradient norms" in index  # the other setup says why it has none
    first = runs[0]["id"]
    assert f"run-{first}-grad-norm.png" in images
    assert "no step/grad_norm" in (out / "runs" / f"{runs[1]['id']}.html").read_text(encoding="utf-8")


def test_run_pages_show_spec_settings_provenance_and_explained_reviews(recorded):
    out = recorded["out"]
    by_status = {}
    for run in recorded["runs"]:
        by_status.setdefault("ensemble" if run["members"] else "trained", []).append(run)
    trained = by_status["trained"][0]
    page = (out / "runs" / f"{trained['id']}.html").read_text(encoding="utf-8")
    for text in ("<h2>Model</h2>", "cell.units", "data.maxlen", "train.lr", "git commit", "TensorFlow",
                 trained["id"], f"../img/run-{trained['id']}-curves.png", 'href="../index.html"'):
        assert text in page, text
    assert page.count("<section") == 2 and "test review 1: labelled positive" in page
    assert "test review 2: labelled negative" in page and "P(positive) = " in page
    ensemble = by_status["ensemble"][0]
    page = (out / "runs" / f"{ensemble['id']}.html").read_text(encoding="utf-8")
    assert "<section" not in page and "an ensemble has no weights of its own" in page
    for member in ensemble["members"].split():
        assert f'href="{member}.html"' in page


def test_markup_in_a_name_is_shown_as_text(recorded):
    for page in [recorded["out"] / "index.html"] + [recorded["out"] / "runs" / f"{r['id']}.html"
                                                    for r in recorded["runs"] if r["members"]]:
        text = page.read_text(encoding="utf-8")
        assert "<i>duo" not in text and "&lt;i&gt;duo&lt;/i&gt; &amp; &quot;co&quot;" in text, page.name


def test_overwrite_replaces_only_the_earlier_report_and_the_output_depends_on_its_inputs_alone(recorded, tmp_path):
    """--overwrite removes what the earlier report wrote and nothing else. Rebuilt with another copy of the
    data, no run explains its reviews (each page says why) and everything else, plots included, is byte for
    byte the fixture's report."""
    out = tmp_path / "report"
    shutil.copytree(recorded["out"], out)
    (out / "mine.txt").write_text("keep me", encoding="utf-8")
    (out / "runs" / "stale.html").write_text("old", encoding="utf-8")
    with open(out / ".zoo-report", "a", encoding="utf-8") as manifest:
        manifest.write("runs/stale.html\n../outside.txt\n")
    (tmp_path / "outside.txt").write_text("not the report's", encoding="utf-8")
    refused = zoo("report", "-o", out, "--results", recorded["db"], expect=2)
    assert refused.stderr.strip().splitlines() == [
        f"Error: {out} is not empty: pass --overwrite to replace the report in it, or give a new or empty folder"]

    other = make_imdb_tree(tmp_path / "other", n_per_class=5, seed=3)
    result = zoo("report", "-o", out, "--results", recorded["db"], "--data", other, "--explain", "1", "--overwrite")
    assert (out / "mine.txt").read_text(encoding="utf-8") == "keep me"
    assert (tmp_path / "outside.txt").exists() and not (out / "runs" / "stale.html").exists()
    assert "no explained reviews: no run with saved weights was trained on aclImdb" in result.stderr
    page = (out / "runs" / f"{recorded['runs'][0]['id']}.html").read_text(encoding="utf-8")
    assert "it was trained on other data than" in page and "<section" not in page
    assert sorted(p.name for p in (out / "img").iterdir()) == sorted(p.name for p in (recorded["out"] / "img").iterdir())
    for image in (recorded["out"] / "img").iterdir():
        assert (out / "img" / image.name).read_bytes() == image.read_bytes(), image.name

    def without_notes(path):
        return re.sub(r'<p class="note">no explained reviews[^<]*</p>\n?', "", path.read_text(encoding="utf-8"))

    assert without_notes(out / "index.html") == without_notes(recorded["out"] / "index.html")


@pytest.mark.parametrize("case", ["not-a-report", "file", "missing-db", "empty-db", "missing-data"])
def test_bad_input_is_one_line_and_exit_2(recorded, tmp_path, case):
    from zoo_core.results import ResultsDB

    db, out, extra = recorded["db"], tmp_path / "out", []
    if case == "not-a-report":
        out.mkdir()
        (out / "mine.txt").write_text("x", encoding="utf-8")
        extra = ["--overwrite"]
        message = "holds no earlier report"
    elif case == "file":
        out.write_text("x", encoding="utf-8")
        message = "is a file, not a folder"
    elif case == "missing-db":
        db = tmp_path / "none.sqlite"
        message = "none.sqlite"
    elif case == "empty-db":
        db = tmp_path / "empty.sqlite"
        ResultsDB(db)
        message = "no runs in"
    else:
        extra = ["--data", tmp_path / "absent.tar.gz"]
        message = "no IMDB data at"
    result = zoo("report", "-o", out, "--results", db, *extra, expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert case in ("not-a-report", "file") or not out.exists()


def test_gradient_norms_read_back_from_event_files(tmp_path):
    from zoo_core.tensorboard import EventLogger, find_logdirs, read_scalars, run_logdir

    logdir = run_logdir(tmp_path, "embedding/gru/last/sigmoid1", 3, "0123456789ab")
    with EventLogger(logdir, every_steps=1) as log:
        for step in (1, 2, 3):
            log.on_step(step, {"grad_norm": step / 4, "train_loss": 1.0})
        log.on_epoch(1, {"val_accuracy": 0.75})
    assert find_logdirs([tmp_path, tmp_path / "absent"], "0123456789ab") == [logdir]
    scalars = read_scalars(logdir)
    assert scalars["step/grad_norm"] == [(1, 0.25), (2, 0.5), (3, 0.75)]
    assert scalars["epoch/val_accuracy"] == [(1, 0.75)]
    # A record cut short (a run still writing) ends the reading, without an error.
    events = next(logdir.glob("events.out.tfevents.*"))
    events.write_bytes(events.read_bytes()[:-7])
    assert read_scalars(logdir, ("step/grad_norm",))["step/grad_norm"][:2] == [(1, 0.25), (2, 0.5)]


def test_a_headless_browser_renders_the_report(recorded, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("no headless browser: apt install chromium")
    index = (recorded["out"] / "index.html").resolve()
    shot = tmp_path / "index.png"
    common = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,2000", index.as_uri()],
                   capture_output=True, timeout=120, check=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000) and len(data) > 30_000  # a blank page is a few kB
    dom = subprocess.run([*common, "--dump-dom", index.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    parser = Tables("leaderboard")
    parser.feed(dom)
    assert len(parser.tables) == 2 and any(row["model"] == "gru-mean" for rows in parser.tables.values()
                                           for row in rows)
