"""The component registry, fed by pluggy plugins.

In the style of timm: :meth:`Registry.register`, :meth:`Registry.list` (with
fnmatch filters), :meth:`Registry.create`, and an error naming the closest
known names. Every entry remembers the plugin that registered it, so
``zoo components`` and ``zoo plugins`` can say who registered what.

Plugins come from the modules listed in ``registry.toml`` (the built-ins in
``plugins/``) and from installed distributions in the ``rnn_zoo`` entry-point
group; both load the same way. ``$ZOO_PLUGINS`` (or ``zoo --plugins``) keeps
only the plugins whose names match its comma-separated fnmatch patterns.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import importlib.metadata
import itertools
import os
import traceback
from collections.abc import Iterable, Sequence
from typing import Any

import pluggy

from zoo_core import hookspecs
from zoo_core.config import KINDS, ModelSpec
from zoo_core.errors import DuplicateNameError, UnknownNameError, ZooError
from zoo_core.settings import Preset, Settings, load_settings

ENTRY_POINT_GROUP = "rnn_zoo"
ALL_KINDS = KINDS + ("model",)
_HOOKS = {
    "encoder": "zoo_register_encoders",
    "cell": "zoo_register_cells",
    "aggregator": "zoo_register_aggregators",
    "head": "zoo_register_heads",
    "model": "zoo_register_models",
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered thing: a component class or a named :class:`ModelSpec`."""

    kind: str
    name: str
    obj: Any
    plugin: str

    @property
    def description(self) -> str:
        return getattr(self.obj, "description", "") or ""


@dataclasses.dataclass
class PluginInfo:
    """What ``zoo plugins`` shows for one plugin."""

    name: str
    source: str  # "registry.toml" or "entry point (distribution)"
    version: str = ""
    status: str = "loaded"  # loaded | failed | disabled
    error: str = ""
    registered: dict[str, list[str]] = dataclasses.field(default_factory=dict)


