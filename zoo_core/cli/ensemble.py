"""``zoo ensemble``: average the P(positive) of recorded runs, score it, and record it as a run of its own."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import format_option, results_option, runs_folder, runs_option
from zoo_core.cli.progress import DATA_BARS, echo_err, warn
from zoo_core.errors import ZooError
from zoo_core.tables import MACHINE_FORMATS, render

HEADERS = ["run", "model", "seed", "val_accuracy", "val_auc", "test_accuracy", "test_auc", "test_loss"]


@cli.command()
@click.argument("run_refs", nargs=-1, metavar="RUN...")
@click.option("--model", "model_label", metavar="NAME",
              help="Instead of RUNs: every finished run of the model NAME (each seed) in one setup.")
@click.option("--setup", "setup_id", metavar="ID",
              help="With --model: the setup to take its runs from (an id or prefix, see `zoo leaderboard "
                   "--setup all`; default: that of its most recently finished run).")
@click.option("--name", metavar="NAME", help="The ensemble's name on the leaderboard [default: ensemble(<models>)].")
@click.option("--data", "data", metavar="PATH",
              help="Read the reviews from PATH instead of the data source each run recorded; it must be the data "
                   "the runs were trained on (a copy elsewhere). $ZOO_DATA is not read: the runs know their data.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines or bars.")
@format_option()
@results_option
@runs_option
@pass_state
def ensemble(state, run_refs, model_label, setup_id, name, data, quiet, fmt, results_path):
    """Average the P(positive) of recorded runs and record the ensemble as a run of its own.

    Each RUN (a run id or unique prefix; see `zoo runs`) is loaded with its
    weights and scores the validation and test reviews as it did in training;
    the ensemble's P(positive) is the arithmetic mean of theirs,
    p(x) = (p_1(x) + ... + p_K(x)) / K. Its accuracy (p > 0.5 is positive),
    ROC AUC and loss (the binary cross-entropy of p) are computed as every
    run's are, and printed beside each member's.

    The members must be 2 or more finished runs whose weights are kept, scored
    on the same reviews: the same data, limit, split and val_fraction. Their
    models, seeds, num_words, maxlen, batching and training settings may
    differ; each reads the reviews its own way.

    The ensemble is recorded as a finished run of its own: `zoo runs` lists
    it, `zoo leaderboard` ranks it as its own row in its (first) member's
    setup, and `zoo predict ID` and `zoo evaluate ID` average its members.
    Making the same ensemble again records it again; the leaderboard shows the latest.

    \b
    Examples:
      zoo ensemble 3f2a 71c0 9b44                      # three runs (seeds, or different models)
      zoo ensemble --model ngram-bigru-max             # every finished seed of one model
      zoo ensemble 3f2a 71c0 --name gru+lstm --format github
      zoo predict <ensemble id> "A wonderful, moving film."
    """
    from zoo_core import ensemble as ens
    from zoo_core.results import ResultsDB, resolve_results_path

    if model_label is not None and run_refs:
        raise ZooError("give RUN ids or --model NAME, not both")
    if setup_id is not None and model_label is None:
        raise ZooError("--setup goes with --model")
    if model_label is not None and not model_label.strip():
        raise ZooError("--model is empty: give a model name (see `zoo leaderboard`)")
    if data is not None and not str(data).strip():
        raise ZooError("--data needs a path, got an empty one (leave it out to read each run's own data)")
    label = None if name is None else ens.check_name(name)
    path = resolve_results_path(results_path, state.settings)
    if not path.exists():
        raise ZooError(f"no results yet: {path} does not exist (run `zoo rank` or `zoo train` first)")
    reader = ResultsDB(path, create=False, readonly=True)
    if model_label is not None:
        records = ens.runs_of_model(reader, model_label, setup_id)
        if len(records) < 2:
            raise ZooError(f"model {model_label!r} has only 1 finished run with its weights in that setup "
                           f"(run {records[0].id}): an ensemble needs 2 or more")
    else:
        records = ens.select_members(reader, run_refs)
    ens.check_comparable(records)
    db = ResultsDB(path, create=False)  # checked before any model is loaded: it must take the new row
    runs_dir = runs_folder(state, db.path)

    measured = ens.score(records, db, runs_dir, state.registry, state.settings, source=data,
                         origin=None if data is None else "--data", progress=None if quiet else DATA_BARS,
                         echo=None if quiet else echo_err, warn=warn)
    run_id, spec = ens.record(db, measured, label)
    click.echo(render(_rows(measured, run_id, spec.model.label, fmt), HEADERS, fmt))
    from zoo_core.leaderboard import setup_key

    where = db.get(run_id)
    setup = setup_key(where)
    note = "" if ens.same_setup(records) else " (its members come from different setups: it is ranked in the first's)"
    click.echo(f"recorded as run {run_id} in {db.path}: {len(records)} members, ranked in setup {setup}{note}; "
               f"`zoo predict {run_id} TEXT` averages them", err=True)


def _rows(measured, run_id: str, label: str, fmt: str) -> list[list]:
    """One row per member and one for the ensemble: validation and test accuracy, AUC, and test loss."""
    import math

    digits = None if fmt in MACHINE_FORMATS else 4

    def number(value):
        if not math.isfinite(value):  # an AUC of a split with one class: no number, in every format
            return None
        return value if digits is None else round(value, digits)

    rows = []
    for record, member, scores in zip(measured.records, measured.members, measured.member_scores):
        rows.append([record.id, member.label, member.run.seed, *_scores(scores, number)])
    rows.append([run_id, label, "-" if digits is not None else None, *_scores(measured.scores, number)])
    return rows


def _scores(scores, number) -> list:
    return [number(scores["val"]["accuracy"]), number(scores["val"]["auc"]), number(scores["test"]["accuracy"]),
            number(scores["test"]["auc"]), number(scores["test"]["loss"])]
