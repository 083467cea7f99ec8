"""``zoo tune``: search a model's settings with Optuna, scoring each trial on the validation split only."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state, signals
from zoo_core.cli.options import (CPUS_PER_RUN, GPUS_PER_RUN, data_options, data_origin, executor_options,
                                  flag_overrides, format_option, results_option, runs_folder, runs_option,
                                  train_options)
from zoo_core.cli.progress import DATA_BARS, EPOCH_BAR_WIDTH, TerminalProgress, echo_err, warn
from zoo_core.errors import ZooError
from zoo_core.tables import MACHINE_FORMATS, render
from zoo_core.tuning import METRICS, PRUNERS, SAMPLERS


@cli.command()
@click.argument("model", metavar="MODEL")
@click.option("--param", "param_texts", multiple=True, metavar="KEY=RANGE",
              help="A setting to search: KEY=LOW:HIGH (a float or int range), KEY=LOW:HIGH:log (on a log scale) "
                   "or KEY=A,B,C (choices). KEY as for --set (train.lr, encoder.dim); a data or training "
                   "setting may drop its section (lr). Repeatable.")
@click.option("--trials", type=click.IntRange(1, 100_000), default=20, show_default=True,
              help="Trials the study should hold, counting those of earlier runs of the same command.")
@click.option("--metric", type=click.Choice(list(METRICS)), default="val_accuracy", show_default=True,
              help="The validation metric to optimise (the test split is never scored).")
@click.option("--sampler", type=click.Choice(SAMPLERS), default="tpe", show_default=True,
              help="Optuna's sampler: tpe (Tree-structured Parzen Estimator) or random; seeded by --seed.")
@click.option("--pruner", type=click.Choice(PRUNERS), default="median", show_default=True,
              help="Stop a trial after an epoch whose validation metric is worse than the median of earlier "
                   "trials' at that epoch (Optuna's MedianPruner, from the 6th trial on), or never.")
@executor_options("trial", stays_here="; the study and results stay here")
@click.option("--show", is_flag=True,
              help="Print the study's trials and best settings instead of tuning (without --param: the "
                   "latest study of MODEL with these settings).")
@data_options
@train_options
@results_option
@runs_option
@format_option()
@pass_state
def tune(state, model, param_texts, trials, metric, sampler, pruner, executor, address, cpus_per_run, gpus_per_run,
         show, seed, set_values, results_path, fmt, **flags):
    """Search MODEL's settings with Optuna, scoring each trial on the validation split.

    MODEL is a named model or encoder/cell/aggregator/head. Each --param adds
    a setting to search; --set and the flags fix the others, as for `zoo
    train`. Every trial trains MODEL once (seed --seed) and is recorded in the
    results database as a run with status `trial` (or `pruned`, when the
    pruner stopped it after an epoch), scored on the validation split only:
    tuning never looks at the test split, and no leaderboard shows a trial.

    The study is kept in Optuna's storage, optuna.sqlite beside the results
    database, named after MODEL, its settings, seed, the --param space and
    --metric: after Ctrl-C or a crash the same command resumes it, keeping
    every finished trial (a rerun with more --trials adds the difference); the
    trial in progress is marked failed and another runs in its place.

    With --executor ray the trials are Ray tasks holding --cpus-per-run CPUs
    each, as many at once as the cluster holds (a local Ray instance, or the
    cluster at --address); the study and the results database stay here,
    each trial's per-epoch metric comes back to the pruner as it trains, and
    a trial whose worker failed is retried, then recorded failed. Ctrl-C
    cancels the trials in flight (marked failed, replaced on resume).

    `zoo rank MODEL --tuned` (same data and training settings) then ranks
    MODEL at its best settings, trained afresh and scored on the test split.

    \b
    Examples:
      zoo tune gru-mean --param lr=1e-4:1e-2:log --trials 30 --limit 5000 --epochs 3
      zoo tune gru-mean --param lr=1e-4:1e-2:log --param encoder.dim=32,64,128 \\
                        --param encoder.dropout=0:0.5 --trials 30
      zoo tune embedding/lstm/last/sigmoid1 --param lr=3e-4:3e-2:log --sampler random --pruner none
      zoo tune gru-mean --param lr=1e-4:1e-2:log --trials 30 --executor ray --cpus-per-run 1
      zoo tune gru-mean --param lr=1e-4:1e-2:log --trials 100 --executor ray --address auto
      zoo tune gru-mean --show --format github      # the trials and the best settings so far
      zoo rank gru-mean lstm-last --tuned --seeds 3  # each at its own tuned settings
    """
    from zoo_core import tuning
    from zoo_core.results import resolve_results_path
    from zoo_core.specs import build_run_spec

    if executor != "ray" or show:
        ray_only = {"--address": address, "--cpus-per-run": cpus_per_run, "--gpus-per-run": gpus_per_run}
        given = [flag for flag, value in ray_only.items() if value is not None]
        if given:
            raise ZooError(f"{', '.join(given)}: only with --executor ray" + (" (and not with --show)" * show))
    else:
        from zoo_core.executors.ray_executor import require_ray

        require_ray()  # not installed: one line saying how, before anything is planned or imported
    registry = state.registry
    specs = registry.models_matching(model)
    if len(specs) != 1:
        names = ", ".join(s.label for s in specs[:5]) + (", ..." if len(specs) > 5 else "")
        raise ZooError(f"MODEL {model!r} matches {len(specs)} models ({names}); tune one model at a time")
    overrides = flag_overrides(flags)
    base = build_run_spec(registry, None, {}, set_values, overrides, seed=seed, base_model=specs[0])
    space = tuning.parse_space(registry, base, param_texts, set_values, overrides) if (param_texts or not show) \
        else ()
    if not base.data.val_fraction:
        raise ZooError("tuning scores each trial on the validation split, and data.val_fraction is 0: "
                       "hold some training reviews out, e.g. --set data.val_fraction=0.1")
    db_path = resolve_results_path(results_path, registry.settings)
    path = tuning.storage_path(db_path)
    if show:
        _show(tuning, base, space, metric if param_texts else _given(metric, "metric"), path, fmt)
        return

    from zoo_core.data import find_source

    origin = data_origin()
    find_source(base.data, registry.settings, origin=origin)  # missing or bad data: one line, before any import
    runs_dir = runs_folder(state, db_path, check=True)
    optuna = tuning.import_optuna()  # not installed: one line
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from zoo_core.results import ResultsDB

    db = ResultsDB(db_path)
    storage = tuning.open_storage(optuna, path)
    study = tuning.open_study(optuna, storage, base, space, metric, sampler, pruner)
    from zoo_core import ranking
    from zoo_core.data import load_dataset
    from zoo_core.training import enable_determinism, train

    if base.train.deterministic and executor == "local":
        enable_determinism()  # process-wide, so here at the program's start, never in the library (Ray: each worker)
    with signals.stoppable() as should_stop:  # Ctrl-C or SIGTERM: stop after the current batch, keep what finished
        def load_at_once(config):
            with should_stop.at_once():  # loading checks no stop request: a signal stops it at once
                return load_dataset(config, registry.settings, seed=ranking.DATA_SEED, progress=DATA_BARS,
                                    warn=warn, origin=origin)

        common = {"runs_dir": runs_dir, "load_dataset": load_at_once, "metric": metric, "storage": storage,
                  "should_stop": should_stop, "echo": echo_err}
        if executor == "local":
            click.echo(tuning.describe_study(study), err=True)
            outcome = tuning.tune(study, space, base, registry, db, trials, train=train,
                                  progress=TerminalProgress(EPOCH_BAR_WIDTH), **common)
        else:
            from zoo_core.executors.ray_executor import RayExecutor, RayPruning

            with should_stop.at_once():  # starting Ray takes seconds and checks no stop request
                # A cluster too small or out of reach: one line, before the study's.
                pool = RayExecutor(registry, address=address,
                                   cpus_per_run=CPUS_PER_RUN.default if cpus_per_run is None else cpus_per_run,
                                   gpus_per_run=GPUS_PER_RUN.default if gpus_per_run is None else gpus_per_run)
            click.echo(tuning.describe_study(study), err=True)
            with pool, RayPruning(pool, path, study, metric) as hooks:
                outcome = tuning.tune(study, space, base, registry, db, trials, executor=pool, trial_hooks=hooks,
                                      **common)
    for number in outcome.abandoned:
        click.echo(f"trial {number} of a process that died was marked failed", err=True)
    _print_trials(tuning, study, fmt)
    ran = len(outcome.ran)
    extra = ", ".join(f"{outcome.count(s)} {s}" for s in ("pruned", "diverged", "failed", "interrupted")
                      if outcome.count(s))
    summary = (f"{ran} trial{'s' * (ran != 1)} run now{f' ({extra})' if extra else ''}; "
               f"{tuning.counted(study)} of {trials} in study {study.study_name} in {path}")
    if outcome.interrupted or should_stop():
        click.echo(f"interrupted: {summary}; run the same command again to resume", err=True)
        raise SystemExit(should_stop.exit_status)
    click.echo(summary, err=True)
    if tuning.best_trial(study) is None:
        raise SystemExit(1)  # every trial failed: nothing to rank at


def _given(value, name: str):
    """``value`` if the option was given on the command line, else None (``--show``: any metric will do)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return value if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE else None


def _print_trials(tuning, study, fmt: str) -> None:
    """The trials table (stdout); for text formats the study's line before it and the best settings after."""
    headers, rows = tuning.trial_table(study)
    if fmt in MACHINE_FORMATS:
        click.echo(render(rows, headers, fmt))
        return
    click.echo(tuning.describe_study(study) + "\n")
    click.echo(render([[cell if cell is not None else "-" for cell in row] for row in rows], headers, fmt))
    click.echo("\n" + tuning.describe_best(study))


def _show(tuning, base, space, metric, path, fmt: str) -> None:
    """``zoo tune --show``."""
    optuna = tuning.import_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = tuning.open_storage(optuna, path, create=False)
    study = tuning.find_study(optuna, storage, base, space, metric) if storage is not None else None
    if study is None:
        which = "with this --param space and --metric" if space else "with these data and training settings"
        raise ZooError(f"no study of {base.model.label} {which} in {path}; start one with "
                       f"`zoo tune {base.model.label} --param ...`")
    _print_trials(tuning, study, fmt)
