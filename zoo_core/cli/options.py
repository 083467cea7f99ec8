"""Options shared by ``zoo train``, ``zoo rank``, ``zoo data`` ...: they all end in a RunSpec.

A flag overrides ``--set``, which overrides the named model and
``registry.toml``'s defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import click
from click.core import ParameterSource

from zoo_core.config import KINDS, SEED, DataConfig, ModelSpec, RunSpec, TrainConfig, settings_hparams
from zoo_core.errors import ZooError
from zoo_core.params import HParam

# Flags that map straight onto a DataConfig / TrainConfig field.
DATA_FLAGS = {
    "data": ("source", "Data location: a .tar.gz, an aclImdb/ folder or imdb.npz (env ZOO_DATA)."),
    "num_words": ("num_words", "Vocabulary size, including pad, start and UNK [default 20000]."),
    "maxlen": ("maxlen", "Longest sequence in tokens [default 200]."),
    "padding": ("padding", "pre or post [default pre]."),
    "truncating": ("truncating", "Cut long reviews at the pre or post end [default pre]."),
    "long": ("long", "Over-long training reviews: truncate or drop [default truncate]."),
    "split": ("split", "Validation split: movie (disjoint movies) or random [default movie]."),
    "batching": ("batching", "padded (to maxlen) or bucket (by length) [default padded]."),
    "limit": ("limit", "Use only N train and N test reviews, e.g. --limit 2000 (0: all)."),
}
TRAIN_FLAGS = {
    "epochs": ("epochs", "Training epochs [default from registry.toml]."),
    "batch_size": ("batch_size", "Examples per batch [default 64]."),
    "lr": ("lr", "Learning rate [default 0.001]."),
    "lr_schedule": ("lr_schedule", "constant, or cosine/linear decay to 0 over all epochs [default constant]."),
    "optimizer": ("optimizer", "adam, sgd or rmsprop [default adam]."),
    "jit": ("jit", "Compile the training step with XLA."),
}


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
    return Declared({p.name: p for p in settings_hparams(cls)}[field_name])


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
    for flag, (field_name, help_text) in reversed(DATA_FLAGS.items()):
        if flag in exclude:
            continue
        name = "--" + flag.replace("_", "-")
        func = click.option(name, flag, type=declared_type(DataConfig, field_name), default=None,
                            envvar="ZOO_DATA" if flag == "data" else None, help=help_text)(func)
    if "mask" in exclude:
        return func
    mask = click.option("--mask/--no-mask", "mask", default=None, help="Mask padded steps [default on].")
    return mask(func)


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
    for flag, (field_name, help_text) in reversed(TRAIN_FLAGS.items()):
        if only is not None and flag not in only:
            continue
        name = "--" + flag.replace("_", "-")
        if flag == "jit":
            func = click.option(name, flag, is_flag=True, default=None, help=help_text)(func)
        else:
            func = click.option(name, flag, type=declared_type(TrainConfig, field_name), default=None, help=help_text)(func)
    func = seed_option(func, "Random seed.")
    examples = "cell.units=128, encoder.dim=32, data.maxlen=500"
    func = click.option(
        "--set", "set_values", multiple=True, metavar="KEY=VALUE",
        help=f"Override any setting: {examples}, train.clip_norm=1. Repeatable." if only is None else
        f"Override a setting: {examples} (of train.*, only {', '.join(only)}). Repeatable.",
    )(func)
    return func


def seed_option(func, help_text: str):
    """Adds ``--seed``, checked against :data:`zoo_core.config.SEED`'s range."""
    return click.option("--seed", type=Declared(SEED), default=0, show_default=True, help=help_text)(func)


def component_options(func):
    """Adds ``--encoder --cell --aggregator --head``."""
    for kind in reversed(KINDS):
        func = click.option(f"--{kind}", kind, metavar="NAME", default=None,
                            help=f"The {kind} (see `zoo components {kind}`).")(func)
    return func


