"""``zoo leaderboard``: rank finished runs, one row per spec, from the results database alone (no TensorFlow)."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import (component_options, emit, format_option, open_db, results_option, table_text,
                                  write_text)
from zoo_core.config import KINDS
from zoo_core.errors import ZooError
from zoo_core.leaderboard import SORT_METRICS
from zoo_core.tables import MACHINE_FORMATS, image_path


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
    db = open_db(state, results_path)
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
    if fmt in MACHINE_FORMATS:  # one machine-readable table, each row naming its setup
        merged = lb.Table(["setup_id"] + tables[0][1].headers,
                          [[setup.key] + row for setup, table in tables for row in table.rows])
        emit(merged, fmt, output)
    else:
        write_text("\n\n".join(table_text(table, fmt) for _, table in tables), output)
    if plot_path:
        setup = chosen[0]
        lb.plot(lb.sort_groups(lb.group_runs(setup.records), metric)[: top or None], plot_path, metric=metric,
                title=f"rnn-zoo leaderboard, setup {setup.key} ({setup.describe(defaults)})")
        click.echo(f"wrote {plot_path}", err=True)
