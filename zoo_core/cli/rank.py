"""``zoo rank``: train every matching model once per seed under identical settings, and rank them."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state, signals
from zoo_core.cli.options import (CPUS_PER_RUN, GPUS_PER_RUN, data_options, data_origin, emit, executor_options,
                                  flag_overrides, format_option, results_option, runs_folder, runs_option,
                                  train_options)
from zoo_core.cli.progress import DATA_BARS, EPOCH_BAR_WIDTH, TerminalProgress, echo_err, warn
from zoo_core.config import SEED
from zoo_core.errors import ZooError
from zoo_core.specs import deterministic_ops
from zoo_core.tables import render


@cli.command()
@click.argument("patterns", nargs=-1)
@click.option("--preset", metavar="NAME", help="Rank a preset from registry.toml (default: quick, if no PATTERN).")
@click.option("--seeds", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Seeds per model: --seed, --seed+1, ...")
@data_options
@train_options
@results_option
@runs_option
@click.option("--tuned", is_flag=True,
              help="Train each model at its own tuned settings: the best trial of its latest `zoo tune` study "
                   "with the same data and training settings (optuna.sqlite beside the results database).")
@click.option("--tuned-limit", type=click.IntRange(0), default=None, metavar="N",
              help="With --tuned: take the settings from the studies tuned with --limit N (tune on a subset, "
                   "rank on all the data); the other data and training settings must still match.")
@executor_options("run")
@click.option("--dry-run", is_flag=True, help="List the runs it would train, and which already finished.")
@format_option()
@pass_state
def rank(state, patterns, preset, seeds, results_path, tuned, tuned_limit, dry_run, fmt, seed, set_values, executor,
         address, cpus_per_run, gpus_per_run, **flags):
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

    --tuned ranks each model at the settings `zoo tune` found best for it with
    the same data and training settings (the leaderboard's setup and
    hyperparameters columns show them), trained afresh with these seeds and
    scored on the test split; a model never tuned is one error line.

    With --executor ray each (model, seed) is a Ray task holding
    --cpus-per-run CPUs (and --gpus-per-run GPUs), so several train at once:
    on a local Ray instance, or on the cluster at --address. The data is
    prepared here once and sent through Ray's object store; results and
    weights come back and are recorded here, as they finish. A task that
    raises, or whose worker dies, is retried twice, then recorded failed.
    Ctrl-C cancels the tasks in flight (recorded interrupted; the same
    command trains them again) and exits 130.

    \b
    Examples:
      zoo rank                                        # the quick preset
      zoo rank --preset seed-grid --limit 2000 --epochs 1
      zoo rank 'gru*' '*/lstm/*' --seeds 3
      zoo rank embedding/gru/max-states/sigmoid1 one-hot/lstm/last/softmax2
      zoo rank --preset seed-grid --set cell.units=32 --results grid.sqlite   # weights in ./runs/
      zoo rank gru-mean --seeds 3 --runs /scratch/zoo-runs
      zoo rank gru-mean lstm-last --tuned --seeds 3 --limit 5000   # after `zoo tune` of each, same settings
      zoo rank --preset seed-grid --executor ray --cpus-per-run 1          # a local Ray instance
      zoo rank --preset seed-grid --seeds 3 --executor ray --address auto  # the cluster `ray start` made
    """
    from zoo_core import ranking
    from zoo_core.leaderboard import default_run
    from zoo_core.results import ResultsDB, resolve_results_path

    if executor != "ray":
        ray_only = {"--address": address, "--cpus-per-run": cpus_per_run, "--gpus-per-run": gpus_per_run}
        given = [flag for flag, value in ray_only.items() if value is not None]
        if given:
            raise ZooError(f"{', '.join(given)}: only with --executor ray")
    elif not dry_run:
        from zoo_core.executors.ray_executor import require_ray

        require_ray()  # not installed: one line saying how, before anything is planned or imported
    if tuned_limit is not None and not tuned:
        raise ZooError("--tuned-limit only applies with --tuned")
    if seed + seeds - 1 > SEED.high:
        raise ZooError(f"--seed {seed} --seeds {seeds} runs past the largest seed, {SEED.high}")
    registry = state.registry
    runs = ranking.plan_runs(registry, patterns, preset, range(seed, seed + seeds), set_values, flag_overrides(flags))
    db_path = resolve_results_path(results_path, registry.settings)
    if tuned:
        from zoo_core.tuning import storage_path, tuned_runs

        runs, notes = tuned_runs(registry, runs, storage_path(db_path), study_limit=tuned_limit)  # untuned: 1 line
        for note in notes:
            echo_err(note)
    deterministic = deterministic_ops(runs)  # a mixed plan: one line, before anything else
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
    # Imports TensorFlow (seconds): here a signal stops it at once.
    from zoo_core.executors import make_executor
    from zoo_core.training import enable_determinism, train

    if deterministic and executor == "local":
        enable_determinism()  # process-wide, so here at the program's start, never in the library (Ray: each worker)
    with signals.stoppable() as should_stop:  # Ctrl-C or SIGTERM: stop after the current batch, keep what finished
        # Loading data checks no stop request, so a signal stops it at once.
        def load_at_once(config, settings, seed=0, progress=None):
            with should_stop.at_once():
                return load_dataset(config, settings, seed=seed, progress=DATA_BARS if progress else None,
                                    warn=warn, origin=origin)

        progress = TerminalProgress(EPOCH_BAR_WIDTH)
        if executor == "local":
            options = {"train": train, "progress": progress, "echo": echo_err}
        else:
            options = {"address": address,
                       "cpus_per_run": CPUS_PER_RUN.default if cpus_per_run is None else cpus_per_run,
                       "gpus_per_run": GPUS_PER_RUN.default if gpus_per_run is None else gpus_per_run}
        with should_stop.at_once():  # starting Ray takes seconds and checks no stop request
            pool = make_executor(executor, registry, **options)
        with pool:
            outcome = ranking.rank(runs, registry, db, runs_dir=runs_dir, should_stop=should_stop,
                                   load_dataset=load_at_once, progress=progress, echo=echo_err, executor=pool)
    table = ranking.leaderboard_of(db, runs, fmt, default_run(registry.settings.data, registry.settings.train))
    if table is not None:
        click.echo()
        emit(table, fmt, None)
    click.echo(outcome.summary(db.path), err=True)
    if outcome.interrupted or should_stop():
        raise SystemExit(should_stop.exit_status)
    if outcome.failed or outcome.missing:
        raise SystemExit(1)
