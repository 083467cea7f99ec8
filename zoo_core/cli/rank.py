"""``zoo rank``, ``zoo leaderboard``, ``zoo runs``, ``zoo predict``, ``zoo evaluate``: ranking and using runs.

The leaderboard and run listings read only the results database, so they do
not import TensorFlow; training and prediction import it when they start.
"""

from __future__ import annotations

from pathlib import Path

import click

from zoo_core.cli import AppState, cli, pass_state, progress_bar, signals, warn
from zoo_core.cli.options import ALL_FLAGS, component_options, data_options, data_origin, pick, train_options
from zoo_core.config import KINDS, SEED
from zoo_core.errors import ZooError
from zoo_core.leaderboard import SORT_METRICS
from zoo_core.tables import format_option, image_path, render, wrap_caption


def results_option(func):
    return click.option(
        "--results", "results_path", metavar="PATH",
        help="Results database (default: $ZOO_RESULTS, else [paths] results in registry.toml).",
    )(func)


def _remember_runs_flag(ctx, param, value):
    if value is not None:
        ctx.find_object(AppState).runs_flag = value
    return value


def runs_option(func):
    """``--runs DIR``, kept on the AppState rather than passed as a parameter: every command that reads or
    writes runs' weights takes it alike, whatever its own parameters."""
    return click.option(
        "--runs", metavar="DIR", expose_value=False, callback=_remember_runs_flag,
        help="Runs folder, where each run's weights are (default: $ZOO_RUNS, else [paths] runs in registry.toml, "
             "else runs/ beside the results database).",
    )(func)


def runs_folder(state, results_path, check: bool = False):
    """The runs folder for the results database at ``results_path``; with ``check``, refused (one line) if it
    cannot be written."""
    from zoo_core.runs import check_runs_dir, resolve_runs_dir

    folder, source = resolve_runs_dir(state.runs_flag, state.settings, results_path)
    return check_runs_dir(folder, source) if check else folder


def _open_db(state, results_path):
    """The results database, opened read-only: reading works in a read-only folder, and writes nothing."""
    from zoo_core.results import ResultsDB, resolve_results_path

    return ResultsDB(resolve_results_path(results_path, state.settings), create=False, readonly=True)


def _table_text(table, fmt: str) -> str:
    """A rendered table, its caption first."""
    text = render(table.rows, table.headers, fmt)
    return wrap_caption(table.caption, fmt) + "\n\n" + text if table.caption else text


def _emit(table, fmt: str, output: str | None) -> None:
    """Prints a table (caption first for text formats) or writes it to ``output``."""
    _write(_table_text(table, fmt), output)


def _write(text: str, output: str | None) -> None:
    """Prints ``text`` or writes it to ``output``."""
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


