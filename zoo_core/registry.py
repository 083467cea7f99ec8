"""The component registry, fed by pluggy plugins.

In the style of timm: :meth:`Registry.register`, :meth:`Registry.list` (with
fnmatch filters), :meth:`Registry.create`, and an error naming the closest
known names. Every entry remembers the plugin that registered it, so
``zoo components`` and ``zoo plugins`` can say who registered what.

Plugins come from the modules listed in ``registry.toml`` and from installed
distributions in the ``rnn_zoo`` entry-point group; both load the same way.
The built-ins are plugins too: each of ``zoo_core.encoders``, ``zoo_core.cells``,
``zoo_core.aggregators`` and ``zoo_core.heads`` registers its own classes with
an ``@hookimpl`` beside them, and ``zoo_plugins.models`` and ``zoo_plugins.ngrams``
add named models and an encoder. pluggy calls the hooks: a function not
marked ``@zoo_core.hookimpl`` is never called, and one whose name is no hook
makes its plugin fail (``pm.check_pending()``). ``$ZOO_PLUGINS`` (or
``zoo --plugins``) keeps only the plugins whose names match its
comma-separated fnmatch patterns; the ``zoo_core`` modules, the zoo's own
components, always load.
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import importlib
import importlib.metadata
import itertools
import os
import time
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pluggy

from zoo_core import hookspecs, plugin_checks
from zoo_core.config import KINDS, ModelSpec
from zoo_core.errors import DuplicateNameError, UndeclaredParamError, UnknownNameError, ZooError
from zoo_core.settings import DEFAULT_REGISTRY, Preset, Settings, load_settings

ENTRY_POINT_GROUP = "rnn_zoo"
SLOW_PLUGIN_SECONDS = 2.0  # a plugin loading slower than this is named on stderr
ALL_KINDS = KINDS + ("model",)
# Module names an older registry.toml may list, and the modules that replaced them.
RENAMED_MODULES = {
    "zoo_plugins.builtin": ("zoo_core.encoders", "zoo_core.cells", "zoo_core.aggregators", "zoo_core.heads"),
}
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
    """What ``zoo plugins`` shows for one plugin.

    Attributes:
        name: The plugin's key: its module (``registry.toml``) or entry-point
            name, qualified as ``distribution:name`` where two plugins share a name.
        source: ``"registry.toml"`` or ``"entry point (distribution)"``.
        version: The distribution's or the module's version.
        status: ``loaded``, ``failed`` (see ``errors``) or ``disabled``.
        errors: One line per problem; a failed plugin may still have
            registered its valid components.
        registered: Names it registered, by kind (``command`` too).
        load_seconds: How long its import and register hooks took.
    """

    name: str
    source: str
    version: str = ""
    status: str = "loaded"
    errors: list[str] = dataclasses.field(default_factory=list)
    registered: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    load_seconds: float = 0.0

    @property
    def error(self) -> str:
        return "; ".join(self.errors)


class Registry:
    """Registered components and models, by kind and name."""

    def __init__(self, settings: Settings | None = None, warn: Callable[[str], None] | None = None):
        self.settings = settings
        self.warn = warn
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in ALL_KINDS}
        self._aliases: dict[str, dict[str, str]] = {k: {} for k in ALL_KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        self.plugin_manager: pluggy.PluginManager | None = None
        # How build_registry made it, so another process can make the same one; None: built by hand.
        self.source: RegistrySource | None = None

    # -- registration -------------------------------------------------
    def register(self, kind: str, obj: Any, plugin: str = "<code>") -> Entry:
        """Registers a component class or a named model.

        Raises:
            DuplicateNameError: the name, or one of its aliases, is taken
                (by a name or an alias); the first registration stays.
            ZooError: ``obj`` is not a valid ``kind`` (see
                :func:`zoo_core.plugin_checks.component_problems`).
        """
        if kind not in ALL_KINDS:
            raise ZooError(f"unknown kind {kind!r} (kinds: {', '.join(ALL_KINDS)})")
        if kind == "model":
            obj = obj if isinstance(obj, ModelSpec) else ModelSpec.from_mapping(obj)
            problems = plugin_checks.model_problems(obj)
            label = f"model {obj.name!r}" if obj.name else "a model"
        else:
            problems = plugin_checks.component_problems(kind, obj)
            label = _class_label(kind, obj)
        if problems:
            raise ZooError(f"refused {label}: {'; '.join(problems)}")
        name = obj.name
        aliases = [a for a in getattr(obj, "aliases", ()) if a != name]
        for taken in [name, *aliases]:
            existing = self._entries[kind].get(self._aliases[kind].get(taken, taken))
            if existing:
                subject = f"{kind} {taken!r}" if taken == name else f"{kind} {name!r}: its alias {taken!r}"
                held = "" if existing.name == taken else f" (an alias of {existing.name!r})"
                raise DuplicateNameError(
                    f"{subject}{held} is already registered by plugin {existing.plugin!r}; kept that one")
        entry = Entry(kind, name, obj, plugin)
        self._entries[kind][name] = entry
        for alias in aliases:
            self._aliases[kind][alias] = name
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
        """Builds component ``name`` of ``kind`` with validated hyperparameters.

        Raises:
            ZooError: a hyperparameter is invalid, or the component's code reads
                one it does not declare (naming the plugin to blame).
        """
        cls = self.get(kind, name).obj
        if getattr(cls, "wants_registry", False):
            params["registry"] = self  # e.g. a wrapper cell finding a plugin's inner cell
        try:
            return cls(*args, **params)
        except UndeclaredParamError as err:
            culprit = next((e for k in KINDS for e in self._entries[k].values() if err.owner == f"{k} {e.name!r}"), None)
            raise ZooError(f"{err}, a bug in plugin {culprit.plugin!r}" if culprit else str(err)) from None

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

        One bad plugin never takes the others down. A plugin whose import or
        register hook fails (any exception, ``sys.exit`` and a
        ``KeyboardInterrupt`` it raises itself included; a real Ctrl-C still
        stops zoo, as does SIGTERM) is recorded as failed and registers nothing; so is one that
        breaks the hook specification (an unknown hook, a ``zoo_register_*``
        function without ``@hookimpl``). A class or model that is invalid, or
        whose name or alias is taken, is refused on its own: the first
        registration stays, the plugin is marked failed with the reason, its
        other registrations stand. Each problem also goes to :attr:`warn`, as
        does a plugin that takes over :data:`SLOW_PLUGIN_SECONDS` to load.

        Args:
            modules: Module names from ``registry.toml``; a name in
                :data:`RENAMED_MODULES` stands for the modules that replaced it.
            only: fnmatch patterns; plugins whose names match none are
                disabled, except the ``zoo_core`` modules (the zoo's own components).
            entry_points: Whether to load installed ``rnn_zoo`` distributions.

        Raises:
            ZooError: A pattern of ``only`` matches no plugin (a typo would
                otherwise leave the zoo silently empty); nothing is loaded.
        """
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        self.plugin_manager = pm
        candidates = [_Candidate(m, m, source, "", lambda m=m: importlib.import_module(m))
                      for m, source in _toml_modules(modules)]
        if entry_points:
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist else "?"
                version = ep.dist.version if ep.dist else ""
                candidates.append(_Candidate(ep.name, ep.name, f"entry point ({dist})", version, ep.load, dist))
        _give_unique_keys(candidates)
        _check_patterns(only or (), candidates)

        with plugin_checks.watch_signals() as signals_seen:
            for candidate in candidates:
                info = PluginInfo(name=candidate.key, source=candidate.source, version=candidate.version)
                self.plugins[candidate.key] = info
                if only and not _is_core(candidate) and not any(
                        fnmatch.fnmatchcase(n, p) for n in {candidate.key, candidate.name} for p in only):
                    info.status = "disabled"
                    continue
                start = time.perf_counter()
                try:
                    self._load_plugin(pm, candidate, info)
                except BaseException as err:  # noqa: BLE001 - a plugin's error, even SystemExit, is reported, not fatal
                    if plugin_checks.is_user_interrupt(err, signals_seen):
                        raise
                    self._plugin_failed(info, plugin_checks.one_line(err))
                    if pm.has_plugin(candidate.key):
                        pm.unregister(name=candidate.key)
                info.load_seconds = time.perf_counter() - start
                self._warn_failed(info, 0)
                if info.load_seconds > SLOW_PLUGIN_SECONDS and not _is_own(candidate):
                    self._say(f"plugin {candidate.key!r} took {info.load_seconds:.1f} s to load "
                              f"(--plugins or $ZOO_PLUGINS choose which plugins load)")

    def _load_plugin(self, pm: pluggy.PluginManager, candidate: "_Candidate", info: PluginInfo) -> None:
        """Imports one plugin, checks it against the hook specification and registers what it offers."""
        plugin = candidate.load()
        if not info.version:
            version = getattr(plugin, "__version__", "")
            info.version = version if isinstance(version, str) and version else _zoo_version()
        if pm.is_registered(plugin):
            raise ZooError(f"{_plugin_label(plugin)} is already loaded as plugin {pm.get_name(plugin)!r}")
        pm.register(plugin, name=candidate.key)  # raises PluginValidationError on a hookimpl's bad arguments
        problems = plugin_checks.hook_problems(pm, plugin, candidate.key)
        if problems:
            pm.unregister(name=candidate.key)
            for problem in problems:
                self._plugin_failed(info, problem)
            return
        # pluggy's own check, after ours (which names the hook to use): earlier plugins passed it,
        # so what it finds is this plugin's; the caller marks it failed and unregisters it.
        pm.check_pending()
        collected: list[tuple[str, Any]] = []
        for kind, hook_name in _HOOKS.items():
            for result in self._call_hook(pm, hook_name, candidate.key):
                collected.extend((kind, obj) for obj in result)
        for kind, obj in collected:  # only once every hook has answered: a failing hook registers nothing
            try:
                entry = self.register(kind, obj, candidate.key)
            except ZooError as err:  # DuplicateNameError too: the first registration stays
                self._plugin_failed(info, str(err))
                continue
            except Exception as err:  # noqa: BLE001 - e.g. a class whose attributes raise when read
                self._plugin_failed(info, f"refused {_class_label(kind, obj)}: {plugin_checks.one_line(err)}")
                continue
            info.registered.setdefault(kind, []).append(entry.name)

    @staticmethod
    def _call_hook(pm: pluggy.PluginManager, hook_name: str, plugin_name: str) -> list[list[Any]]:
        """Calls one plugin's implementations of a ``zoo_register_*`` hook (through pluggy's hookimpls).

        Raises:
            ZooError: a hook wrapper, or a result that is not a list.
        """
        results = []
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name != plugin_name:
                continue
            if impl.hookwrapper or getattr(impl, "wrapper", False):
                raise ZooError(f"{hook_name} is a hook wrapper; register hooks must return a list")
            result = impl.function()
            if result is None:
                continue
            if not isinstance(result, (list, tuple, set, frozenset, types.GeneratorType)):
                raise ZooError(f"{hook_name}() returned {result!r}; expected a list")
            results.append(list(result))
        return results

    @staticmethod
    def _plugin_failed(info: PluginInfo, message: str) -> None:
        info.status = "failed"
        info.errors.append(message)

    def _warn_failed(self, info: PluginInfo, known: int) -> None:
        """One warning line for the problems of ``info`` after the first ``known``."""
        new = info.errors[known:]
        if new:
            more = f"; and {len(new) - 1} more" if len(new) > 1 else ""
            self._say(f"plugin {info.name!r} failed: {new[0]}{more} (see `zoo plugins`)")

    def _say(self, message: str) -> None:
        if self.warn is not None:
            self.warn(message)

    def add_commands(self, cli) -> None:
        """Lets every loaded plugin add click commands to ``cli``.

        A plugin whose hook raises is marked failed; a command that would
        replace (or a hook that removes) one already there, such as ``train``,
        is undone and reported. Each new command is listed under its plugin.
        """
        if self.plugin_manager is None:
            return
        with plugin_checks.watch_signals() as signals_seen:
            for impl in self.plugin_manager.hook.zoo_register_commands.get_hookimpls():
                info = self.plugins.get(impl.plugin_name) or PluginInfo(impl.plugin_name, "?")
                before, known = dict(cli.commands), len(info.errors)
                try:
                    impl.function(cli=cli)
                except BaseException as err:  # noqa: BLE001 - as in load_plugins
                    if plugin_checks.is_user_interrupt(err, signals_seen):
                        raise
                    self._plugin_failed(info, f"zoo_register_commands: {plugin_checks.one_line(err)}")
                for name in sorted(set(cli.commands) | set(before)):
                    if name in before and cli.commands.get(name) is not before[name]:
                        replaced = name in cli.commands
                        cli.commands[name] = before[name]
                        self._plugin_failed(info, f"command {name!r} already exists; kept the original" if replaced
                                            else f"removed command {name!r}; put it back")
                    elif name not in before:
                        info.registered.setdefault("command", []).append(name)
                self._warn_failed(info, known)

    def failed_plugins(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.status == "failed"]


