"""Options and helpers shared by the commands: every reusable click decorator lives here.

The run-building flags (:func:`data_options`, :func:`train_options`,
:func:`component_options`) end in a RunSpec through :mod:`zoo_core.specs`: a
flag overrides ``--set``, which overrides the named model and
``registry.toml``'s defaults. Their help is derived from the settings'
declarations (:func:`zoo_core.config.setting`) and shows the default that
``registry.toml`` puts in force, so neither can drift from the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from zoo_core.config import KINDS, SEED, DataConfig, TrainConfig, settings_hparams
from zoo_core.errors import ZooError
from zoo_core.params import HParam
from zoo_core.tables import TABLE_FORMATS, render, wrap_caption

# Flags that map straight onto a DataConfig / TrainConfig field: flag -> field.
DATA_FLAGS = {"data": "source", "num_words": "num_words", "maxlen": "maxlen", "padding": "padding",
              "truncating": "truncating", "long": "long", "split": "split", "batching": "batching",
              "limit": "limit"}
TRAIN_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "lr_schedule": "lr_schedule",
               "optimizer": "optimizer", "jit": "jit"}
#: Every flag that overrides a setting: the data and training flags and ``--mask/--no-mask``.
SETTING_FLAGS = {**DATA_FLAGS, **TRAIN_FLAGS, "mask": "mask"}


class Declared(click.ParamType):
    """A flag parsed and range-checked by its setting's declaration (an :class:`HParam`).

    A bad value is a :class:`ZooError` naming the flag and the valid range, so
    it reaches the user as one line, like a bad ``--set``.
    """

    def __init__(self, hparam: HParam):
        self.hparam = hparam
        self.name = {int: "integer", float: "float", str: "text"}.get(hparam.type, hparam.type.__name__)

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(self.hparam.choices) + "]" if self.hparam.choices else self.name.upper()

    def convert(self, value, param, ctx):
        label = param.opts[0] if param is not None else None
        if isinstance(value, str):
            value = self.hparam.parse(value, label)
        return self.hparam.validate(value, label=label)


def declared_type(cls, field_name: str) -> Declared:
    """The click type of a flag for the setting ``cls.field_name`` (e.g. ``TrainConfig``, ``"lr"``)."""
    return Declared(_hparam(cls, field_name))


def _hparam(cls, field_name: str) -> HParam:
    return {p.name: p for p in settings_hparams(cls)}[field_name]


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


class SettingOption(click.Option):
    """A flag for one setting, whose help is its declaration's ``help`` plus the default in force.

    The default shown is the one ``registry.toml`` (``--registry``,
    ``$ZOO_REGISTRY`` or the checkout's) gives that setting, read when the
    help is shown; the declaration's own default if that file cannot be read.
    An empty default (``source``: the search path) is not shown.
    """

    def __init__(self, *args, setting: tuple[type, str], extra_help: str = "", **kwargs):
        self.setting = setting
        cls, field_name = setting
        hp = _hparam(cls, field_name)
        kwargs.setdefault("help", hp.help[:1].upper() + hp.help[1:] + extra_help)
        super().__init__(*args, **kwargs)

    def get_help_record(self, ctx):
        record = super().get_help_record(ctx)
        default = self._default_in_force(ctx)
        if record is None or default in ("", None):
            return record
        names, text = record
        return names, f"{text} [default {_shown(default)}]."

    def _default_in_force(self, ctx):
        cls, field_name = self.setting
        section = "data" if cls is DataConfig else "train"
        try:
            from zoo_core.cli import _state_from

            return getattr(getattr(_state_from(ctx).settings, section), field_name)
        except (ZooError, AttributeError):  # a broken registry.toml: its error comes when a command reads it
            return _hparam(cls, field_name).default


#: Data flags that only matter to a model (how batches are padded, masked): commands that never build
#: one (``zoo data ...``) leave them out, so they cannot be given and silently ignored.
MODEL_DATA_FLAGS = ("batching", "mask")


def data_options(func=None, *, exclude: Iterable[str] = ()):
    """Adds the data flags but those named in ``exclude``; the command receives them as keyword arguments.

    Used bare (``@data_options``) or with ``exclude`` (``@data_options(exclude=MODEL_DATA_FLAGS)``): a
    command offers only the flags it uses, so click refuses the others (exit 2).
    """
    if func is None:
        return lambda f: data_options(f, exclude=exclude)
    for flag, field_name in reversed(DATA_FLAGS.items()):
        if flag in exclude:
            continue
        name = "--" + flag.replace("_", "-")
        func = click.option(name, flag, cls=SettingOption, setting=(DataConfig, field_name),
                            type=declared_type(DataConfig, field_name), default=None,
                            envvar="ZOO_DATA" if flag == "data" else None,
                            extra_help=" (env ZOO_DATA)" if flag == "data" else "")(func)
    if "mask" in exclude:
        return func
    return click.option("--mask/--no-mask", "mask", cls=SettingOption, setting=(DataConfig, "mask"),
                        default=None)(func)


def data_origin() -> str | None:
    """Where the running command's ``--data`` came from: ``"--data"``, ``"ZOO_DATA"``, or None if from neither.

    The ``--data`` option is the one reader of ``$ZOO_DATA``; this tells the data
    loader which of the two to name when the path holds no data.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.params.get("data") is None:
        return None
    return {ParameterSource.COMMANDLINE: "--data",
            ParameterSource.ENVIRONMENT: "ZOO_DATA"}.get(ctx.get_parameter_source("data"))


def train_options(func=None, *, only: Iterable[str] | None = None):
    """Adds the training flags (or just those named in ``only``), ``--seed`` and ``--set``.

    Used bare (``@train_options``) or as ``@train_options(only=("batch_size",))`` by a command that
    trains nothing: it offers only the flags it uses, so click refuses the others (exit 2).
    """
    if func is None:
        return lambda f: train_options(f, only=only)
    for flag, field_name in reversed(TRAIN_FLAGS.items()):
        if only is not None and flag not in only:
            continue
        name = "--" + flag.replace("_", "-")
        if flag == "jit":
            func = click.option(name, flag, cls=SettingOption, setting=(TrainConfig, field_name), is_flag=True,
                                default=None)(func)
        else:
            func = click.option(name, flag, cls=SettingOption, setting=(TrainConfig, field_name),
                                type=declared_type(TrainConfig, field_name), default=None)(func)
    func = seed_option("Random seed.")(func)
    examples = "cell.units=128, encoder.dim=32, data.maxlen=500"
    func = click.option(
        "--set", "set_values", multiple=True, metavar="KEY=VALUE",
        help=f"Override any setting: {examples}, train.clip_norm=1. Repeatable." if only is None else
        f"Override a setting: {examples} (of train.*, only {', '.join(only)}). Repeatable.",
    )(func)
    return func


def flag_overrides(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The setting flags among a command's keyword arguments, as ``{field: value}`` for :mod:`zoo_core.specs`.

    ``--data`` becomes ``source``; flags not given (None) are left out.
    """
    return {field: flags[flag] for flag, field in SETTING_FLAGS.items() if flags.get(flag) is not None}


def seed_option(help_text: str):
    """``--seed``, checked against :data:`zoo_core.config.SEED`'s range; ``help_text`` says what it seeds."""
    return click.option("--seed", type=Declared(SEED), default=0, show_default=True, help=help_text)


def component_options(func):
    """Adds ``--encoder --cell --aggregator --head``."""
    for kind in reversed(KINDS):
        func = click.option(f"--{kind}", kind, metavar="NAME", default=None,
                            help=f"The {kind} (see `zoo components {kind}`).")(func)
    return func


def format_option(default: str = "simple"):
    """A ``--format`` option accepting every table format (:data:`zoo_core.tables.TABLE_FORMATS`)."""
    return click.option(
        "--format", "fmt", default=default, show_default=True, type=click.Choice(TABLE_FORMATS),
        metavar="FORMAT", help="Table format: any tabulate format (plain, simple, github, grid, latex, html, ...), csv or json.",
    )


def download_option(func):
    """``--download``: fetch Stanford's archive when no data is found."""
    return click.option("--download", is_flag=True,
                        help="If no data is found, download Stanford's archive (84 MB) into ~/.keras/datasets.")(func)


# -- the results database and the runs folder -------------------------------------------------------------
def results_option(func):
    """``--results PATH``: the results database."""
    return click.option(
        "--results", "results_path", metavar="PATH",
        help="Results database (default: $ZOO_RESULTS, else [paths] results in registry.toml).",
    )(func)


def _remember_runs_flag(ctx, param, value):
    from zoo_core.cli import AppState

    if value is not None:
        ctx.find_object(AppState).runs_flag = value
    return value


def runs_option(func):
    """``--runs DIR``, kept on the AppState rather than passed as a parameter: every command that reads or
    writes runs' weights takes it alike, whatever its own parameters."""
    return click.option(
        "--runs", metavar="DIR", expose_value=False, callback=_remember_runs_flag,
        help="Runs folder, where each run's weights are (default: $ZOO_RUNS, else [paths] runs in registry.toml, "
             "else runs/ beside the results database).",
    )(func)


def runs_folder(state, results_path, check: bool = False):
    """The runs folder for the results database at ``results_path``; with ``check``, refused (one line) if it
    cannot be written."""
    from zoo_core.runs import check_runs_dir, resolve_runs_dir

    folder, source = resolve_runs_dir(state.runs_flag, state.settings, results_path)
    return check_runs_dir(folder, source) if check else folder


def open_db(state, results_path):
    """The results database, opened read-only: reading works in a read-only folder, and writes nothing."""
    from zoo_core.results import ResultsDB, resolve_results_path

    return ResultsDB(resolve_results_path(results_path, state.settings), create=False, readonly=True)


# -- output ---------------------------------------------------------------------------------------------
def table_text(table, fmt: str) -> str:
    """A rendered table, its caption first."""
    text = render(table.rows, table.headers, fmt)
    return wrap_caption(table.caption, fmt) + "\n\n" + text if table.caption else text


def emit(table, fmt: str, output: str | None) -> None:
    """Prints a table (caption first for text formats) or writes it to ``output``."""
    write_text(table_text(table, fmt), output)


def write_text(text: str, output: str | None) -> None:
    """Prints ``text`` or writes it to ``output``."""
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


def load_saved_run(state, run_ref: str, results_path):
    """``(model, vocab, run_spec, run_id)`` for a run id, id prefix, ``best`` or a saved-run folder.

    An ensemble (``zoo ensemble``) has no model of its own: its id is refused in one line, and ``best``
    names the top run that is not one (see :func:`load_scorer` for commands that can use ensembles).
    """
    from zoo_core.runs import load_run

    directory, run_id = _resolve(state, run_ref, results_path, ensembles=False)[:2]
    model, vocab, run = load_run(directory, state.registry)
    return model, vocab, run, run_id


def load_scorer(state, run_ref: str, results_path):
    """What scores reviews for RUN: a :class:`zoo_core.ensemble.Member` (one saved run: a run id, id prefix,
    ``best`` or a saved-run folder) or, for an ensemble's id (or ``best`` when an ensemble tops the
    leaderboard), a :class:`zoo_core.ensemble.Ensemble` of its members. Both have ``id``, ``label``,
    ``data``, ``describe()``, ``predict_proba(texts)`` and ``evaluate(texts, labels)``."""
    from zoo_core.ensemble import Member, load_ensemble
    from zoo_core.runs import load_run

    directory, run_id, db = _resolve(state, run_ref, results_path, ensembles=True)
    if directory is None:  # an ensemble: its members' weights
        return load_ensemble(db.get(run_id), db, runs_folder(state, db.path), state.registry)
    model, vocab, run = load_run(directory, state.registry)
    return Member(run_id, model, vocab, run)


def _resolve(state, run_ref: str, results_path, ensembles: bool):
    """``(directory or None for an ensemble, run id, the results database or None)`` for RUN."""
    from zoo_core.runs import resolve_run, saved_run_folder

    if not run_ref.strip():  # '' would be the working directory, or a prefix of every run id
        raise ZooError("RUN is empty: give a run id (see `zoo runs`), best, or a saved run's folder")
    folder = saved_run_folder(run_ref)
    if folder is not None:  # a saved run's folder, e.g. from `zoo train --save DIR`
        return folder, folder.name, None
    db = open_db(state, results_path)
    directory, run_id = resolve_run(run_ref, db, runs_folder(state, db.path), ensembles=ensembles)
    return directory, run_id, db


def gather_reviews(texts: Iterable[str], file_path: str | None, verb: str) -> list[str]:
    """The reviews given on the command line, then ``--file``'s lines (a blank line keeps its place).

    Raises:
        ZooError: a review on the command line is blank, or there is nothing to ``verb``.
    """
    from zoo_core.data import is_blank
    from zoo_core.runs import read_reviews

    texts = list(texts)
    for number, text in enumerate(texts, start=1):
        if is_blank(text):
            raise ZooError(f"review {number} on the command line is empty ({text!r}): give a text with words in it")
    reviews = texts + (read_reviews(file_path) if file_path else [])
    if not reviews:
        raise ZooError(f"nothing to {verb}: give review texts or --file FILE")
    return reviews


#: Resources of one Ray task (`zoo rank` and `zoo tune` with --executor ray), checked as declared.
CPUS_PER_RUN = HParam("cpus_per_run", float, 1.0, "CPUs each Ray task holds", low=0.0, low_open=True)
GPUS_PER_RUN = HParam("gpus_per_run", float, 0.0, "GPUs each Ray task holds", low=0.0)


def executor_options(unit: str, stays_here: str = ""):
    """``--executor``, ``--address``, ``--cpus-per-run`` and ``--gpus-per-run``, as ``zoo rank`` and ``zoo tune``
    share them; ``unit`` is what one Ray task trains (``run``, ``trial``), ``stays_here`` what the help adds
    about the driver."""
    from zoo_core.executors import EXECUTORS

    options = [
        click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
                     help=f"Where the {unit}s train: local (one after another, in this process) or ray (as Ray "
                          f"tasks, several at once, on this machine or a cluster{stays_here}: docs/CLUSTER.md; "
                          "pip install -e '.[ray]')."),
        click.option("--address", metavar="ADDRESS",
                     help="With --executor ray: the Ray cluster to run on (auto, or HEAD:6379 as `ray start "
                          "--head` prints); default: a local Ray instance on this machine's CPUs."),
        click.option("--cpus-per-run", type=Declared(CPUS_PER_RUN), default=None, metavar="N",
                     help=f"With --executor ray: CPUs each {unit} holds (fractions allowed) [default 1]."),
        click.option("--gpus-per-run", type=Declared(GPUS_PER_RUN), default=None, metavar="N",
                     help=f"With --executor ray: GPUs each {unit} holds [default 0]."),
    ]

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate
