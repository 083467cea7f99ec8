"""``zoo curves``: the learning curves of recorded runs."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import emit, format_option, open_db, results_option
from zoo_core.tables import image_path


@cli.command()
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN...")
@click.option("--plot", "plot_path", metavar="FILE.png", type=click.Path(dir_okay=False),
              help="Also draw loss and accuracy per epoch of every RUN, overlaid, to FILE.png.")
@format_option()
@results_option
@pass_state
def curves(state, run_ids, plot_path, fmt, results_path):
    """Learning curves of recorded runs: loss and accuracy per epoch.

    RUN is a run id or any unique prefix of one (see `zoo runs`).

    \b
    Examples:
      zoo curves 3f9a
      zoo curves 3f9a 71c2 --plot curves.png
      zoo curves 3f9a --format csv
    """
    from zoo_core.curves import curves_table, plot_curves
    from zoo_core.leaderboard import Table

    if plot_path is not None:
        image_path(plot_path)  # a bad place to draw: one line before any work
    db = open_db(state, results_path)
    records = [db.get(run_id) for run_id in run_ids]
    headers, rows = curves_table(records)
    emit(Table(headers, rows), fmt, None)
    if plot_path:
        plot_curves(records, plot_path)
        click.echo(f"wrote {plot_path}", err=True)