@dataclasses.dataclass
class _Candidate:
    """A plugin to load: a registry.toml module or an entry point."""

    name: str
    key: str
    source: str
    version: str
    load: Callable[[], Any]
    distribution: str = ""


def _give_unique_keys(candidates: list[_Candidate]) -> None:
    """Qualifies entry points whose names clash as ``distribution:name``, so each plugin keeps its own row."""
    taken = {c.name for c in candidates if not c.distribution}
    counts = collections.Counter(c.name for c in candidates)
    for c in candidates:
        if c.distribution and (c.name in taken or counts[c.name] > 1):
            c.key = f"{c.distribution}:{c.name}"
    seen: collections.Counter = collections.Counter()
    for c in candidates:
        seen[c.key] += 1
        if seen[c.key] > 1:  # the same distribution twice: number the repeats
            c.key = f"{c.key}#{seen[c.key]}"


def _check_patterns(patterns: Sequence[str], candidates: Sequence[_Candidate]) -> None:
    """Refuses a ``--plugins``/``$ZOO_PLUGINS`` pattern that matches no plugin, naming the plugins there are."""
    names = [c.key for c in candidates]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for c in candidates for n in {c.key, c.name}):
            raise ZooError(f"plugin pattern {pattern!r} (--plugins or $ZOO_PLUGINS) matches no plugin; "
                           f"plugins: {', '.join(names) or 'none'}")