def parse_set_values(values: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["cell.units=128", "data.maxlen=500"]`` -> ``{"cell": {"units": "128"}, "data": {"maxlen": "500"}}``."""
    groups: dict[str, dict[str, str]] = {}
    sections = KINDS + ("data", "train")
    for item in values:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ZooError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. cell.units=128")
        if not value.strip():
            raise ZooError(f"--set {item!r}: {key.strip()!r} has no value (expected SECTION.KEY=VALUE)")
        if section not in sections:
            raise ZooError(f"--set {item!r}: unknown section {section!r} (sections: {', '.join(sections)})")
        groups.setdefault(section, {})[name] = value.strip()
    return groups


def _merge(cls, base, overrides: Mapping[str, Any]):
    values = dataclasses.asdict(base)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls.from_mapping(values)


def data_config(base: DataConfig, flags: Mapping[str, Any], overrides: Mapping[str, Any] = ()) -> DataConfig:
    """``base`` with ``--set data.*`` ``overrides``, then the :func:`data_options` flags, applied and validated.

    The overrides are validated before the flags apply, so a bad ``--set`` is
    an error even where a flag sets the same key.
    """
    values = {DATA_FLAGS[k][0]: v for k, v in flags.items() if k in DATA_FLAGS and v is not None}
    if flags.get("mask") is not None:
        values["mask"] = flags["mask"]
    return _merge(DataConfig, _merge(DataConfig, base, dict(overrides)), values)


def build_run_spec(registry, model: str | None, components: Mapping[str, str | None],
                   set_values: Iterable[str], flags: Mapping[str, Any], seed: int = 0,
                   base_model: ModelSpec | None = None) -> RunSpec:
    """Builds a validated RunSpec from a model name, component flags, ``--set`` and flags.

    Args:
        registry: The loaded registry (its settings hold the defaults).
        model: A named model, or None to mix components by flags.
        components: ``{kind: name or None}`` from ``--encoder`` etc.
        set_values: ``--set`` items.
        flags: Keyword arguments from :func:`data_options` and :func:`train_options`.
        seed: The run's seed.
        base_model: Used instead of ``model`` when given (e.g. a preset's entry).
    """
    settings = registry.settings
    # `is not None`, not truthiness: an empty name given is an error (the registry's), never the default.
    spec = base_model or (registry.model(model) if model is not None else None)
    chosen = {k: v for k, v in components.items() if v is not None}
    if spec is None:
        defaults = {"encoder": "embedding", "cell": "tanh", "aggregator": "last", "head": "sigmoid1"}
        spec = ModelSpec(**{**defaults, **chosen})
    else:
        spec = spec.replace(**chosen)
    groups = parse_set_values(set_values)
    for kind in KINDS:
        if kind in groups:
            spec = spec.with_params(kind, **groups[kind])
    spec = registry.validate_spec(spec)
    # Typed values: validate_spec parsed them; store them typed so the spec round-trips cleanly.
    from zoo_core.params import resolve

    typed = {}
    for kind in KINDS:
        given = spec.params_for(kind)
        if given:
            full = resolve(registry.get(kind, spec.component(kind)).obj.hparams, given, kind)
            typed[kind] = {k: full[k] for k in given}
    spec = spec.replace(params=typed)

    train_flags = {TRAIN_FLAGS[k][0]: v for k, v in flags.items() if k in TRAIN_FLAGS and v is not None}
    return RunSpec(
        model=spec,
        data=data_config(settings.data, flags, groups.get("data", {})),
        # --set first, validated on its own, so a flag for the same key cannot hide a bad value.
        train=_merge(TrainConfig, _merge(TrainConfig, settings.train, groups.get("train", {})), train_flags),
        seed=seed,
    )


def pick(kwargs: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The subset of ``kwargs`` named in ``names``."""
    return {k: kwargs[k] for k in names if k in kwargs}


ALL_FLAGS = tuple(DATA_FLAGS) + tuple(TRAIN_FLAGS) + ("mask",)