@cli.command()
@click.argument("patterns", nargs=-1)
@click.option("--preset", metavar="NAME", help="Rank a preset from registry.toml (default: quick, if no PATTERN).")
@click.option("--seeds", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Seeds per model: --seed, --seed+1, ...")
@data_options
@train_options
@results_option
@runs_option
@click.option("--dry-run", is_flag=True, help="List the runs it would train, and which already finished.")
@format_option()
@pass_state
def rank(state, patterns, preset, seeds, results_path, dry_run, fmt, seed, set_values, **flags):
    """Train every matching model once per seed under identical settings, and rank them.

    PATTERN is a named model, an fnmatch pattern on names or on
    encoder/cell/aggregator/head, or any mix of registered components spelled
    out as encoder/cell/aggregator/head. With no PATTERN and no --preset it ranks the
    `quick` preset. Results go to the results database, each run's weights to
    the runs folder (--runs; default runs/ beside the database); runs that
    already finished there (ranked, or trained alone by `zoo train`) are
    skipped, so after Ctrl-C or a crash the same command resumes where it
    stopped. Ctrl-C or SIGTERM stops after the current batch,
    marking that run interrupted (exit 130, or 143 for SIGTERM); a second
    Ctrl-C stops at once. Each run's curves also go to TensorBoard event
    files: `tensorboard --logdir RUNS` (RUNS: [paths] runs in registry.toml,
    by default ~/.local/share/rnn-zoo/runs) shows every ranked run.

    \b
    Examples:
      zoo rank                                        # the quick preset
      zoo rank --preset seed-grid --limit 2000 --epochs 1
      zoo rank 'gru*' '*/lstm/*' --seeds 3
      zoo rank embedding/gru/max-states/sigmoid1 one-hot/lstm/last/softmax2
      zoo rank --preset seed-grid --set cell.units=32 --results grid.sqlite   # weights in ./runs/
      zoo rank gru-mean --seeds 3 --runs /scratch/zoo-runs
    """
    from zoo_core import ranking
    from zoo_core.leaderboard import default_run
    from zoo_core.results import ResultsDB, resolve_results_path

    if seed + seeds - 1 > SEED.high:
        raise ZooError(f"--seed {seed} --seeds {seeds} runs past the largest seed, {SEED.high}")
    registry = state.registry
    runs = ranking.plan_runs(registry, patterns, preset, range(seed, seed + seeds), set_values, pick(flags, ALL_FLAGS))
    db_path = resolve_results_path(results_path, registry.settings)
    runs_folder(state, db_path)  # an empty --runs: one line, even for a dry run
    db = ResultsDB(db_path)
    if dry_run:
        done = db.done_keys()
        rows = [[i, r.model.label, r.seed, done.get(r.key(), "to train")] for i, r in enumerate(runs, 1)]
        click.echo(render(rows, ["#", "model", "seed", "status"], fmt))
        return
    from zoo_core.data import find_source, load_dataset

    runs_dir = runs_folder(state, db_path, check=True)  # one that cannot be written: one line, before training
    finished = db.finished_keys()
    origin = data_origin()
    for data_config in dict.fromkeys(r.data for r in runs if r.key() not in finished):
        # Missing or bad data: one line, no failed run, and before TensorFlow's import (seconds).
        find_source(data_config, registry.settings, origin=origin)
    from zoo_core.training import train  # imports TensorFlow (seconds): here a signal stops it at once
    with signals.stoppable() as should_stop:  # Ctrl-C or SIGTERM: stop after the current batch, keep what finished
        # Loading data checks no stop request, so a signal stops it at once.
        def load_at_once(config, settings, seed=0, progress=False):
            with should_stop.at_once():
                return load_dataset(config, settings, seed=seed, progress=progress_bar if progress else None,
                                    warn=warn, origin=origin)

        outcome = ranking.rank(runs, registry, db, runs_dir=runs_dir, should_stop=should_stop,
                               load_dataset=load_at_once, train=train)
    table = ranking.leaderboard_of(db, runs, fmt, default_run(registry.settings.data, registry.settings.train))
    if table is not None:
        click.echo()
        _emit(table, fmt, None)
    click.echo(outcome.summary(db.path), err=True)
    if outcome.interrupted or should_stop():
        raise SystemExit(should_stop.exit_status)
    if outcome.failed or outcome.missing:
        raise SystemExit(1)


@cli.command()
@click.argument("patterns", nargs=-1)
@component_options
@click.option("--sort", "metric", type=click.Choice(list(SORT_METRICS)), default="test_accuracy", show_default=True,
              help="Rank by this metric's mean over seeds.")
@click.option("--by", "by_kind", type=click.Choice(KINDS),
              help="Marginal table: each option of this kind averaged over the others.")
@click.option("--top", type=click.IntRange(1), help="Show only the first N rows.")
@format_option()
@click.option("--output", metavar="FILE", type=click.Path(dir_okay=False), help="Write the table to FILE.")
@click.option("--plot", "plot_path", metavar="FILE.png", type=click.Path(dir_okay=False),
              help="Also draw test accuracy vs parameters and vs training time: points numbered by rank, "
                   "error bars the 95% CI of the mean over seeds.")
@click.option("--setup", "setup_id", metavar="ID|latest|all", default="latest", show_default=True,
              help="Which setup (data and training settings) to rank: an id or prefix, `latest` (the setup of "
                   "the most recently finished run) or `all` (one table per setup).")
@results_option
@pass_state
def leaderboard(state, patterns, metric, by_kind, top, fmt, output, plot_path, setup_id, results_path,
                **components):
    """Rank finished runs: one row per spec, mean ± std over seeds.

    Only runs with the same setup (everything but the model and the seed:
    data, limit, epochs, learning rate...) are ranked together; the caption
    names the setup shown and how many runs of other setups were left out.

    PATTERN filters by model name or encoder/cell/aggregator/head (fnmatch);
    --encoder/--cell/--aggregator/--head keep runs using that component.

    \b
    Examples:
      zoo leaderboard --format github
      zoo leaderboard --by aggregator
      zoo leaderboard --cell gru --sort val_loss
      zoo leaderboard '*/lstm/*' --format csv --output lstm.csv
      zoo leaderboard --plot leaderboard.png
      zoo leaderboard --setup all
    """
    from zoo_core import leaderboard as lb

    settings = state.settings
    if plot_path is not None:
        image_path(plot_path)  # a bad place to draw: one line before any work
    for kind, wanted in components.items():
        if wanted is not None and not wanted.strip():  # would filter nothing out
            raise ZooError(f"--{kind} is empty: give a {kind} name or pattern, or leave it out")
    db = _open_db(state, results_path)
    records = [r for r in db.finished() if lb.matches(r, patterns, components)]
    diverged = [r for r in db.diverged() if lb.matches(r, patterns, components)]
    if diverged:
        click.echo(f"note: {len(diverged)} diverged run(s) (NaN or infinite loss) left out; "
                   "see `zoo runs --status diverged`", err=True)
    if not records:
        what = " matching the filters" if patterns or any(components.values()) else ""
        raise ZooError(f"no finished runs{what} in {db.path} (run `zoo rank` first)")
    defaults = lb.default_run(settings.data, settings.train)
    if setup_id == "all":
        if plot_path:
            raise ZooError("--plot draws one setup: give --setup ID or latest")
        chosen = lb.split_setups(records)
    else:
        chosen = [lb.select_setup(records, setup_id)[0]]
    tables = []
    for setup in chosen:
        groups = lb.group_runs(setup.records)
        table = lb.marginal(groups, by_kind, metric, fmt) if by_kind else lb.leaderboard(groups, metric, fmt, defaults)
        if top:
            table.rows = table.rows[:top]
        others = [s for s in lb.split_setups(records) if s.key != setup.key]
        caption = lb.setup_caption(setup, [] if setup_id == "all" else others, defaults)
        table.caption = caption + ("\n" + table.caption if table.caption else "")
        tables.append((setup, table))
    if fmt in lb.NUMERIC_FORMATS:  # one machine-readable table, each row naming its setup
        merged = lb.Table(["setup"] + tables[0][1].headers,
                          [[setup.key] + row for setup, table in tables for row in table.rows])
        _emit(merged, fmt, output)
    else:
        _write("\n\n".join(_table_text(table, fmt) for _, table in tables), output)
    if plot_path:
        setup = chosen[0]
        lb.plot(lb.sort_groups(lb.group_runs(setup.records), metric)[: top or None], plot_path, metric=metric,
                title=f"rnn-zoo leaderboard, setup {setup.key} ({setup.describe(defaults)})")
        click.echo(f"wrote {plot_path}", err=True)


@cli.command()
@click.argument("patterns", nargs=-1)
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["running", "finished", "diverged", "interrupted", "failed", "abandoned"]),
              help="Only runs with this status (repeatable).")