def _toml_modules(modules: Iterable[str]) -> list[tuple[str, str]]:
    """``(module, source)`` for each plugin module of ``registry.toml``, renamed ones replaced, each once."""
    seen: dict[str, str] = {}
    for listed in modules:
        for module in RENAMED_MODULES.get(listed, (listed,)):
            seen.setdefault(module, "registry.toml" if module == listed else f"registry.toml (as {listed})")
    return list(seen.items())


def _is_core(candidate: _Candidate) -> bool:
    """A ``zoo_core`` module from ``registry.toml``: the zoo's own components, which ``--plugins`` never turns off."""
    return not candidate.distribution and candidate.name.split(".")[0] == "zoo_core"


def _is_own(candidate: _Candidate) -> bool:
    """rnn-zoo's own plugins: their import time is the zoo's start-up, not a plugin's fault."""
    return not candidate.distribution and candidate.name.split(".")[0] in ("zoo_plugins", "zoo_core")


def _plugin_label(plugin: Any) -> str:
    name = getattr(plugin, "__name__", None)
    return f"module {name}" if isinstance(plugin, types.ModuleType) else f"object {name or plugin!r}"


def _class_label(kind: str, obj: Any) -> str:
    if not isinstance(obj, type):
        return f"{obj!r} as a {kind}"
    name = getattr(obj, "name", None)
    where = f"{obj.__module__}.{obj.__qualname__}"
    return f"{kind} {name!r} ({where})" if isinstance(name, str) and name else f"{kind} class {where}"


