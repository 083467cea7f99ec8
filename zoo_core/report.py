"""``zoo report``: a static HTML site of a results database, opened from the file system.

The site is one folder::

    index.html          the leaderboards (one per setup), the marginal tables, the plots, every run
    style.css           the one style sheet (no fonts, scripts or anything else from the network)
    img/*.png           the plots, as files beside the pages
    runs/<run id>.html  one page per run: spec, settings, metrics, curves, provenance, explained reviews
    .zoo-report         the files written, so that ``--overwrite`` removes exactly those

Every text is HTML-escaped; every link and image is a relative path to a file
in the folder, so the site opens from a file manager, a ``file://`` URL or
any static host. The output depends on the database (and the data and
weights, for explanations) only: no timestamp, no absolute path in a file name.

What is drawn comes from the database alone (no TensorFlow): the leaderboards
and marginal tables are :func:`zoo_core.leaderboard.leaderboard` and
:func:`zoo_core.leaderboard.marginal` of each setup, the accuracy plots
:func:`zoo_core.leaderboard.plot_figure`, the learning curves the recorded
per-epoch history (:mod:`zoo_core.curves`). Gradient norms are read from the
runs' TensorBoard event files (``step/grad_norm``) where training wrote them;
where none are found, the page says so. Only the explained reviews load
models (and TensorFlow): each run's weights, through ``load_registry``.

Progress comes back through a :data:`zoo_core.progress.Progress` callback (one
step per run page) and an :data:`zoo_core.progress.Echo` for lines of text.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo_core import leaderboard as lb
from zoo_core.config import KINDS, DataConfig
from zoo_core.errors import ZooError
from zoo_core.progress import Echo, Progress, echo_or_silent, progress_or_silent
from zoo_core.results import RunRecord

#: The file listing what a report wrote (one relative path a line): ``--overwrite`` removes those, nothing else.
MANIFEST = ".zoo-report"
#: The explained test reviews are picked among those of this many characters (short enough to read on a page).
REVIEW_CHARS = (200, 700)
#: Curves and gradient-norm plots of a setup overlay the best run of at most this many specs (the top ones).
MAX_OVERLAID = 10
METRIC = "test_accuracy"
#: Columns whose long text wraps; every other cell of a data table stays on one line.
WRAPPED = ("hyperparameters", "setup", "message")
DPI = 100

STYLE = """\
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #222; max-width: 84em; margin: 0 auto; padding: 0 1.2em 3em; line-height: 1.45; }
nav { padding: .6em 0; border-bottom: 1px solid #ddd; margin-bottom: 1em; font-size: .95em; }
nav a { margin-right: 1.2em; }
h1 { font-size: 1.6em; margin: .6em 0 .3em; }
h2 { font-size: 1.3em; margin: 1.6em 0 .4em; border-bottom: 1px solid #e4e4e4; padding-bottom: .2em; }
h3 { font-size: 1.08em; margin: 1.2em 0 .4em; }
a { color: #1a5fb4; text-decoration: none; }
a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #d8d8d8; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #f1f3f5; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
.leaderboard, .marginal, .runs { font-size: .84em; }
.leaderboard td, .marginal td, .runs td, .curves td { white-space: nowrap; }
.leaderboard th, .leaderboard td { padding: .25em .4em; }
td.wrap { white-space: normal; min-width: 9em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id, code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .92em; }
table.kv th { width: 11em; background: #f7f7f7; }
.scroll { overflow-x: auto; }
.cols { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
.cols > div { flex: 1 1 0; min-width: 24em; }
.cols table.kv { width: 100%; }
table.kv td { overflow-wrap: anywhere; }
.cols h2 { margin-top: 1em; }
.caption, .note { color: #555; font-size: .9em; max-width: 70em; }
.note { border-left: 3px solid #d0d7de; padding-left: .6em; }
img.plot { max-width: 100%; height: auto; border: 1px solid #e4e4e4; margin: .4em 0; }
.status-finished { color: #1a7f37; }
.status-diverged, .status-failed { color: #b42318; }
.status-running, .status-interrupted, .status-abandoned { color: #9a6700; }
footer { margin-top: 3em; color: #777; font-size: .85em; border-top: 1px solid #eee; padding-top: .6em; }
"""


def esc(value: Any) -> str:
    """``value`` as HTML text (quotes too, so it is safe in an attribute); None as ``-``."""
    return html.escape("-" if value is None else str(value), quote=True)


def page_name(run_id: str) -> str:
    """A run page's file name: ``<run id>.html``, any character unsafe in a file name as ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id).strip(".") + ".html"


@dataclasses.dataclass
class Report:
    """What :func:`build_report` wrote.

    Attributes:
        directory: The report's folder.
        files: Every file written, relative to ``directory`` (sorted).
        runs: Run pages written.
        explained: Runs whose page shows explained reviews.
        notes: What was left out and why (e.g. no data to explain reviews).
    """

    directory: Path
    files: list[str]
    runs: int
    explained: int
    notes: list[str]

    @property
    def index(self) -> Path:
        return self.directory / "index.html"


# -- the target folder ------------------------------------------------------------------------------
def check_target(directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuses a report folder that cannot be used, before any work.

    A new or empty folder is used as it is. A non-empty one only with
    ``overwrite``, and only when it holds an earlier report (its
    :data:`MANIFEST`): its files are replaced, anything else in it is left alone.

    Raises:
        ZooError: an empty path, a file in the way, a non-empty folder without
            ``overwrite`` or without an earlier report in it.
    """
    if not str(directory).strip():
        raise ZooError("-o needs a folder, got an empty path")
    path = Path(directory).expanduser()
    blocker = next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        raise ZooError(f"cannot write the report to {path}: {blocker} is a file, not a folder")
    if path.is_dir():
        try:
            empty = not any(path.iterdir())
        except OSError as err:
            raise ZooError(f"cannot read the report folder {path}: {err.strerror or err}") from None
        if not empty and not overwrite:
            raise ZooError(f"{path} is not empty: pass --overwrite to replace the report in it, "
                           "or give a new or empty folder")
        if not empty and not (path / MANIFEST).is_file():
            raise ZooError(f"{path} is not empty and holds no earlier report ({MANIFEST} is missing), so "
                           "--overwrite would not know what to replace: give a new or empty folder")
    return path


def _remove_earlier(path: Path) -> None:
    """Deletes the files an earlier report listed in its manifest (inside ``path`` only), then empty folders."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return
    root = path.resolve()
    for line in manifest.read_text(encoding="utf-8").splitlines():
        target = (path / line).resolve()
        if line and root in target.parents and target.is_file():
            target.unlink()
    for folder in ("runs", "img"):
        with_files = path / folder
        if with_files.is_dir() and not any(with_files.iterdir()):
            with_files.rmdir()
    manifest.unlink(missing_ok=True)  # it lists itself


class _Writer:
    """Writes the report's files and remembers them for the manifest."""

    def __init__(self, root: Path):
        self.root = root
        self.files: list[str] = []

    def text(self, relative: str, content: str) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        self.files.append(relative)

    def figure(self, relative: str, figure) -> str:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        # No "Software" chunk: the bytes depend on the plot alone.
        figure.savefig(target, dpi=DPI, metadata={"Software": None})
        self.files.append(relative)
        return relative

    def manifest(self) -> None:
        self.text(MANIFEST, "\n".join(sorted(self.files + [MANIFEST])) + "\n")


# -- HTML pieces -------------------------------------------------------------------------------------
def _page(title: str, body: str, depth: int) -> str:
    """A whole page: ``depth`` 0 for index.html, 1 for a page in runs/ (its links go up one folder)."""
    up = "../" * depth
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="generator" content="rnn-zoo report">\n'
            f"<title>{esc(title)}</title>\n"
            f'<link rel="stylesheet" href="{up}style.css">\n</head>\n<body>\n{body}\n'
            f"<footer>Written by <code>zoo report</code> (rnn-zoo {esc(_version())}) from the results "
            "database; it opens from the file system and loads nothing from the network.</footer>\n"
            "</body>\n</html>\n")


def _version() -> str:
    from zoo_core import __version__

    return __version__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_NUMERIC_TEXT = re.compile(r"^-?\d[\d.,]*(e-?\d+)?( ± [\d.]+)?( \[[-\d., ]+\])?( \((1 seed|ensemble)\))?$")


def _cell(value: Any, link: str | None = None, cls: str | None = None) -> str:
    """A ``<td>``: numbers (and ``0.85 ± 0.01``-like text) right-aligned, whole numbers from 10,000 on with
    thousands separators; ``link`` makes the text a link, ``cls`` sets the class (``""``: none)."""
    shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000 else value
    text = esc("-" if shown is None or shown == "" else shown)
    if cls is None:
        cls = "num" if _is_number(value) or (isinstance(value, str) and _NUMERIC_TEXT.match(value)) else None
    inner = f'<a href="{esc(link)}">{text}</a>' if link else text
    return f'<td class="{cls}">{inner}</td>' if cls else f"<td>{inner}</td>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "", attrs: str = "") -> str:
    """An HTML table of already rendered ``<td>`` cells, in a horizontally scrolling box."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(row)}</tr>\n" for row in rows)
    klass = f' class="{esc(cls)}"' if cls else ""
    return f'<div class="scroll"><table{klass}{attrs}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table></div>'


def _key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th>{_cell(v, cls='')}</tr>\n" for k, v in pairs)
    return f'<table class="kv">\n<tbody>\n{rows}</tbody>\n</table>'


def _image(src: str, alt: str) -> str:
    return f'<img class="plot" src="{esc(src)}" alt="{esc(alt)}" loading="lazy">'


def _note(text: str) -> str:
    """A note paragraph; `backquoted` commands in it are shown as code."""
    return '<p class="note">' + re.sub(r"`([^`<>]+)`", r"<code>\1</code>", esc(text)) + "</p>"


def _status_text(record: RunRecord) -> str:
    status = record.status
    if record.train_status and record.train_status != "completed":
        status += f" ({record.train_status})"
    if record.is_ensemble:
        status += f" (ensemble of {len(record.members)})"
    if record.pruned_at:
        status += ", weights pruned"
    return status


# -- plots ------------------------------------------------------------------------------------------
def grad_norm_figure(series: Sequence[tuple[str, Sequence[tuple[int, float]]]], title: str):
    """Gradient norm (before clipping, the mean over each logged stretch of steps) against the optimizer step,
    one line per run, log scale: a matplotlib ``Figure`` on an Agg canvas.

    Args:
        series: ``(label, [(step, norm), ...])`` per run.
        title: The plot's title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, points in series:
        axes.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=label)
    if all(v > 0 for _, points in series for _, v in points):
        axes.set_yscale("log")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("gradient norm before clipping")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def _grad_norms(record: RunRecord, runs_dirs: Sequence[Path]) -> list[tuple[int, float]]:
    """The run's ``step/grad_norm`` points from its TensorBoard event files, or ``[]`` where none are found."""
    from zoo_core.tensorboard import find_logdirs, read_scalars

    points: list[tuple[int, float]] = []
    for logdir in find_logdirs(runs_dirs, record.id):
        points += read_scalars(logdir, ("step/grad_norm",)).get("step/grad_norm", [])
    return sorted(points)


# -- explained reviews ------------------------------------------------------------------------------
@dataclasses.dataclass
class _Reviews:
    """What the run pages explain: texts, their labels (None for texts the user gave) and where they came from."""

    texts: list[str]
    labels: list[int | None]
    source: str  # shown on the page
    checksum: str | None = None  # the data's, when they are test reviews: runs trained on other data are skipped
    path: Path | None = None  # the data, until its test reviews are read


def pick_reviews(texts: Sequence[str], labels: Sequence[int], n: int,
                 chars: tuple[int, int] = REVIEW_CHARS) -> list[int]:
    """Indices of ``n`` test reviews to explain, the same for every run and every report of the data.

    Alternately positive and negative (a class short of reviews leaves its
    places to the other), spread evenly over each class's reviews of ``chars``
    characters, or over all of its reviews where fewer than ``n`` are that long.
    """
    if n <= 0:
        return []
    pools = {}
    for label in (1, 0):
        ids = [i for i, y in enumerate(labels) if int(y) == label]
        short = [i for i in ids if chars[0] <= len(texts[i]) <= chars[1]]
        pools[label] = short if len(short) >= n else ids
    counts = {1: min((n + 1) // 2, len(pools[1])), 0: min(n // 2, len(pools[0]))}
    counts[1] = min(n - counts[0], len(pools[1]))  # the other class fills in for a short one
    counts[0] = min(n - counts[1], len(pools[0]))
    picked = {label: [pools[label][(2 * k + 1) * len(pools[label]) // (2 * c)] for k in range(c)]
              for label, c in counts.items()}
    pos, neg = picked[1], picked[0]
    return [x for pair in zip(pos, neg) for x in pair] + pos[len(neg):] + neg[len(pos):]


def _find_reviews(data: str | None, n: int, texts: Sequence[str], settings, notes: list[str]) -> _Reviews | None:
    """Where the reviews to explain come from: ``texts`` when given, else the data (``data``, or the search
    path) whose ``n`` test reviews are read later (:func:`_read_test_reviews`). None, with a note, when there is
    nothing to explain.

    Raises:
        ZooError: ``data`` given but missing, or not an IMDB source.
    """
    if texts:
        return _Reviews(list(texts), [None] * len(texts), "the texts given to zoo report")
    if n <= 0:
        return None
    from zoo_core.data import find_source, source_checksum

    try:
        path = find_source(DataConfig(source=data or ""), settings, origin="--data")
    except ZooError as err:
        if data:
            raise
        notes.append(f"no explained reviews: {err}")
        return None
    return _Reviews([], [], f"the test split of {path.name}", source_checksum(path, Path(settings.cache_dir)), path)


def _read_test_reviews(reviews: _Reviews, n: int, echo: Echo, notes: list[str]) -> _Reviews | None:
    """``reviews`` with :func:`pick_reviews`' ``n`` test reviews of its data read in; None, with a note, for
    data without texts (Keras' npz)."""
    from zoo_core.data import read_labelled

    echo(f"reading the test reviews of {reviews.path}")
    try:
        texts, labels = read_labelled(reviews.path)
    except ZooError as err:
        notes.append(f"no explained reviews: {err}")
        return None
    chosen = pick_reviews(texts, [int(y) for y in labels], n)
    return dataclasses.replace(reviews, texts=[texts[i] for i in chosen], labels=[int(labels[i]) for i in chosen])


# -- the pages --------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Context:
    records: list[RunRecord]
    by_id: dict[str, RunRecord]
    setups: list[lb.Setup]
    setup_of: dict[str, str]  # finished run id -> its setup key
    defaults: Any
    runs_dirs: list[Path]
    notes: list[str]


def _run_link(run_id: str, depth: int) -> str:
    return ("" if depth else "runs/") + page_name(run_id)


def _leaderboard_section(ctx: _Context, setup: lb.Setup, writer: _Writer) -> str:
    groups = lb.group_runs(setup.records)
    ranked = lb.sort_groups(groups, METRIC)
    table = lb.leaderboard(groups, METRIC, "html", ctx.defaults)
    best_col = table.headers.index("best_run")
    model_col = table.headers.index("model")
    headers = table.headers + ["runs"]
    rows = []
    for group, row in zip(ranked, table.rows):
        cells = []
        for i, value in enumerate(row):
            if table.headers[i] in WRAPPED:
                cells.append(_cell(value, cls="wrap"))
            elif i == best_col:
                cells.append(_cell(value, _run_link(value, 0), "id"))
            elif i == model_col:
                cells.append(_cell(value, _run_link(row[best_col], 0)))
            else:
                cells.append(_cell(value))
        if group.is_ensemble:
            runs = "members " + " ".join(f'<a href="{esc(_run_link(m, 0))}" title="run {esc(m)}">{n}</a>'
                                         for n, m in enumerate(group.runs[0].members, start=1))
        else:
            runs = "seed " + " ".join(f'<a href="{esc(_run_link(r.id, 0))}" title="run {esc(r.id)}">{esc(r.seed)}</a>'
                                      for r in group.runs)
        cells.append(f"<td>{runs}</td>")
        rows.append(cells)
    anchor = f"setup-{setup.key}"
    out = [f'<h2 id="{esc(anchor)}">Setup {esc(setup.key)}: {esc(setup.describe(ctx.defaults))}</h2>',
           f'<p class="caption">{len(setup.records)} finished runs of {len(groups)} specs; the last finished '
           f"{esc(setup.latest[:16].replace('T', ' '))} UTC. Each row is one spec; its model links to its "
           "best seed's page, and every run is under runs.</p>",
           _table(headers, rows, "leaderboard",
                  f' data-setup="{esc(setup.key)}" data-settings="{esc(setup.describe(ctx.defaults))}"')]
    if table.caption:
        out.append(f'<p class="caption">{esc(table.caption)}</p>')

    out.append("<h3>Test accuracy against parameters and training time</h3>")
    try:
        figure = lb.plot_figure(ranked, title=f"setup {setup.key} ({setup.describe(ctx.defaults)})", metric=METRIC)
        out.append(_image(writer.figure(f"img/leaderboard-{setup.key}.png", figure),
                          f"test accuracy against parameters and training time, setup {setup.key}"))
    except ZooError as err:
        out.append(_note(f"no plot: {err}"))

    singles = [g for g in groups if not g.is_ensemble]
    varying = [k for k in KINDS if len({getattr(g.spec.model, k) for g in singles}) > 1]
    fixed = [k for k in KINDS if k not in varying and singles]
    out.append("<h3>By component</h3>")
    if fixed:
        shared = ", ".join(f"{k} {getattr(singles[0].spec.model, k)}" for k in fixed)
        out.append(f'<p class="caption">Every spec of this setup has the same {esc(shared)}.</p>')
    for kind in varying:
        marginal = lb.marginal(groups, kind, METRIC, "html")
        out.append(f"<h3>By {esc(kind)}</h3>")
        out.append(_table(marginal.headers, [[_cell(v) for v in row] for row in marginal.rows], "marginal",
                          f' data-kind="{esc(kind)}"'))
        if marginal.caption:
            out.append(f'<p class="caption">{esc(marginal.caption)}</p>')
    if not varying:
        out.append(_note("no marginal tables: no component kind has two options among this setup's specs"))

    best = [g.best_run() for g in ranked if not g.is_ensemble]
    shown = best[:MAX_OVERLAID]
    more = f" (the top {MAX_OVERLAID} of {len(best)} specs)" if len(best) > MAX_OVERLAID else ""
    out.append("<h3>Learning curves</h3>")
    with_curves = [r for r in shown if r.curves]
    if with_curves:
        from zoo_core.curves import curves_figure

        out.append(f'<p class="caption">The best seed of each spec{esc(more)}: loss and accuracy per epoch, '
                   "training dashed, validation solid.</p>")
        out.append(_image(writer.figure(f"img/curves-{setup.key}.png", curves_figure(with_curves)),
                          f"learning curves, setup {setup.key}"))
    else:
        out.append(_note("no learning curves: no run of this setup recorded an epoch"))

    out.append("<h3>Gradient norms</h3>")
    series = []
    for group in [g for g in ranked if not g.is_ensemble][:MAX_OVERLAID]:
        # The best seed that has event files: the curves are the spec's, whichever seed drew them.
        for run in sorted(group.runs, key=lambda r: -(r.test_accuracy or 0.0)):
            points = _grad_norms(run, ctx.runs_dirs)
            if points:
                series.append((f"{run.id} {run.label}", points))
                break
    if series:
        out.append(f'<p class="caption">One seed of each spec{esc(more)}, the best with TensorBoard event files '
                   "(step/grad_norm: the norm before clipping, averaged over each logged stretch of optimizer "
                   "steps, 100 by default).</p>")
        out.append(_image(writer.figure(f"img/grad-norms-{setup.key}.png",
                                        grad_norm_figure(series, f"gradient norm, setup {setup.key}")),
                          f"gradient norms, setup {setup.key}"))
    else:
        out.append(_note("no gradient norms: no TensorBoard event file with step/grad_norm was found for these runs "
                         "(runs trained before event files were written, shorter than 100 optimizer steps, or "
                         "whose runs folder moved); `zoo diagnose --run ID` measures a saved run's gradients "
                         "through time"))
    return "\n".join(out)


def _index(ctx: _Context, db_name: str, writer: _Writer) -> str:
    counts: dict[str, int] = {}
    for r in ctx.records:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))
    body = ['<nav><a href="index.html">rnn-zoo report</a>'
            + "".join(f'<a href="#setup-{esc(s.key)}">setup {esc(s.key)}</a>' for s in ctx.setups)
            + '<a href="#all-runs">all runs</a></nav>',
            "<h1>rnn-zoo report</h1>",
            f"<p>From the results database <code>{esc(db_name)}</code>: {len(ctx.records)} runs ({esc(summary)}), "
            f"{len(ctx.setups)} setup{'s' * (len(ctx.setups) != 1)}. Runs with the same data and training settings "
            "form a setup, and only runs of one setup are ranked together. Every run has a page: follow a model "
            "or a run id.</p>"]
    diverged = [r for r in ctx.records if r.status == "diverged"]
    if diverged:
        body.append(_note(f"{len(diverged)} diverged run(s) (NaN or infinite loss) are left out of the "
                          "leaderboards; they are listed under all runs"))
    if not ctx.setups:
        body.append(_note("no finished runs yet: no leaderboard"))
    for setup in ctx.setups:
        body.append(_leaderboard_section(ctx, setup, writer))
    body.append('<h2 id="all-runs">All runs</h2>')
    table = lb.runs_table(ctx.records, "html")
    id_col = table.headers.index("id")
    rows = [[_cell(v, _run_link(v, 0), "id") if i == id_col else _cell(v, cls="wrap" if h in WRAPPED else None)
             for i, (h, v) in enumerate(zip(table.headers, row))] for row in table.rows]
    body.append(_table(table.headers, rows, "runs"))
    for note in ctx.notes:
        body.append(_note(note))
    return _page("rnn-zoo report", "\n".join(body), 0)


def _run_page(ctx: _Context, record: RunRecord, explained: str, writer: _Writer) -> str:
    spec = record.spec
    setup = ctx.setup_of.get(record.id)
    nav = ['<nav><a href="../index.html">← report</a>']
    if setup:
        nav.append(f'<a href="../index.html#setup-{esc(setup)}">setup {esc(setup)} leaderboard</a>')
    nav.append('<a href="../index.html#all-runs">all runs</a></nav>')
    status_class = f"status-{re.sub(r'[^a-z]', '', record.status)}"
    body = ["".join(nav),
            f"<h1>Run <code>{esc(record.id)}</code>: {esc(record.label)}, seed {esc(record.seed)}</h1>",
            f'<p>Status: <span class="{status_class}">{esc(_status_text(record))}</span>'
            + (f" — {esc(record.message)}" if record.message else "")
            + (f"; ranked in <a href=\"../index.html#setup-{esc(setup)}\">setup {esc(setup)}</a>" if setup else "")
            + ".</p>"]
    if record.is_ensemble:
        members = ", ".join(
            f'<a href="{esc(page_name(m))}">{esc(m)}</a>' + (f" ({esc(ctx.by_id[m].label)}, seed "
                                                                f"{esc(ctx.by_id[m].seed)})" if m in ctx.by_id else "")
            for m in record.members)
        body.append(f"<p>An ensemble: the mean P(positive) of runs {members}.</p>")

    model = spec.model
    pairs = [("name", model.name or "-"), ("description", model.description or "-")]
    pairs += [(kind, getattr(model, kind)) for kind in KINDS]
    pairs += [(f"{kind}.{name}", value) for kind, values in sorted(model.params.items())
              for name, value in sorted(values.items())]
    model_block = "<div><h2>Model</h2>" + _key_values(pairs) + "</div>"

    metrics = [("test accuracy", record.test_accuracy), ("test AUC", record.test_auc), ("test loss", record.test_loss),
               ("validation accuracy", record.val_accuracy), ("validation AUC", record.val_auc),
               ("validation loss", record.val_loss), ("best epoch", record.best_epoch),
               ("epochs run", record.epochs_run), ("trainable parameters", record.params),
               ("training time (s)", None if record.wall_time is None else round(record.wall_time, 1)),
               ("tokens per second", None if record.tokens_per_sec is None else round(record.tokens_per_sec))]
    metrics_block = ("<div><h2>Metrics</h2>"
                     + _key_values([(k, round(v, 4) if isinstance(v, float) else v) for k, v in metrics]) + "</div>")
    body.append(f'<div class="cols">{model_block}{metrics_block}</div>')

    body.append("<h2>Learning curves</h2>")
    if record.curves:
        from zoo_core.curves import curves_figure, curves_table

        body.append(_image("../" + writer.figure(f"img/run-{record.id}-curves.png", curves_figure([record])),
                           f"learning curves of run {record.id}"))
        headers, rows = curves_table([record])
        body.append(_table(headers[2:], [[_cell(v) for v in row[2:]] for row in rows], "curves"))
    else:
        body.append(_note("no recorded epochs"))
    points = [] if record.is_ensemble else _grad_norms(record, ctx.runs_dirs)
    body.append("<h2>Gradient norm</h2>")
    if points:
        body.append(_image("../" + writer.figure(f"img/run-{record.id}-grad-norm.png",
                                         grad_norm_figure([(record.label, points)], f"gradient norm, run {record.id}")),
                           f"gradient norm of run {record.id}"))
    else:
        body.append(_note("an ensemble trains nothing" if record.is_ensemble else
                          "no step/grad_norm in a TensorBoard event file of this run; `zoo diagnose --run "
                          f"{record.id}` measures its gradients through time"))

    settings = [("seed", spec.seed)]
    settings += [(f"data.{k}", v) for k, v in dataclasses.asdict(spec.data).items()]
    settings += [(f"train.{k}", v) for k, v in dataclasses.asdict(spec.train).items()]
    settings_block = "<div><h2>Settings</h2>" + _key_values(settings) + "</div>"
    provenance = [("started (UTC)", record.started_at), ("finished (UTC)", record.finished_at),
                  ("data checksum", record.data_checksum or "-"), ("rnn-zoo version", record.project_version),
                  ("git commit", record.git_commit), ("TensorFlow", record.tf_version), ("host", record.host),
                  ("weights folder", record.run_dir or "-"), ("weights pruned (UTC)", record.pruned_at)]
    body.append(f'<div class="cols">{settings_block}<div><h2>Provenance</h2>{_key_values(provenance)}</div></div>')
    body += ["<h2>Explained reviews</h2>", explained]
    return _page(f"run {record.id}: {record.label}", "\n".join(body), 1)


LEGEND = ('<p class="caption">Each token is coloured by its share of the score (the logit whose sigmoid is '
          'P(positive)): <span style="background:rgb(214,39,40);color:#fff;padding:1px 4px">against</span> … '
          '<span style="padding:1px 4px;border:1px solid #ddd">neutral</span> … '
          '<span style="background:rgb(44,160,44);color:#fff;padding:1px 4px">for</span> a positive prediction, scaled per '
          "review to its largest share. Hover a token for its numbers. Exact shares for mean-logits and "
          "mean-states models; integrated gradients (64 steps) for the others (see <code>zoo explain --help</code>)."
          "</p>")


def _explained(record: RunRecord, reviews: _Reviews | None, why_not: str | None, runs_dir,
               load_registry) -> tuple[str, bool]:
    """The run page's explained reviews (HTML) and whether there are any."""
    if why_not:
        return _note(f"no explained reviews: {why_not}" if not why_not.startswith("no explained") else why_not), False
    if reviews is None:
        return _note("no explained reviews (`zoo report --explain N` explains N test reviews)"), False
    from zoo_core.explain import explain_texts, explanation_html
    from zoo_core.runs import load_run

    try:
        model, vocab, run = load_run(_run_dir(record, runs_dir), load_registry())
        explanations = explain_texts(model, vocab, run, reviews.texts)
    except ZooError as err:
        return _note(f"no explained reviews: {err}"), False
    parts = [f'<p class="caption">{len(explanations)} review(s) from {esc(reviews.source)}.</p>', LEGEND]
    for number, (explanation, label) in enumerate(zip(explanations, reviews.labels), start=1):
        if label is None:
            title = f"text {number}"
        else:
            truth = "positive" if label == 1 else "negative"
            verdict = "right" if explanation.label == truth else "wrong"
            title = f"test review {number}: labelled {truth}, predicted {explanation.label} ({verdict})"
        parts.append(explanation_html(explanation, title))
    return "\n".join(parts), True


def _run_dir(record: RunRecord, runs_dir) -> Path | None:
    """Where the run's weights are: its recorded folder, else ``runs_dir/<id>`` (None without either)."""
    if record.run_dir:
        return Path(record.run_dir)
    return Path(runs_dir) / record.id if runs_dir else None


def _why_not_explained(record: RunRecord, reviews: _Reviews | None, runs_dir) -> str | None:
    """Why the run's page explains no review, or None when it can."""
    if reviews is None:
        return None
    if record.is_ensemble:
        return "an ensemble has no weights of its own: see its members' pages"
    if record.status != "finished":
        return f"the run is {record.status}, not finished"
    if record.pruned_at:
        return "its weights were pruned (`zoo runs --prune`)"
    folder = _run_dir(record, runs_dir)
    if folder is None or not (folder / "run.json").is_file():
        return f"its weights are not at {folder or 'a recorded folder'}"
    if reviews.checksum and record.data_checksum and reviews.checksum != record.data_checksum:
        return (f"it was trained on other data than {reviews.source} (checksum {record.data_checksum[:12]}…): "
                "pass --data with the data it was trained on")
    return None


# -- the whole report -------------------------------------------------------------------------------
def build_report(db, directory: str | os.PathLike, settings, *, runs_dir: str | os.PathLike | None = None,
                 data: str | None = None, explain: int = 3, texts: Sequence[str] = (), overwrite: bool = False,
                 load_registry: Callable[[], Any] | None = None, progress: Progress | None = None,
                 echo: Echo | None = None) -> Report:
    """Writes the report of every run in ``db`` to ``directory``.

    Args:
        db: The :class:`zoo_core.results.ResultsDB` (read only).
        directory: The report's folder: new, empty, or (with ``overwrite``) an earlier report's.
        settings: ``registry.toml``'s settings: the defaults setups are described against, the data's search
            path and the cache folder.
        runs_dir: The runs folder, where TensorBoard event files are looked for (besides beside each run's
            recorded folder).
        data: The IMDB source to take test reviews from (default: the search path). A run trained on data with
            another checksum gets no explained reviews, and says why.
        explain: How many test reviews each run page explains (0: none).
        texts: Texts to explain instead of test reviews (e.g. made-up sentences for a published report).
        overwrite: Replace an earlier report in ``directory`` (see :func:`check_target`).
        load_registry: Returns the component registry, called once a model is loaded (only when explaining).
        progress: A progress factory, advanced once per run page.
        echo: Receives lines of text (what is being read).

    Returns:
        What was written (:class:`Report`).

    Raises:
        ZooError: a folder that cannot be used, a database with no runs, ``data`` given but not IMDB.
    """
    echo = echo_or_silent(echo)
    target = check_target(directory, overwrite)
    records = db.runs()
    if not records:
        raise ZooError(f"no runs in {db.path}: nothing to report (run `zoo rank` or `zoo train` first)")
    if explain < 0:
        raise ZooError(f"--explain takes 0 or more reviews, not {explain}")
    notes: list[str] = []
    finished = [r for r in records if r.status == "finished"]
    setups = lb.split_setups(finished)
    runs_dirs = list(dict.fromkeys(
        ([Path(runs_dir)] if runs_dir else []) + [Path(r.run_dir).parent for r in records if r.run_dir]))
    ctx = _Context(records=records, by_id={r.id: r for r in records}, setups=setups,
                   setup_of={r.id: s.key for s in setups for r in s.records},
                   defaults=lb.default_run(settings.data, settings.train), runs_dirs=runs_dirs, notes=notes)

    reviews = _find_reviews(data, explain, texts, settings, notes)
    why = {r.id: _why_not_explained(r, reviews, runs_dir) for r in records}
    if reviews is not None and reviews.path is not None:
        if any(why[r.id] is None for r in records):  # read the reviews only for a run that can explain them
            reviews = _read_test_reviews(reviews, explain, echo, notes)
        else:
            notes.append(f"no explained reviews: no run with saved weights was trained on {reviews.path.name}")
    skipped = notes[-1] if reviews is None and notes else None

    if target.exists():
        _remove_earlier(target)
    target.mkdir(parents=True, exist_ok=True)
    writer = _Writer(target)
    writer.text("style.css", STYLE)
    explained = 0
    with progress_or_silent(progress)(len(records), "writing run pages") as bar:
        for record in records:
            html_part, done = _explained(record, reviews, why.get(record.id) or skipped, runs_dir, load_registry)
            explained += done
            writer.text(f"runs/{page_name(record.id)}", _run_page(ctx, record, html_part, writer))
            bar.update(1, record.id)
    writer.text("index.html", _index(ctx, Path(db.path).name, writer))
    writer.manifest()
    return Report(target, sorted(writer.files), len(records), explained, notes)

