"""``zoo runs``: every recorded run, and ``--prune`` to delete the weights no leaderboard row points to."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import emit, format_option, open_db, results_option, runs_folder, runs_option
from zoo_core.errors import ZooError
from zoo_core.tables import render


@cli.command()
@click.argument("patterns", nargs=-1)
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["running", "finished", "diverged", "interrupted", "failed", "abandoned", "trial",
                                 "pruned"]),
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
    runs of the same spec and seed, diverged, interrupted and failed runs,
    and `zoo tune`'s trials),
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
    db = open_db(state, results_path)
    records = [r for r in db.runs(list(statuses) or None)
               if lb.matches(r, patterns) or any(r.id.startswith(p) for p in patterns)]
    emit(lb.runs_table(records, fmt), fmt, None)


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
