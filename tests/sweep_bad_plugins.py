"""Sweep: every broken plugin of ``tests/test_bad_plugins.py``, in every way it can be loaded.

Each case of :data:`tests.test_bad_plugins.CASES` is tried from ``registry.toml``
before and after a well-behaved plugin, and as an installed distribution's
entry point; each try runs ``zoo plugins``, ``zoo components`` and ``zoo models``.
A try is *clean* when all three exit 0 without a traceback, ``zoo plugins``
shows the plugin with the expected status and error and prints at most one
warning line, and the built-ins and the good plugin are listed as theirs.

    python -m tests.sweep_bad_plugins               # in-process (CliRunner), seconds
    python -m tests.sweep_bad_plugins --subprocess  # real `zoo` processes, the first way only (minutes)

Not collected by pytest (the same cases are its table).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.test_bad_plugins import BUILTIN_MODULES, CASES, ECHO, HEAD, KEPT, Case, add_distribution


def variants(case: Case) -> list[tuple[str, str]]:
    """(how, position): the ways this case can be loaded."""
    if case.entry_point or not case.source:
        return [("entry point", "")]
    return [("registry.toml", "before good_plugin"), ("registry.toml", "after good_plugin"), ("entry point", "")]


def prepare(root: Path, case: Case, how: str, position: str) -> tuple[Path, Path, str]:
    """Writes the plugin files; returns (site folder, registry.toml, the plugin's expected key)."""
    site = root / "site"
    site.mkdir(parents=True)
    (site / "good_plugin.py").write_text(HEAD + ECHO.format(name="echo"), encoding="utf-8")
    if case.source:
        (site / f"{case.module}.py").write_text(case.source, encoding="utf-8")
    modules = [*BUILTIN_MODULES, "good_plugin"]
    key = case.key or case.entry_point or case.module
    if how == "entry point":
        name = case.entry_point or case.module
        key = case.key or name
        add_distribution(site, f"dist-{case.id}", {name: case.module if case.source else "zoo_core.encoders"})
    else:
        modules.insert(len(BUILTIN_MODULES) + (position == "after good_plugin"), case.module)
    registry = root / "registry.toml"
    listed = ", ".join(f'"{m}"' for m in modules)
    registry.write_text(f'[plugins]\nmodules = [{listed}]\n\n[models.toml-model]\nencoder = "embedding"\n'
                        'cell = "gru"\naggregator = "last"\nhead = "sigmoid1"\n', encoding="utf-8")
    return site, registry, key


def run_zoo(site: Path, registry: Path, args: list[str], use_subprocess: bool) -> tuple[int, str, str]:
    argv = ["--registry", str(registry), *args]
    if use_subprocess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-m", "zoo_core.cli", *argv], capture_output=True, text=True,
                              env=env, timeout=600)
        return done.returncode, done.stdout, done.stderr
    from click.testing import CliRunner

    from zoo_core.cli import cli

    result = CliRunner().invoke(cli, argv)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += f"\nTraceback (in-process): {result.exception!r}"
    return result.exit_code, result.stdout, stderr


def problems_of(case: Case, site: Path, registry: Path, key: str, use_subprocess: bool) -> list[str]:
    """What is not clean about one try; empty if clean."""
    found = []
    code, out, err = run_zoo(site, registry, ["plugins", "--format", "csv"], use_subprocess)
    if code != 0 or "Traceback" in out + err:
        return [f"zoo plugins exited {code}: {(err or out).strip().splitlines()[-1:]}"]
    rows = {row["plugin"]: row for row in csv.DictReader(io.StringIO(out))}
    row = rows.get(key)
    if row is None:
        found.append(f"no row {key!r} in zoo plugins")
    elif row["status"] != case.status or case.error not in row["error"]:
        found.append(f"row {key!r}: {row['status']} {row['error']!r}")
    warnings = [line for line in err.splitlines()  # a slow import (e.g. the first to import TF) aside
                if line.startswith("warning: ") and not line.endswith("choose which plugins load)")]
    if len(warnings) > (1 if case.error else 0):
        found.append(f"{len(warnings)} warning lines")
    for plugin in (*BUILTIN_MODULES, "good_plugin"):
        if rows.get(plugin, {}).get("status") != "loaded":
            found.append(f"{plugin} is {rows.get(plugin, {}).get('status')}")
    code, out, err = run_zoo(site, registry, ["components", "--format", "csv"], use_subprocess)
    if code != 0 or "Traceback" in out + err:
        return found + [f"zoo components exited {code}"]
    owners = {(r["kind"], r["name"].split(" (")[0]): r["plugin"] for r in csv.DictReader(io.StringIO(out))}
    for kind, name, plugin in KEPT:
        if owners.get((kind, name)) != plugin:
            found.append(f"{kind} {name} registered by {owners.get((kind, name))}")
    for kind, name in case.absent:
        if (kind, name) in owners:
            found.append(f"{kind} {name} registered by {owners[(kind, name)]}, from a hook zoo must not call")
    code, out, err = run_zoo(site, registry, ["models", "--format", "csv"], use_subprocess)
    if code != 0 or "Traceback" in out + err or "gru-mean,embedding/gru" not in out:
        found.append(f"zoo models exited {code}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subprocess", action="store_true", help="run real `zoo` processes")
    args = parser.parse_args()
    tried = clean = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            ways = variants(case)[:1] if args.subprocess else variants(case)  # processes cost a TF import each
            for number, (how, position) in enumerate(ways):
                root = Path(tmp) / f"{case.id}-{number}"
                site, registry, key = prepare(root, case, how, position)
                sys.path.insert(0, str(site))
                importlib.invalidate_caches()
                try:
                    found = problems_of(case, site, registry, key, args.subprocess)
                finally:
                    sys.path.remove(str(site))
                    for name in [case.module, "good_plugin"]:  # the next try imports its own copy
                        sys.modules.pop(name, None)
                tried += 1
                clean += not found
                label = f"{case.id} ({how}{', ' + position if position else ''})"
                print(f"{'clean' if not found else 'NOT CLEAN'}  {label}" + (f": {'; '.join(found)}" if found else ""),
                      flush=True)
    print(f"\n{tried} broken-plugin loads tried, {clean} clean, {tried - clean} not clean")
    return 0 if clean == tried else 1


if __name__ == "__main__":
    sys.exit(main())
