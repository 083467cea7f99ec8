"""``zoo report``: a static HTML site of the results database (leaderboards, plots, a page per run)."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import open_db, results_option, runs_folder, runs_option
from zoo_core.cli.progress import TerminalProgress, echo_err


@cli.command()
@click.option("-o", "--output", "out_dir", required=True, metavar="DIR",
              help="The report's folder: new or empty (or an earlier report's, with --overwrite).")
@click.option("--data", metavar="PATH", envvar="ZOO_DATA",
              help="IMDB data whose test reviews the run pages explain (default: the search path; env ZOO_DATA).")
@click.option("--explain", "explain_count", type=click.IntRange(0, 50), default=3, show_default=True, metavar="N",
              help="Test reviews explained on each run page whose weights are saved (0: none).")
@click.option("--text", "texts", multiple=True, metavar="TEXT",
              help="Explain TEXT on each run page instead of test reviews (repeatable).")
@click.option("--overwrite", is_flag=True,
              help="Replace the files of an earlier report in DIR (other files there stay).")
@results_option
@runs_option
@pass_state
def report(state, out_dir, data, explain_count, texts, overwrite, results_path):
    """Write a static HTML report of every recorded run to DIR.

    DIR/index.html holds one leaderboard per setup (as `zoo leaderboard
    --setup all` ranks them, ensembles and tuned settings included), the
    marginal tables of each component kind, test accuracy against parameters
    and training time, the learning curves, and the gradient norms where
    training recorded them. Each run has a page (DIR/runs/ID.html): its
    spec, hyperparameters, settings, metrics, curves, provenance and a few
    explained test reviews (`zoo explain`) when its weights and the data
    are at hand. Plots are PNG files beside the pages and styles one local
    CSS file: the site opens from the file system, with no server and
    nothing loaded from the network.

    \b
    Examples:
      zoo report -o report                       # then open report/index.html
      zoo report -o report --explain 0           # no models loaded: seconds
      zoo report -o report --data aclImdb_v1.tar.gz --explain 5
      zoo report -o docs/report --text "A wonderful, moving film." --overwrite
      zoo report -o /tmp/r --results /tmp/try.sqlite
    """
    from zoo_core.report import build_report, check_target

    check_target(out_dir, overwrite)  # a bad folder: one line before any work
    db = open_db(state, results_path)
    written = build_report(
        db, out_dir, state.settings, runs_dir=runs_folder(state, db.path), data=data, explain=explain_count,
        texts=texts, overwrite=overwrite, load_registry=lambda: state.registry,
        progress=TerminalProgress(), echo=echo_err)
    for note in written.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {written.index} ({written.runs} run pages, {written.explained} with explained reviews, "
               f"{sum(f.endswith('.png') for f in written.files)} plots)", err=True)
