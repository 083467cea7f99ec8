"""``zoo train``: train one model on IMDB and print its learning curve and scores."""

from __future__ import annotations

import json
import math

import click

from zoo_core.cli import cli, pass_state, progress_bar, signals, warn
from zoo_core.cli.options import (
    ALL_FLAGS, build_run_spec, component_options, data_options, data_origin, pick, train_options,
)
from zoo_core.config import RunSpec
from zoo_core.errors import ZooError
from zoo_core.tables import format_option, render

EXIT_NAN = 1
EPOCH_HEADERS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "seconds", "tokens/s"]


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
        ["train", f"{train.epochs} epochs, batch {train.batch_size}, {train.optimizer} lr {train.lr:g}{decay}, "
                  f"clip {train.clip_norm:g}, {stopping}" + (", XLA" if train.jit else "")
                  + (", deterministic" if train.deterministic else "")],
        ["seed", str(run.seed)],
    ]


def epoch_rows(history: list[dict]) -> list[list]:
    """The per-epoch learning curve as table rows (see :data:`EPOCH_HEADERS`)."""
    return [[h["epoch"], round(h["train_loss"], 4), round(h["train_accuracy"], 4), round(h["val_loss"], 4),
             round(h["val_accuracy"], 4), round(h["val_auc"], 4), round(h["seconds"], 1),
             int(h["tokens_per_sec"]) if math.isfinite(h["tokens_per_sec"]) else None] for h in history]


def score_rows(result) -> list[list]:
    return [[name, round(m["accuracy"], 4), round(m["auc"], 4), round(m["loss"], 4)]
            for name, m in (("validation", result.val), ("test", result.test))]


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


def _saver():
    try:
        from zoo_core.runs import save_run
    except ModuleNotFoundError as err:
        if err.name != "zoo_core.runs":
            raise
        raise ZooError("--save needs zoo_core.runs, which this installation lacks") from None
    return save_run


@cli.command()
@click.argument("model", required=False, metavar="[MODEL]")
@component_options
@data_options
@train_options
@click.option("--save", "save_dir", metavar="DIR", type=click.Path(file_okay=False),
              help="Save weights, vocabulary and spec to DIR, a new or empty folder (then e.g. "
                   "`zoo evaluate ./DIR`).")
@click.option("--overwrite", is_flag=True,
              help="With --save: replace the saved run already in DIR (only its own files).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@format_option()
@pass_state
def train(state, model, encoder, cell, aggregator, head, set_values, seed, save_dir, overwrite, quiet, fmt,
          **flags):
    """Train one model on IMDB; print its learning curve and validation and test scores.

    MODEL is a named model (`zoo models`); --encoder/--cell/--aggregator/--head
    pick or replace components (defaults: embedding, tanh, last, sigmoid1).
    Flags override --set, which overrides the model and registry.toml. The data
    is found by --data, $ZOO_DATA or registry.toml's search path.

    A NaN or infinite loss stops the run (exit 1); Ctrl-C or SIGTERM stops it
    after the current batch (exit 130, or 143 for SIGTERM), skipping the
    evaluation left. Both keep the last good weights, which --save still
    saves; a second Ctrl-C stops at once.

    \b
    Examples:
      zoo train --encoder embedding --cell gru --aggregator mean-states --head sigmoid1 --epochs 2
      zoo train --encoder one-hot --cell tanh --aggregator last --head softmax2 --epochs 1
      zoo train elman-onehot                         # a named model from `zoo models`
      zoo train gru-mean --set cell.units=128 --set encoder.dropout=0.2 --lr 3e-4
      zoo train gru-mean --limit 2000 --epochs 1     # a quick try on 2000 reviews
      zoo train lstm-last --batching bucket --save runs/lstm-last  # reload: zoo evaluate ./runs/lstm-last
      zoo train gru-mean --set train.patience=3 --set train.monitor=val_accuracy --epochs 20
      zoo train gru-mean --jit --set train.weight_decay=0.01 --set train.clip_norm=1
      zoo train gru-mean --optimizer rmsprop --seed 3 --set train.deterministic=true
    """
    components = {"encoder": encoder, "cell": cell, "aggregator": aggregator, "head": head}
    registry = state.registry
    run = build_run_spec(registry, model, components, set_values, pick(flags, ALL_FLAGS), seed)
    from zoo_core.data import find_source

    find_source(run.data, state.settings, origin=data_origin())  # missing data: say so before describing the run
    save_run = _saver() if save_dir is not None else None  # fail before training, not after
    if save_dir is not None:
        from zoo_core.runs import check_save_target

        check_save_target(save_dir, overwrite)
    elif overwrite:
        raise ZooError("--overwrite goes with --save DIR")
    text = fmt not in ("json", "csv")
    if text:
        click.echo(render(describe_run(run), ["", ""], "plain"))

    from zoo_core.data import load_dataset
    from zoo_core.training import train as train_model

    dataset = load_dataset(run.data, state.settings, seed=run.seed, progress=None if quiet else progress_bar,
                           warn=warn, origin=data_origin())
    click.echo(f"data: {dataset.source}: {len(dataset.train)} train, {len(dataset.val)} validation, "
               f"{len(dataset.test)} test reviews; vocabulary {len(dataset.vocab)}", err=True)
    with signals.stoppable() as should_stop:  # a signal from here on stops the run and still saves it
        classifier, result = train_model(run, registry, dataset, progress=not quiet, should_stop=should_stop)
        if save_dir is not None:
            save_run(save_dir, classifier, dataset.vocab, run, result, overwrite=overwrite)
            click.echo(f"saved to {save_dir}", err=True)

    if fmt == "json":
        click.echo(json.dumps(strict_json(result.to_dict()), indent=2))
    elif fmt == "csv":
        click.echo(render(epoch_rows(result.history), EPOCH_HEADERS, fmt))
    else:
        click.echo(f"\n{result.params:,} trainable parameters, {result.wall_time:.1f} s\n")
        if result.history:
            click.echo(render(epoch_rows(result.history), EPOCH_HEADERS, fmt))
        finished = result.status in ("completed", "early-stopped")
        kept = f"epoch {result.best_epoch}" if finished else "the last good weights"
        click.echo(f"\nstatus: {result.status}; kept {kept}" + (f" ({result.message})" if result.message else ""))
        click.echo(render(score_rows(result), ["", "accuracy", "auc", "loss"], fmt))
    if result.status == "nan":
        click.get_current_context().exit(EXIT_NAN)
    if should_stop():  # also when the signal came after training's last check
        click.get_current_context().exit(should_stop.exit_status)