@click.option("--prune", is_flag=True,
              help="Delete the weights of every run no leaderboard row points to (lists them and asks first).")
@click.option("--yes", "-y", is_flag=True, help="With --prune: delete without asking.")
@format_option()
@results_option
@runs_option
@pass_state
def runs(state, patterns, statuses, prune, yes, fmt, results_path):
    """List recorded runs (every attempt, newest last) with their ids for `zoo predict`.

    PATTERN matches a run id prefix, a model name or encoder/cell/aggregator/head (fnmatch).

    --prune reclaims disk space: it deletes the weights folders of the runs
    that no leaderboard row points to (the other seeds of each spec, older
    runs of the same spec and seed, diverged, interrupted and failed runs),
    keeping the best run of each spec in every setup, so `zoo predict best`
    and every row's best_run still load. It lists what it would delete and
    asks first (--yes: do not ask; with no terminal to ask on, it refuses).
    Only folders of runs the database knows, inside the runs folder, are
    deleted; the records stay, so metrics and curves remain in `zoo runs`
    and `zoo curves`, and `zoo predict` on a pruned run says so.

    \b
    Examples:
      zoo runs
      zoo runs 3f9a                                   # by run id prefix
      zoo runs 'gru*' --status finished --format csv
      zoo runs --prune                                # list, then ask before deleting
      zoo runs --prune --yes --results grid.sqlite    # no question (scripts)
    """
    from zoo_core import leaderboard as lb

    if prune:
        if patterns or statuses:
            raise ZooError("--prune works on every run: give no PATTERN or --status with it")
        return _prune(state, results_path, yes, fmt)
    if yes:
        raise ZooError("--yes goes with --prune")
    db = _open_db(state, results_path)
    records = [r for r in db.runs(list(statuses) or None)
               if lb.matches(r, patterns) or any(r.id.startswith(p) for p in patterns)]
    _emit(lb.runs_table(records, fmt), fmt, None)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.3f}"


