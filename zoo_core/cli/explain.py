"""``zoo explain``: how each token moved a saved model's prediction, and how the prediction evolved."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import gather_reviews, load_saved_run, results_option, runs_option
from zoo_core.errors import ZooError
from zoo_core.explain import DEFAULT_STEPS, MAX_STEPS, METHODS
from zoo_core.tables import render, terminal_width

FORMATS = ("text", "json", "csv")
CSV_HEADERS = ["review", "index", "token", "id", "kind", "contribution", "running_p"]


def use_colour(choice: str) -> bool:
    """``always``/``never``, or for ``auto``: stdout is a terminal and ``$NO_COLOR`` is unset or empty."""
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _ansi_background(rgb: tuple[int, int, int]) -> str:
    """The nearest colour of the xterm 256-colour cube as a background, black text on it."""
    r, g, b = (round(c / 255 * 5) for c in rgb)
    return f"\x1b[48;5;{16 + 36 * r + 6 * g + b}m\x1b[30m"


def coloured_text(explanation, colour: bool, width: int | None) -> str:
    """The review as the model saw it, wrapped to ``width``; each token on a red (against) to green (for)
    background scaled to the review's largest |contribution| when ``colour``."""
    from zoo_core.explain import contribution_rgb

    scale = max((abs(t.contribution) for t in explanation.tokens), default=0.0)
    pieces = [(t.shown, contribution_rgb(t.contribution, scale)) for t in explanation.tokens]
    cut = explanation.cut
    if cut:
        note = (f"[… {cut} tokens cut]" if explanation.truncating == "pre" else f"[{cut} tokens cut …]", None)
        pieces.insert(0 if explanation.truncating == "pre" else len(pieces), note)
    lines, line, used = [], [], 0
    for word, rgb in pieces:
        if line and width and used + 1 + len(word) > width:
            lines.append(" ".join(line))
            line, used = [], 0
        line.append(f"{_ansi_background(rgb)}{word}\x1b[0m" if colour and rgb else word)
        used += len(word) + (1 if used else 0)
    lines.append(" ".join(line))
    return "\n".join(lines)


def token_table(explanation) -> str:
    rows = [["" if t.index is None else t.index, t.shown, t.id, round(t.contribution, 4), round(t.running_p, 4)]
            for t in explanation.tokens]
    return render(rows, ["#", "token", "id", "contribution", "running P"], "simple")


def _check_html_target(path: str) -> Path:
    """Refuses an --html FILE that cannot be written, before any work."""
    target = Path(path).expanduser()
    if not path.strip():
        raise ZooError("--html needs a file name, got an empty one")
    if target.is_dir():
        raise ZooError(f"--html {path}: it is a folder; give a file name, e.g. {Path(path) / 'explain.html'}")
    if not target.parent.is_dir():
        raise ZooError(f"--html {path}: the folder {target.parent} does not exist")
    return target


@cli.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("texts", nargs=-1)
@click.option("--file", "file_path", metavar="FILE", help="Reviews to explain, one per line (- reads stdin); "
              "a blank line is skipped.")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True,
              help="exact (mean-logits, or mean-states, with an affine head), integrated-gradients, or auto: "
                   "exact where the model allows it.")
@click.option("--steps", type=click.IntRange(1, MAX_STEPS), default=DEFAULT_STEPS, show_default=True,
              help="Integrated gradients: trapezoid intervals from the zero baseline to the review.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text: coloured review and a token table; json: one object per review; csv: one row per token.")
@click.option("--html", "html_path", metavar="FILE", help="Also write a self-contained HTML page (no network).")
@click.option("--color", "colour", type=click.Choice(("auto", "always", "never")), default="auto",
              show_default=True, help="Colour the tokens (auto: when stdout is a terminal and NO_COLOR is unset).")
@results_option
@runs_option
@pass_state
def explain(state, run_ref, texts, file_path, method, steps, fmt, html_path, colour, results_path):
    """How each token moved a saved model's prediction, and P(positive) after each token.

    RUN is a run id (any unique prefix; see `zoo runs`), `best` (the top of the
    leaderboard) or a saved run's folder. Reviews are encoded and scored as
    `zoo predict` scores them (start token, truncation, padding, mask).

    Each token's contribution is its share of the score: the logit z of a
    sigmoid1 head, or z1 - z0 of a softmax2 head (P(positive) = sigmoid of
    it). With mean-logits, or mean-states, and an affine head (every built-in
    one) the share is exact: score = sum of (w . h_t)/T over the T steps + the
    head's bias. Other models get integrated gradients (Sundararajan et al.
    2017) with respect to the encoder's output, from a zero encoder output,
    with --steps trapezoid intervals; their completeness gap |sum -
    (score - baseline score)| is printed. The running P of a token is the head
    applied to that step's output alone (for a bidirectional cell it has also
    read the tokens after it). An unknown word shows as <unk:word>; a
    truncated part is noted.

    \b
    Examples:
      zoo explain best "A wonderful, moving film."
      zoo explain 3fa2 "Dull, but the ending was great." --method integrated-gradients --steps 128
      zoo explain best --file reviews.txt --format json > explained.json
      zoo explain best "Loved it." --html explained.html
    """
    from zoo_core.data import is_blank

    reviews = gather_reviews(texts, file_path, "explain")
    target = _check_html_target(html_path) if html_path is not None else None
    numbered = [(n, text) for n, text in enumerate(reviews, start=1) if not is_blank(text)]
    for n, text in enumerate(reviews, start=1):
        if is_blank(text):
            click.echo(f"review {n} (line {n - len(texts)} of {file_path}) is empty: skipped", err=True)

    model, vocab, run, run_id = load_saved_run(state, run_ref, results_path)
    from zoo_core.explain import EXACT, Explainer, html_page

    explainer = Explainer(model, vocab, run.data, method, steps)
    how = "exact" if explainer.method == EXACT else f"integrated gradients, {steps} steps"
    click.echo(f"run {run_id}: {run.model.label}, seed {run.seed}; {how}", err=True)
    explanations = []
    with click.progressbar(numbered, label="explaining", file=sys.stderr) if len(numbered) > 1 \
            else contextlib.nullcontext(numbered) as items:
        for _, text in items:
            explanations.append(explainer.explain(text))
    numbers = [n for n, _ in numbered]
    if fmt == "json":
        out = [{"review": n, "run": run_id, "model": run.model.label, **e.to_dict()}
               for n, e in zip(numbers, explanations)]
        click.echo(json.dumps(out, indent=2))
    elif fmt == "csv":
        rows = [[n, "" if t.index is None else t.index, t.text, t.id, t.kind, t.contribution, t.running_p]
                for n, e in zip(numbers, explanations) for t in e.tokens]
        click.echo(render(rows, CSV_HEADERS, "csv"))
    else:
        coloured = use_colour(colour)
        width = terminal_width() or 100
        for i, (n, e) in enumerate(zip(numbers, explanations)):
            if i:
                click.echo()
            click.echo(f"review {n}: {e.summary()}")
            click.echo(coloured_text(e, coloured, width), color=coloured)
            for note in e.notes:
                click.echo(f"note: {note}")
            click.echo()
            click.echo(token_table(e))
    if target is not None:
        page = html_page(explanations, f"zoo explain: run {run_id}", f"{run.model.label}, seed {run.seed}; {how}",
                         [f"review {n}" for n in numbers])
        try:
            target.write_text(page, encoding="utf-8")
        except OSError as err:
            raise ZooError(f"cannot write --html {html_path}: {err.strerror or err}") from None
        click.echo(f"wrote {html_path}", err=True)