class Registry:
    """Registered components and models, by kind and name."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in ALL_KINDS}
        self._aliases: dict[str, dict[str, str]] = {k: {} for k in ALL_KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        self.plugin_manager: pluggy.PluginManager | None = None

    # -- registration -------------------------------------------------
    def register(self, kind: str, obj: Any, plugin: str = "<code>") -> Entry:
        """Registers a component class or a named model.

        Raises:
            ZooError: if another plugin already registered the name.
        """
        if kind not in ALL_KINDS:
            raise ZooError(f"unknown kind {kind!r} (kinds: {', '.join(ALL_KINDS)})")
        if kind == "model":
            obj = obj if isinstance(obj, ModelSpec) else ModelSpec.from_mapping(obj)
            if not obj.name:
                raise ZooError(f"plugin {plugin!r} registered a model without a name")
        else:
            expected = getattr(obj, "kind", None)
            if expected != kind or not getattr(obj, "name", ""):
                raise ZooError(f"plugin {plugin!r} registered {obj!r} as a {kind}, but it is not a named {kind} class")
        name = obj.name
        existing = self._entries[kind].get(name) or self._entries[kind].get(self._aliases[kind].get(name, ""))
        if existing:
            raise DuplicateNameError(
                f"{kind} {name!r} is registered twice: by plugin {existing.plugin!r} and by plugin {plugin!r}"
            )
        entry = Entry(kind, name, obj, plugin)
        self._entries[kind][name] = entry
        for alias in getattr(obj, "aliases", ()):
            self._aliases[kind].setdefault(alias, name)
        return entry

    # -- lookup -------------------------------------------------------
    def list(self, kind: str, patterns: str | Sequence[str] = "*") -> list[str]:
        """Sorted names of ``kind`` matching any fnmatch pattern."""
        if isinstance(patterns, str):
            patterns = [patterns]
        names = sorted(self._entries[kind])
        if kind == "model":
            # A pattern may also match a model's combination (e.g. "*/gru/*").
            return [n for n in names if any(
                fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(self._entries[kind][n].obj.combo, p) for p in patterns
            )]
        return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]

    def entries(self, kind: str) -> list[Entry]:
        return [self._entries[kind][n] for n in sorted(self._entries[kind])]

    def get(self, kind: str, name: str) -> Entry:
        """The entry called ``name`` (or an alias of it).

        Raises:
            UnknownNameError: naming the closest known names.
        """
        table = self._entries[kind]
        name = self._aliases[kind].get(name, name)
        if name not in table:
            listing = "zoo models" if kind == "model" else f"zoo components {kind}"
            raise UnknownNameError(kind, name, list(table) + list(self._aliases[kind]), f"run `{listing}` to list them all")
        return table[name]

    def canonical(self, kind: str, name: str) -> str:
        return self.get(kind, name).name

    def create(self, kind: str, name: str, *args: Any, **params: Any):
        """Builds component ``name`` of ``kind`` with validated hyperparameters."""
        cls = self.get(kind, name).obj
        if getattr(cls, "wants_registry", False):
            params["registry"] = self  # e.g. a wrapper cell finding a plugin's inner cell
        return cls(*args, **params)

    def model(self, name: str) -> ModelSpec:
        return self.get("model", name).obj

    def validate_spec(self, spec: ModelSpec) -> ModelSpec:
        """Checks every component exists and every hyperparameter is valid.

        Returns:
            The spec with canonical component names (aliases resolved).
        """
        from zoo_core.params import resolve

        names = {k: self.canonical(k, spec.component(k)) for k in KINDS}
        for kind in KINDS:
            cls = self.get(kind, names[kind]).obj
            resolve(cls.hparams, spec.params_for(kind), f"{kind} {names[kind]!r}")
        return spec.replace(**names)

    def preset(self, name: str) -> Preset:
        presets = self.settings.presets if self.settings else {}
        if name not in presets:
            raise UnknownNameError("preset", name, presets, "presets live in registry.toml")
        return presets[name]

    def expand_preset(self, preset: Preset) -> list[ModelSpec]:
        """The model specs a preset stands for, in a stable order."""
        specs: list[ModelSpec] = []
        if preset.grid:
            for combo in itertools.product(*(preset.grid[k] for k in KINDS)):
                spec = ModelSpec(*combo, params={k: dict(v) for k, v in preset.params.items()})
                specs.append(self.validate_spec(spec))
        for pattern in preset.models:
            specs.extend(self.models_matching(pattern))
        return specs

    def models_matching(self, pattern: str) -> list[ModelSpec]:
        """Named models matching ``pattern``, or the ad-hoc mix it spells out.

        ``pattern`` is a model name, an fnmatch pattern on names or
        combinations (``'*/gru/*'``), or a literal combination
        ``encoder/cell/aggregator/head`` of registered components, which need
        not be a named model.

        Raises:
            UnknownNameError: nothing matches; names the closest models, or
                the unknown component of a combination.
        """
        names = self.list("model", pattern)
        if names:
            return [self.model(n) for n in names]
        parts = pattern.split("/")
        if len(parts) == len(KINDS) and not any(ch in pattern for ch in "*?["):
            return [self.validate_spec(ModelSpec(*parts))]
        self.get("model", pattern)  # raises with the closest names
        return []

    # -- plugins ------------------------------------------------------
    def load_plugins(self, modules: Iterable[str], only: Sequence[str] | None = None,
                     entry_points: bool = True) -> None:
        """Loads plugin modules and entry points, and runs their register hooks.

        A plugin that fails to import or register is recorded as failed with
        its error; the others keep working. Duplicate names are an error.

        Args:
            modules: Module names from ``registry.toml``.
            only: fnmatch patterns; plugins whose names match none are disabled.
            entry_points: Whether to load installed ``rnn_zoo`` distributions.
        """
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        self.plugin_manager = pm
        candidates: list[tuple[str, str, str, Any]] = []  # name, source, version, loader
        for module in modules:
            candidates.append((module, "registry.toml", "", lambda m=module: importlib.import_module(m)))
        if entry_points:
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist else "?"
                version = ep.dist.version if ep.dist else ""
                candidates.append((ep.name, f"entry point ({dist})", version, ep.load))

        for name, source, version, loader in candidates:
            info = PluginInfo(name=name, source=source, version=version)
            self.plugins[name] = info
            if only and not any(fnmatch.fnmatchcase(name, p) for p in only):
                info.status = "disabled"
                continue
            try:
                plugin = loader()
                if not version:
                    info.version = getattr(plugin, "__version__", "") or _zoo_version()
                pm.register(plugin, name=name)
            except Exception as err:  # noqa: BLE001 - any plugin error is reported, not fatal
                info.status, info.error = "failed", _one_line(err)
                continue
            self._register_from(name, info)

    def _register_from(self, plugin_name: str, info: PluginInfo) -> None:
        plugin = self.plugin_manager.get_plugin(plugin_name)
        collected: list[tuple[str, Any]] = []
        try:
            for kind, hook_name in _HOOKS.items():
                hook = getattr(plugin, hook_name, None)
                if hook is None:
                    continue
                for obj in hook() or ():
                    collected.append((kind, obj))
        except Exception as err:  # noqa: BLE001
            info.status, info.error = "failed", _one_line(err)
            self.plugin_manager.unregister(name=plugin_name)
            return
        for kind, obj in collected:
            try:
                entry = self.register(kind, obj, plugin_name)
            except DuplicateNameError:
                raise
            except ZooError as err:
                info.status, info.error = "failed", str(err)
                continue
            info.registered.setdefault(kind, []).append(entry.name)

    def add_commands(self, cli) -> None:
        """Lets every loaded plugin add click commands to ``cli``."""
        if self.plugin_manager is None:
            return
        for impl in self.plugin_manager.hook.zoo_register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as err:  # noqa: BLE001
                info = self.plugins.get(impl.plugin_name)
                if info:
                    info.status, info.error = "failed", _one_line(err)

    def failed_plugins(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.status == "failed"]


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip().replace("\n", " ")
    if isinstance(err, SyntaxError) and err.filename:
        text += f" ({err.filename}:{err.lineno})"
    elif err.__traceback__ is not None:
        frame = traceback.extract_tb(err.__traceback__)[-1]
        text += f" ({os.path.basename(frame.filename)}:{frame.lineno})"
    return text


def _zoo_version() -> str:
    from zoo_core import __version__

    return __version__


def plugin_filter(explicit: str | None = None) -> list[str] | None:
    """The fnmatch patterns from ``--plugins`` or ``$ZOO_PLUGINS``, if any."""
    text = explicit if explicit is not None else os.environ.get("ZOO_PLUGINS")
    if not text:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


def build_registry(registry_file: str | None = None, plugins: str | None = None,
                   entry_points: bool = True, settings: Settings | None = None) -> Registry:
    """Loads ``registry.toml`` (unless ``settings`` already holds it), its plugins and
    installed plugins, and named models."""
    settings = settings or load_settings(registry_file)
    registry = Registry(settings)
    registry.load_plugins(settings.plugin_modules, plugin_filter(plugins), entry_points)
    for spec in settings.models.values():
        registry.register("model", spec, plugin="registry.toml")
    return registry
