"""Building a :class:`~zoo_core.config.RunSpec` from a model name, components, ``--set`` items and overrides.

The layering of values, lowest first: ``registry.toml``'s ``[data]`` and
``[train]`` defaults (and :data:`DEFAULT_MIX` for components), the named model
(or preset entry), ``--set SECTION.KEY=VALUE`` items, then explicit overrides
(the CLI's flags). Every layer is validated by the settings' own declarations
(:func:`zoo_core.config.setting`), so a bad ``--set`` is an error even where a
flag sets the same key.

The command line (:mod:`zoo_core.cli.options`) and the rank planner
(:mod:`zoo_core.ranking`) both build their runs here; nothing in this module
knows about click.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from zoo_core.config import KINDS, DataConfig, ModelSpec, RunSpec, TrainConfig
from zoo_core.errors import ZooError

#: The components of a run that names no model and leaves a kind out (``zoo train --cell gru``).
DEFAULT_MIX = {"encoder": "embedding", "cell": "tanh", "aggregator": "last", "head": "sigmoid1"}

DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataConfig))
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# One flat mapping of overrides serves both sections, so their field names must not collide.
assert not set(DATA_FIELDS) & set(TRAIN_FIELDS), "DataConfig and TrainConfig share a field name"


def parse_set_values(values: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["cell.units=128", "data.maxlen=500"]`` -> ``{"cell": {"units": "128"}, "data": {"maxlen": "500"}}``.

    Raises:
        ZooError: an item that is not ``SECTION.KEY=VALUE``, has no value, or
            names an unknown section (sections: the four kinds, data, train).
    """
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


def merge(cls, base, overrides: Mapping[str, Any]):
    """``base`` (a ``cls`` instance) with the non-None ``overrides`` applied and validated by ``cls.from_mapping``."""
    values = dataclasses.asdict(base)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls.from_mapping(values)


def data_config(base: DataConfig, overrides: Mapping[str, Any] = (), set_values: Mapping[str, Any] = ()) -> DataConfig:
    """``base`` with ``--set data.*`` values (``set_values``), then ``overrides``, applied and validated.

    Args:
        base: The settings to start from (``registry.toml``'s, or a saved run's).
        overrides: ``{field: value}`` of :class:`DataConfig` fields (None: not
            given); keys of other sections are ignored.
        set_values: ``{field: text}`` from ``--set data.field=text``.

    The ``set_values`` are validated before the overrides apply, so a bad
    ``--set`` is an error even where an override sets the same key.
    """
    values = {k: v for k, v in dict(overrides).items() if k in DATA_FIELDS and v is not None}
    return merge(DataConfig, merge(DataConfig, base, dict(set_values)), values)


def train_config(base: TrainConfig, overrides: Mapping[str, Any] = (), set_values: Mapping[str, Any] = ()) -> TrainConfig:
    """Like :func:`data_config`, for :class:`TrainConfig`."""
    values = {k: v for k, v in dict(overrides).items() if k in TRAIN_FIELDS and v is not None}
    return merge(TrainConfig, merge(TrainConfig, base, dict(set_values)), values)


def build_run_spec(registry, model: str | None, components: Mapping[str, str | None],
                   set_values: Iterable[str], overrides: Mapping[str, Any] = (), seed: int = 0,
                   base_model: ModelSpec | None = None) -> RunSpec:
    """Builds a validated RunSpec from a model name, component choices, ``--set`` items and overrides.

    Args:
        registry: The loaded registry (its settings hold the defaults).
        model: A named model, or None to mix components (:data:`DEFAULT_MIX`
            fills the kinds not chosen).
        components: ``{kind: name or None}`` (the CLI's ``--encoder`` etc.).
        set_values: ``--set`` items, ``SECTION.KEY=VALUE``.
        overrides: ``{field: value}`` of :class:`DataConfig` and
            :class:`TrainConfig` fields, applied last; None means not given.
        seed: The run's seed.
        base_model: Used instead of ``model`` when given (e.g. a preset's entry).

    Raises:
        ZooError: an unknown model or component, or a bad value (one line).
        ValueError: an override naming no data or training setting (a caller's
            mistake, e.g. ``data`` for ``source``), rather than silently dropped.
    """
    unknown = sorted(set(dict(overrides)) - set(DATA_FIELDS) - set(TRAIN_FIELDS))
    if unknown:
        raise ValueError(f"overrides name no data or training setting: {', '.join(unknown)} "
                         "(the data's path is 'source')")
    settings = registry.settings
    # `is not None`, not truthiness: an empty name given is an error (the registry's), never the default.
    spec = base_model or (registry.model(model) if model is not None else None)
    chosen = {k: v for k, v in components.items() if v is not None}
    spec = ModelSpec(**{**DEFAULT_MIX, **chosen}) if spec is None else spec.replace(**chosen)
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
    return RunSpec(
        model=spec,
        data=data_config(settings.data, overrides, groups.get("data", {})),
        # --set first, validated on its own, so an override of the same key cannot hide a bad value.
        train=train_config(settings.train, overrides, groups.get("train", {})),
        seed=seed,
    )


def deterministic_ops(runs: Iterable[RunSpec]) -> bool:
    """Whether ``runs`` ask for deterministic TensorFlow ops (``train.deterministic``); False for no runs.

    The program must then call :func:`zoo_core.training.enable_determinism`
    once, before training any of them.

    Raises:
        ZooError: some ask for it and some do not. Determinism is process-wide
            and cannot be turned off, so the others would not train as they say.
    """
    wanted = {run.train.deterministic for run in runs}
    if len(wanted) > 1:
        raise ZooError("the runs mix deterministic and non-deterministic ops (train.deterministic): TensorFlow's "
                       "determinism holds for the whole process, so train them in separate commands")
    return wanted == {True}