def _zoo_version() -> str:
    from zoo_core import __version__

    return __version__


def plugin_filter(explicit: str | None = None) -> list[str] | None:
    """The fnmatch patterns from ``--plugins`` or ``$ZOO_PLUGINS``, if any."""
    text = explicit if explicit is not None else os.environ.get("ZOO_PLUGINS")
    if not text:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


@dataclasses.dataclass(frozen=True)
class RegistrySource:
    """How :func:`build_registry` made a registry, so that another process can build the same one.

    A Ray worker (:mod:`zoo_core.executors`) receives this, not the registry
    (whose plugin manager cannot be pickled), and builds its own: the same
    registry file and plugin filter, the same plugin modules imported there.

    Attributes:
        registry_file: The registry.toml read (absolute; it must exist at this path where the registry is
            built again), or None for the checkout's own (each machine reads its own rnn-zoo's).
        plugins: The plugin filter in force, comma-separated patterns; ``""``: every plugin.
        entry_points: Whether installed entry-point plugins were loaded.
    """

    registry_file: str | None
    plugins: str
    entry_points: bool

    def build(self) -> "Registry":
        """The registry this describes, built in this process.

        Raises:
            ZooError: the registry file is missing here or malformed.
        """
        return build_registry(self.registry_file, self.plugins, self.entry_points)


def build_registry(registry_file: str | None = None, plugins: str | None = None,
                   entry_points: bool = True, settings: Settings | None = None,
                   warn: Callable[[str], None] | None = None) -> Registry:
    """Loads ``registry.toml`` (unless ``settings`` already holds it), its named
    models, its plugins and installed plugins.

    The models of ``registry.toml`` come first, so a plugin model of the same
    name is the one refused: the user's file wins.

    Args:
        warn: Called with one line per plugin problem as it happens (the CLI
            prints ``warning: ...`` on stderr); problems are also kept in
            :attr:`Registry.plugins` for ``zoo plugins``.
    """
    settings = settings or load_settings(registry_file)
    registry = Registry(settings, warn)
    for spec in settings.models.values():
        registry.register("model", spec, plugin="registry.toml")
    only = plugin_filter(plugins)
    registry.load_plugins(settings.plugin_modules, only, entry_points)
    # The checkout's own file is named as such (None), so a worker on another node reads its own checkout's.
    path = settings.path.resolve() if settings.path else None
    own = path is None or (DEFAULT_REGISTRY.is_file() and path == DEFAULT_REGISTRY.resolve())
    registry.source = RegistrySource(None if own else str(path), ",".join(only or ()), entry_points)
    return registry
