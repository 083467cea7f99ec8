"""``zoo train``: train one model on IMDB and print its learning curve and scores."""

from __future__ import annotations

import json
import math

import click

from zoo_core.cli import cli, pass_state, signals
from zoo_core.cli.options import (component_options, data_options, data_origin, flag_overrides, format_option,
                                  results_option, runs_folder, runs_option, train_options)
from zoo_core.cli.progress import DATA_BARS, EPOCH_BAR_WIDTH, TerminalProgress, echo_err, warn
from zoo_core.config import RunSpec
from zoo_core.errors import ZooError
from zoo_core.specs import build_run_spec, deterministic_ops
from zoo_core.tables import MACHINE_FORMATS, render

EXIT_NAN = 1
EPOCH_HEADERS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "seconds", "tokens/s"]


def plural(count: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe_lr(train) -> str:
    """``lr 0.001 (constant)`` or ``lr 0.001, cosine decay to 0 over 3 epochs``: the schedule of
    :func:`zoo_core.training.learning_rate`, which decays over every step of ``train.epochs`` epochs."""
    if train.lr_schedule == "constant":
        return f"lr {train.lr:g} (constant)"
    return f"lr {train.lr:g}, {train.lr_schedule} decay to 0 over {plural(train.epochs, 'epoch')}"


def describe_run(run: RunSpec) -> list[list[str]]:
    """Key/value rows saying exactly what will be trained."""
    spec, data, train = run.model, run.data, run.train
    params = "; ".join(f"{k}.{p}={v}" for k, vals in sorted(spec.params.items()) for p, v in vals.items())
    decay = f", weight decay {train.weight_decay:g}" if train.weight_decay else ""
    stopping = f"patience {train.patience} on {train.monitor}" if train.patience else "no early stopping"
    return [
        ["model", spec.combo + (f"  ({spec.name})" if spec.name else "")],
        ["params", params or "defaults"],
        ["data", f"{data.num_words} words, maxlen {data.maxlen}, {data.padding}-padding, {data.batching} batches, "
                 f"mask {'on' if data.mask else 'off'}" + (f", limit {data.limit}" if data.limit else "")],
        ["train", f"{plural(train.epochs, 'epoch')}"
                  + (f" of {plural(train.steps_per_epoch, 'step')}" if train.steps_per_epoch else "")
                  + f", batch {train.batch_size}, {train.optimizer} "
                  f"{describe_lr(train)}{decay}, clip {train.clip_norm:g}, {stopping}" + (", XLA" if train.jit else "")
                  + (", deterministic" if train.deterministic else "")
                  + (f", moving average of the weights (momentum {train.ema_momentum:g})" if train.ema_momentum else "")],
        ["seed", str(run.seed)],
    ]


def _number(value, digits: int, missing):
    """``value`` rounded, or ``missing`` for a value not measured (None, NaN: an empty or unscored split)."""
    if value is None or not math.isfinite(value):
        return missing
    return int(value) if digits == 0 else round(value, digits)


def epoch_rows(history: list[dict], missing="-") -> list[list]:
    """The per-epoch learning curve as table rows (see :data:`EPOCH_HEADERS`).

    A value not measured (NaN: e.g. no validation reviews) shows as ``missing``
    (``-``; None gives an empty csv cell); an epoch with no value at all is left out.
    """
    keys = (("train_loss", 4), ("train_accuracy", 4), ("val_loss", 4), ("val_accuracy", 4), ("val_auc", 4),
            ("seconds", 1), ("tokens_per_sec", 0))
    rows = [[h["epoch"]] + [_number(h.get(key), digits, missing) for key, digits in keys] for h in history]
    return [row for row in rows if any(cell != missing for cell in row[1:6])]


def score_rows(result, missing="-") -> list[list]:
    """Validation and test scores as table rows; a split that was not scored (an empty split, a run
    stopped before its evaluation) is left out."""
    rows = [[name] + [_number(m.get(key), 4, missing) for key in ("accuracy", "auc", "loss")]
            for name, m in (("validation", result.val), ("test", result.test))]
    return [row for row in rows if any(cell != missing for cell in row[1:])]


def status_line(result) -> str:
    """``status: completed; kept epoch 3``, saying what was kept once, whatever the message already says.

    ``status: early-stopped; kept epoch 2 (val_loss did not improve ...)``,
    ``status: interrupted during epoch 4; kept the last good weights``,
    ``status: nan; non-finite loss ... keeping the last weights that gave a finite loss ...``.
    """
    status, message = result.status, result.message
    head, rest = (message, "") if message.startswith(status) else (status, message)
    if "kept" in message or "keeping" in message:
        return f"status: {head}" + (f"; {rest}" if rest else "")
    kept = f"epoch {result.best_epoch}" if status in ("completed", "early-stopped") else "the last good weights"
    return f"status: {head}; kept {kept}" + (f" ({rest})" if rest else "")


def strict_json(value):
    """``value`` with NaN and infinities as None and NumPy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if hasattr(value, "item"):  # a NumPy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@cli.command()
@click.argument("model", required=False, metavar="[MODEL]")
@component_options
@data_options
@train_options
@click.option("--save", "save_dir", metavar="DIR", type=click.Path(file_okay=False),
              help="Also export the run (weights, vocabulary and spec) to DIR, a new or empty folder (then e.g. "
                   "`zoo evaluate ./DIR`).")
@click.option("--overwrite", is_flag=True,
              help="With --save: replace the saved run already in DIR (only its own files).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@format_option()
@results_option
@runs_option
@pass_state
def train(state, model, encoder, cell, aggregator, head, set_values, seed, save_dir, overwrite, quiet, fmt,
          results_path, **flags):
    """Train one model on IMDB; print its learning curve and validation and test scores.

    MODEL is a named model (`zoo models`); --encoder/--cell/--aggregator/--head
    pick or replace components (defaults: embedding, tanh, last, sigmoid1).
    Flags override --set, which overrides the model and registry.toml. The data
    is found by --data, $ZOO_DATA or registry.toml's search path.

    Every run is recorded in the results database (--results), exactly as
    `zoo rank` records its runs: spec, learning curves, scores, provenance,
    and its weights in the runs folder (--runs; default runs/ beside the
    database). `zoo runs`, `zoo leaderboard` and `zoo predict best` then see
    it; training the same model again records another run. --save DIR also
    exports the run to a folder of your own.

    A NaN or infinite loss stops the run (exit 1; recorded as diverged);
    Ctrl-C or SIGTERM stops it after the current batch (exit 130, or 143 for
    SIGTERM; recorded as interrupted), skipping the evaluation left. Both keep
    the last good weights, which are saved and which --save still exports; a
    second Ctrl-C stops at once.

    \b
    Examples:
      zoo train --encoder embedding --cell gru --aggregator mean-states --head sigmoid1 --epochs 2
      zoo train --encoder one-hot --cell tanh --aggregator last --head softmax2 --epochs 1
      zoo train elman-onehot                         # a named model from `zoo models`
      zoo train gru-mean --set cell.units=128 --set encoder.dropout=0.2 --lr 3e-4
      zoo train gru-mean --limit 2000 --epochs 1     # a quick try on 2000 reviews
      zoo train lstm-last --batching bucket --save runs/lstm-last  # reload: zoo evaluate ./runs/lstm-last
      zoo train gru-mean --set train.patience=3 --set train.monitor=val_accuracy --epochs 20
      zoo train gru-mean --epochs 12 --set train.steps_per_epoch=100 --set train.ema_momentum=0.99  # validate often, keep the average
      zoo train gru-mean --jit --set train.weight_decay=0.01 --set train.clip_norm=1
      zoo train gru-mean --optimizer rmsprop --seed 3 --set train.deterministic=true
      zoo train gru-mean --epochs 1 --results /tmp/try.sqlite   # a scratch database; weights in /tmp/runs/
      zoo train gru-mean --runs /scratch/zoo-runs     # weights elsewhere (or set $ZOO_RUNS)
    """
    components = {"encoder": encoder, "cell": cell, "aggregator": aggregator, "head": head}
    registry = state.registry
    run = build_run_spec(registry, model, components, set_values, flag_overrides(flags), seed)
    from zoo_core.data import find_source

    find_source(run.data, state.settings, origin=data_origin())  # missing or bad data: before describing the run
    if save_dir is not None:
        from zoo_core.runs import check_save_target, save_run

        check_save_target(save_dir, overwrite)  # fail before training, not after
    elif overwrite:
        raise ZooError("--overwrite goes with --save DIR")
    from zoo_core import ranking
    from zoo_core.results import ResultsDB, resolve_results_path

    db_path = resolve_results_path(results_path, state.settings)
    runs_dir = runs_folder(state, db_path, check=True)  # where the run is recorded: checked before training
    db = ResultsDB(db_path)
    text = fmt not in MACHINE_FORMATS
    if text:
        click.echo(render(describe_run(run), ["", ""], "plain"))

    from zoo_core.data import load_dataset
    from zoo_core.training import enable_determinism, train as train_model

    if deterministic_ops([run]):
        enable_determinism()  # process-wide, so here at the program's start, never in the library

    # The data zoo rank trains every seed on, so this run is the one `zoo rank` would record for its key.
    dataset = load_dataset(run.data, state.settings, seed=ranking.DATA_SEED,
                           progress=None if quiet else DATA_BARS, warn=warn, origin=data_origin())
    click.echo(f"data: {dataset.source}: {len(dataset.train)} train, {len(dataset.val)} validation, "
               f"{len(dataset.test)} test reviews; vocabulary {len(dataset.vocab)}", err=True)
    with signals.stoppable() as should_stop:  # a signal from here on stops the run and still saves it
        try:
            recorded = ranking.record_run(run, registry, db, runs_dir, lambda: dataset, fresh=True, train=train_model,
                                          progress=None if quiet else TerminalProgress(EPOCH_BAR_WIDTH),
                                          echo=None if quiet else echo_err, should_stop=should_stop)
        except ranking.RunFailed as failure:  # recorded as failed; the error itself is what the user needs
            raise failure.error from None
        classifier, result = recorded.model, recorded.result
        ended = {"nan": "diverged ", "interrupted": "interrupted "}.get(result.status, "")
        click.echo(f"recorded as {ended}run {recorded.run_id} in {db.path} (weights in {recorded.run_dir})",
                   err=True)
        if save_dir is not None:
            save_run(save_dir, classifier, dataset.vocab, run, result, overwrite=overwrite)
            click.echo(f"saved to {save_dir}", err=True)

    if fmt == "json":
        click.echo(json.dumps(strict_json({"run_id": recorded.run_id, **result.to_dict()}), indent=2))
    elif fmt == "csv":
        click.echo(render(epoch_rows(result.history, missing=None), EPOCH_HEADERS, fmt))
    else:
        click.echo(f"\n{result.params:,} trainable parameters, {result.wall_time:.1f} s\n")
        if epoch_rows(result.history):
            click.echo(render(epoch_rows(result.history), EPOCH_HEADERS, fmt))
        click.echo("\n" + status_line(result))
        scores = score_rows(result)
        click.echo(render(scores, ["", "accuracy", "auc", "loss"], fmt) if scores else
                   "no validation or test scores: the run stopped before they were measured")
    if result.status == "nan":
        click.get_current_context().exit(EXIT_NAN)
    if should_stop():  # also when the signal came after training's last check
        click.get_current_context().exit(should_stop.exit_status)
