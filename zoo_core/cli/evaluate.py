"""``zoo evaluate``: score a saved run on labelled reviews."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import format_option, load_scorer, results_option, runs_option
from zoo_core.tables import render


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

    RUN is a run id (any unique prefix; see `zoo runs`), `best` or a saved
    run's folder. An ensemble's id (`zoo ensemble`) scores the mean of its
    members' P(positive), its loss the binary cross-entropy of that mean.

    \b
    Examples:
      zoo evaluate best
      zoo evaluate 3fa2 --data my_reviews.tsv
    """
    from zoo_core.data import check_labelled, find_source, read_labelled
    from zoo_core.runs import check_labelled_file

    if data_path is not None:  # a bad --data: one line at once, not after TensorFlow's import (seconds)
        check_labelled(data_path)
        check_labelled_file(data_path)
    scorer = load_scorer(state, run_ref, results_path)
    path = data_path or find_source(scorer.data, state.settings)
    check_labelled_file(path)
    texts, labels = read_labelled(path)
    metrics = scorer.evaluate(texts, labels)
    rows = [[scorer.id, scorer.label, str(path), len(texts)] + [round(metrics[m], 4) for m in ("accuracy", "loss", "auc")]]
    click.echo(render(rows, ["run", "model", "data", "reviews", "accuracy", "loss", "auc"], fmt))