def _prune(state, results_path, yes: bool, fmt: str) -> None:
    """``zoo runs --prune``: list the runs whose weights would go, ask, delete, mark them pruned."""
    import sys

    from zoo_core.results import ResultsDB, resolve_results_path
    from zoo_core.runs import plan_prune, prune

    db = ResultsDB(resolve_results_path(results_path, state.settings), create=False)
    runs_dir = runs_folder(state, db.path)
    plan = plan_prune(db, runs_dir)
    if plan.outside:
        click.echo(f"note: {len(plan.outside)} run(s) saved outside {runs_dir} are left alone "
                   "(--runs DIR prunes the runs saved in DIR)", err=True)
    kept = f"keeping the {len(plan.kept)} run(s) the leaderboard points to"
    if not plan.delete:
        click.echo(f"nothing to prune in {runs_dir}; {kept}", err=True)
        return
    rows = [[p.record.id, p.record.label, p.record.seed, p.why, round(p.size / 1e6, 3)] for p in plan.delete]
    click.echo(render(rows, ["id", "model", "seed", "why", "MB"], fmt))
    count = f"{len(plan.delete)} run folder(s), {_megabytes(plan.size)} MB"
    click.echo(f"{count} in {runs_dir} to delete; {kept}; every record stays in {db.path}", err=True)
    if not yes:
        if not sys.stdin.isatty():
            raise ZooError(f"nothing deleted: no terminal to confirm on; pass --yes to delete these {count}")
        if not click.confirm(f"Delete the weights of these {len(plan.delete)} runs?", default=False, err=True):
            click.echo("nothing deleted", err=True)
            return
    deleted, problems = prune(plan, db)
    for line in problems:
        click.echo(f"warning: {line}", err=True)
    click.echo(f"pruned {len(deleted)} run(s), freed {_megabytes(sum(p.size for p in deleted))} MB", err=True)
    if problems:
        raise SystemExit(1)


