"""``registry.toml``: enabled plugins, named models, presets, data search path, defaults.

The file is found, in order, at ``--registry PATH``, ``$ZOO_REGISTRY``, or the
project checkout's top level. Relative paths inside it are relative to the
file, so the default search path finds ``../shared/data`` beside the checkout.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from zoo_core.config import KINDS, DataConfig, ModelSpec, TrainConfig
from zoo_core.errors import ZooError

DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent / "registry.toml"
_TOP_LEVEL = {"plugins", "data", "train", "paths", "models", "presets"}


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback) / "rnn-zoo"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named set of models to rank together.

    Either explicit ``models`` (names or fnmatch patterns) or a grid: every
    combination of ``encoders`` x ``cells`` x ``aggregators`` x ``heads``,
    with shared ``params``.
    """

    name: str
    description: str = ""
    models: tuple[str, ...] = ()
    grid: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    params: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything ``registry.toml`` says."""

    path: Path | None
    plugin_modules: tuple[str, ...]
    data: DataConfig
    train: TrainConfig
    search_path: tuple[Path, ...]
    cache_dir: Path
    results: Path
    # Where runs' weights go when no --runs says: $ZOO_RUNS, else [paths] runs; None means beside the
    # results database (see zoo_core.runs.resolve_runs_dir). runs_source names which one set it.
    runs_dir: Path | None
    models: Mapping[str, ModelSpec]
    presets: Mapping[str, Preset]
    runs_source: str = ""


def find_registry_file(explicit: str | os.PathLike | None = None) -> Path | None:
    """Where the registry file is: the flag, ``$ZOO_REGISTRY``, or the checkout's."""
    chosen = explicit or os.environ.get("ZOO_REGISTRY")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ZooError(f"registry file {path} does not exist")
        return path
    return DEFAULT_REGISTRY if DEFAULT_REGISTRY.is_file() else None


def _line_of(text: str, pattern: str) -> int:
    """1-based line of the first match of regex ``pattern`` in ``text`` (0 if none)."""
    match = re.search(pattern, text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else 0


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Reads ``registry.toml`` into :class:`Settings`.

    Raises:
        ZooError: ``FILE:LINE: what is wrong`` for a malformed file.
    """
    file = find_registry_file(path)
    text = file.read_text(encoding="utf-8") if file else ""
    where = str(file) if file else "registry.toml"

    def fail(message: str, pattern: str | None = None) -> ZooError:
        line = _line_of(text, pattern) if pattern else 0
        return ZooError(f"{where}:{line}: {message}" if line else f"{where}: {message}")

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(err))
        detail = re.sub(r"\s*\(at line.*\)", "", str(err))
        if match:
            raise ZooError(f"{where}:{match.group(1)}: {detail} (column {match.group(2)})") from None
        raise ZooError(f"{where}: {detail}") from None

    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise fail(
            f"unknown table [{unknown[0]}] (expected: {', '.join(sorted(_TOP_LEVEL))})",
            rf"^\s*\[{re.escape(unknown[0])}[\].]|^\s*{re.escape(unknown[0])}\s*=",
        )
    base = file.parent if file else Path.cwd()

    def resolve_path(value: str) -> Path:
        p = Path(os.path.expandvars(value)).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    plugins = raw.get("plugins", {})
    modules = plugins.get("modules", [])
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise fail("[plugins] modules must be a list of module names", r"^\s*modules\s*=")

    data_raw = dict(raw.get("data", {}))
    search_path = data_raw.pop("search_path", [])
    cache_dir = data_raw.pop("cache_dir", "")
    try:
        data = DataConfig.from_mapping(data_raw)
    except ZooError as err:
        raise fail(str(err), r"^\s*\[data\]") from None
    try:
        train = TrainConfig.from_mapping(raw.get("train", {}))
    except ZooError as err:
        raise fail(str(err), r"^\s*\[train\]") from None

    paths = raw.get("paths", {})
    data_home = _xdg("XDG_DATA_HOME", ".local/share")
    results = paths.get("results") or str(data_home / "results.sqlite")
    runs_dir = paths.get("runs") or None

    models = {}
    for name, values in raw.get("models", {}).items():
        if not isinstance(values, dict):
            raise fail(f"[models.{name}] must be a table", rf"^\s*{re.escape(name)}\s*=")
        try:
            models[name] = ModelSpec.from_mapping(values, name=name)
        except ZooError as err:
            raise fail(str(err), rf"^\s*\[models\.\"?{re.escape(name)}\"?\]") from None

    presets = {}
    for name, values in raw.get("presets", {}).items():
        header = rf"^\s*\[presets\.\"?{re.escape(name)}\"?\]"
        values = dict(values)
        known = {"description", "models", "params", "data", "train"} | {k + "s" for k in KINDS}
        bad = sorted(set(values) - known)
        if bad:
            raise fail(f"preset {name!r} has unknown key {bad[0]!r}", header)
        grid = {k: tuple(values.get(k + "s", ())) for k in KINDS}
        if any(grid.values()) and not all(grid.values()):
            raise fail(f"preset {name!r}: a grid needs encoders, cells, aggregators and heads", header)
        if not any(grid.values()) and not values.get("models"):
            raise fail(f"preset {name!r} lists no models and no grid", header)
        presets[name] = Preset(
            name=name,
            description=values.get("description", ""),
            models=tuple(values.get("models", ())),
            grid=grid if all(grid.values()) else {},
            params=values.get("params", {}),
            data=values.get("data", {}),
            train=values.get("train", {}),
        )

    return Settings(
        path=file,
        plugin_modules=tuple(modules),
        data=data,
        train=train,
        search_path=tuple(resolve_path(p) for p in search_path),
        cache_dir=resolve_path(cache_dir) if cache_dir else _xdg("XDG_CACHE_HOME", ".cache"),
        # Paths from the environment are relative to the working directory.
        results=Path(os.environ["ZOO_RESULTS"]).expanduser().resolve()
        if os.environ.get("ZOO_RESULTS")
        else resolve_path(results),
        runs_dir=Path(os.environ["ZOO_RUNS"]).expanduser().resolve()
        if os.environ.get("ZOO_RUNS")
        else resolve_path(runs_dir) if runs_dir else None,
        models=models,
        presets=presets,
        runs_source="$ZOO_RUNS" if os.environ.get("ZOO_RUNS") else f"[paths] runs in {where}" if runs_dir else "",
    )
