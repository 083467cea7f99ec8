"""``zoo diagnose``: how much gradient reaches each time step (vanishing gradients, slow starts)."""

from __future__ import annotations

import dataclasses

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import (component_options, data_options, data_origin, flag_overrides, format_option,
                                  load_saved_run, results_option, runs_option, train_options)
from zoo_core.cli.progress import DATA_BARS, warn
from zoo_core.errors import ZooError
from zoo_core.specs import build_run_spec, data_config, parse_set_values
from zoo_core.tables import MACHINE_FORMATS, render


#: The training settings diagnose uses: it trains nothing, so epochs, learning rate, optimizer... have no
#: effect and are not offered (click refuses them), and ``--set train.*`` takes only these.
USED_TRAIN_FLAGS = ("batch_size",)


@cli.command()
@click.argument("model", required=False, metavar="[MODEL]")
@component_options
@data_options
@train_options(only=USED_TRAIN_FLAGS)
@click.option("--steps", type=click.IntRange(1, 100_000), default=None, metavar="T",
              help="Time steps per review (sets --maxlen) [default: maxlen, 200].")
@click.option("--output", "-o", metavar="PNG", type=click.Path(dir_okay=False),
              help="Write the plot here (e.g. grads.png).")
@click.option("--rows", type=click.IntRange(2, 10_000), default=20, show_default=True,
              help="Steps shown in the table (evenly spaced, first and last included).")
@click.option("--run", "run_ref", metavar="RUN",
              help="Use a saved run's trained weights (an id from `zoo runs`, a prefix, best, or a folder) "
                   "instead of fresh ones.")
@results_option
@runs_option
@format_option()
@pass_state
def diagnose(state, model, encoder, cell, aggregator, head, set_values, seed, steps, output, rows, fmt, run_ref,
             results_path, **flags):
    """Measure ||dL/dh_t||, the gradient reaching every time step t, for one batch.

    The model is freshly initialised with --seed, as at the start of training,
    or, with --run, holds a saved run's trained weights (and its data settings,
    which the data flags, --steps and --batch-size may still change). The batch is drawn
    from the training split. Each row of the table is
    the mean over the reviews that have a real token at step t (with
    --padding pre, the default, reviews end at the last step, where the loss
    is read). A ratio first/last far below 1 means the earliest tokens barely
    reach the loss: vanishing gradients, a slow start.

    --cell takes a comma-separated list to compare cells on the same batch.

    \b
    Examples:
      zoo diagnose --cell tanh,gru,lstm --output grads.png
      zoo diagnose elman-onehot --steps 100 --batch-size 32
      zoo diagnose --encoder embedding --cell irnn --aggregator last --steps 400 --set cell.units=128
      zoo diagnose gru-mean --format github --rows 10
      zoo diagnose --run best --output trained.png   # the top run's trained weights
    """
    flags = flag_overrides(flags)  # {field: value}; the fields diagnose reads are named as their flags
    unused = sorted(set(parse_set_values(set_values).get("train", {})) - set(USED_TRAIN_FLAGS))
    if unused:
        raise ZooError(f"zoo diagnose trains nothing, so --set train.{unused[0]} would have no effect "
                       f"(of the training settings it uses only {', '.join(USED_TRAIN_FLAGS)})")
    if steps is not None:
        if flags.get("maxlen") is not None:
            raise ZooError("--steps sets --maxlen: give one of them")
        flags["maxlen"] = steps
    cells = [c.strip() for c in cell.split(",") if c.strip()] if cell is not None else [None]
    if not cells:
        raise ZooError("--cell got no cell names")
    registry = state.registry
    saved = None
    if run_ref is not None:
        if any(v is not None for v in (model, encoder, cell, aggregator, head)) or set_values:
            raise ZooError("--run diagnoses the saved run's own model: drop MODEL, --encoder, --cell, "
                           "--aggregator, --head and --set")
        classifier, vocab, saved_run, run_id = load_saved_run(state, run_ref, results_path)
        data = data_config(saved_run.data, flags)  # e.g. --data where the data is now, --steps
        train = dataclasses.replace(saved_run.train, batch_size=flags.get("batch_size") or saved_run.train.batch_size)
        runs = [dataclasses.replace(saved_run, data=data, train=train)]
        saved = classifier, vocab, run_id
    else:
        runs = []
        for name in cells:
            components = {"encoder": encoder, "cell": name, "aggregator": aggregator, "head": head}
            runs.append(build_run_spec(registry, model, components, set_values, flags, seed))

    from zoo_core.data import find_source, load_dataset

    origin = data_origin()
    find_source(runs[0].data, state.settings, origin=origin)  # missing or bad data: before TensorFlow's import
    from zoo_core import diagnose as diag
    from zoo_core.model import Classifier
    import keras

    data = runs[0].data
    dataset = load_dataset(data, state.settings, seed=seed, warn=warn, origin=origin,
                           progress=DATA_BARS if fmt not in MACHINE_FORMATS else None)
    batch = next(iter(dataset.train.batches(runs[0].train.batch_size, shuffle=True, seed=seed)), None)
    if batch is None:
        raise ZooError("the training split is empty: no batch to diagnose")
    if saved is not None:
        classifier, vocab, run_id = saved
        if vocab != dataset.vocab:
            raise ZooError(f"run {run_id} was trained with another vocabulary than this data gives "
                           f"({len(vocab)} against {len(dataset.vocab)} words): diagnose it on its own data")
        label = f"{runs[0].model.combo} (run {run_id})"
        profiles = [diag.profile(classifier, batch, use_mask=data.mask, label=label)]
    else:
        profiles = []
        for run in runs:
            keras.utils.set_random_seed(run.seed)  # the same initial weights as `zoo train --seed`
            classifier = Classifier(run.model, registry, len(dataset.vocab))
            classifier.encoder.adapt(dataset.train)  # what training would learn first (e.g. an n-gram vocabulary)
            label = run.model.combo if len(runs) == 1 else run.model.cell
            profiles.append(diag.profile(classifier, batch, use_mask=data.mask, label=label))

    headers, body = diag.table(profiles, rows)
    spec = runs[0].model
    combo = spec.combo if len(runs) == 1 else "/".join((spec.encoder, "{" + ",".join(cells) + "}",
                                                        spec.aggregator, spec.head))
    if fmt not in MACHINE_FORMATS:
        click.echo(f"||dL/dh_t|| on one batch of {len(batch.labels)} training reviews, "
                   f"{profiles[0].steps} steps ({data.padding}-padding), {combo}\n")
    click.echo(render(body, headers, fmt))
    if fmt not in MACHINE_FORMATS:
        click.echo()
        for p in profiles:
            click.echo(f"{p.label}: loss {p.loss:.4f}, first/last real step {p.decay():.3g}")
    if output:
        click.echo(f"wrote {diag.plot(profiles, output, f'||dL/dh_t||: {combo}')}", err=True)