def _load(state, run_ref: str, results_path):
    """``(model, vocab, run_spec, run_id)`` for a run id, id prefix, ``best`` or a saved-run folder."""
    from zoo_core.runs import load_run, resolve_run, saved_run_folder

    if not run_ref.strip():  # '' would be the working directory, or a prefix of every run id
        raise ZooError("RUN is empty: give a run id (see `zoo runs`), best, or a saved run's folder")
    folder = saved_run_folder(run_ref)
    if folder is not None:  # a saved run's folder, e.g. from `zoo train --save DIR`
        directory, run_id = folder, folder.name
    else:
        db = _open_db(state, results_path)
        directory, run_id = resolve_run(run_ref, db, runs_folder(state, db.path))
    model, vocab, run = load_run(directory, state.registry)
    return model, vocab, run, run_id


def _shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@cli.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("texts", nargs=-1)
@click.option("--file", "file_path", metavar="FILE", help="Reviews to score, one per line (- reads stdin).")
@format_option()
@results_option
@runs_option
@pass_state
def predict(state, run_ref, texts, file_path, fmt, results_path):
    """P(positive) and the label of each review, from a saved run.

    RUN is a run id (any unique prefix; see `zoo runs`), `best` (the top of the
    leaderboard) or a saved run's folder.

    \b
    Examples:
      zoo predict best "A wonderful, moving film."
      zoo predict 3fa2 "Dull." "Loved it!" --format json
      zoo predict best --file reviews.txt --format csv

    A --file line without a word gets label `empty` and no probability, so the
    output keeps one row per line.
    """
    from zoo_core.data import is_blank
    from zoo_core.runs import read_reviews

    for number, text in enumerate(texts, start=1):
        if is_blank(text):
            raise ZooError(f"review {number} on the command line is empty ({text!r}): give a text with words in it")
    reviews = list(texts) + (read_reviews(file_path) if file_path else [])
    if not reviews:
        raise ZooError("nothing to predict: give review texts or --file FILE")
    model, vocab, run, run_id = _load(state, run_ref, results_path)
    from zoo_core.runs import predict_proba

    blank = [is_blank(text) for text in reviews]
    probs = iter(predict_proba(model, vocab, run, [t for t, b in zip(reviews, blank) if not b]))
    numeric = fmt in ("csv", "json")
    rows = []
    for text, empty in zip(reviews, blank):
        p = None if empty else round(float(next(probs)), 4)
        label = "empty" if empty else "positive" if p >= 0.5 else "negative"
        rows.append([text if numeric else _shorten(text), p, label])
    click.echo(f"run {run_id}: {run.model.label}, seed {run.seed}", err=True)
    click.echo(render(rows, ["review", "p_positive", "label"], fmt))


@cli.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--data", "data_path", metavar="PATH",
              help="Labelled reviews: an IMDB archive or aclImdb/ folder (its test split), or a .tsv/.csv of "
                   "label<TAB>text rows. Default: the IMDB test split from the run's data source.")
@format_option()
@results_option
@runs_option
@pass_state
def evaluate(state, run_ref, data_path, fmt, results_path):
    """Score a saved run on labelled reviews: accuracy, loss and AUC.

    \b
    Examples:
      zoo evaluate best
      zoo evaluate 3fa2 --data my_reviews.tsv
    """
    from zoo_core.data import check_labelled, find_source, read_labelled
    from zoo_core.runs import check_labelled_file, text_split

    if data_path is not None:  # a bad --data: one line at once, not after TensorFlow's import (seconds)
        check_labelled(data_path)
        check_labelled_file(data_path)
    model, vocab, run, run_id = _load(state, run_ref, results_path)
    from zoo_core.training import evaluate as score

    path = data_path or find_source(run.data, state.settings)
    check_labelled_file(path)
    texts, labels = read_labelled(path)
    metrics = score(model, text_split(texts, labels, vocab, run), run)
    rows = [[run_id, run.model.label, str(path), len(texts)] + [round(metrics[m], 4) for m in ("accuracy", "loss", "auc")]]
    click.echo(render(rows, ["run", "model", "data", "reviews", "accuracy", "loss", "auc"], fmt))
