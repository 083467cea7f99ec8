"""``zoo predict``: P(positive) and the label of each review, from a saved run."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import format_option, gather_reviews, load_scorer, results_option, runs_option
from zoo_core.tables import MACHINE_FORMATS, render


def _shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@cli.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("texts", nargs=-1)
@click.option("--file", "file_path", metavar="FILE", help="Reviews to score, one per line (- reads stdin).")
@format_option()
@results_option
@runs_option
@pass_state
def predict(state, run_ref, texts, file_path, fmt, results_path):
    """P(positive) and the label of each review, from a saved run.

    RUN is a run id (any unique prefix; see `zoo runs`), `best` (the top of the
    leaderboard) or a saved run's folder. An ensemble's id (`zoo ensemble`)
    gives the mean of its members' P(positive).

    \b
    Examples:
      zoo predict best "A wonderful, moving film."
      zoo predict 3fa2 "Dull." "Loved it!" --format json
      zoo predict best --file reviews.txt --format csv

    A --file line without a word gets label `empty` and no probability, so the
    output keeps one row per line.
    """
    from zoo_core.data import is_blank

    reviews = gather_reviews(texts, file_path, "predict")
    scorer = load_scorer(state, run_ref, results_path)
    blank = [is_blank(text) for text in reviews]
    probs = iter(scorer.predict_proba([t for t, b in zip(reviews, blank) if not b]))
    numeric = fmt in MACHINE_FORMATS
    rows = []
    for text, empty in zip(reviews, blank):
        p = None if empty else round(float(next(probs)), 4)
        label = "empty" if empty else "positive" if p >= 0.5 else "negative"
        rows.append([text if numeric else _shorten(text), p, label])
    click.echo(scorer.describe(), err=True)
    click.echo(render(rows, ["review", "p_positive", "label"], fmt))
