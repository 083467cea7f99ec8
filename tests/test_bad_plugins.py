"""One bad plugin must not take the others down (issue 11).

Each row of :data:`CASES` is one kind of broken plugin: real module files in
``tmp_path``, loaded from a ``registry.toml`` or as an installed
distribution's entry point (a ``*.dist-info`` folder on ``sys.path``, which
is what pip leaves behind). For every row, ``zoo plugins`` still exits 0 and
names the problem on the plugin's row and on stderr, the well-behaved plugin
next to it still loads, and ``zoo components`` and ``zoo models`` still list
the built-ins, registered by the built-in plugins. A new kind of broken
plugin is one more row.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo_core.cli import cli
from zoo_core.errors import ZooError
from zoo_core.registry import build_registry

HEAD = "import sys, time\nimport zoo_core\nfrom zoo_core import hookimpl\n"
ECHO = """
from zoo_core.cells import TanhCell

class Echo(TanhCell):
    name = "{name}"
    description = "a tanh cell under another name"

@hookimpl
def zoo_register_cells():
    return [Echo]
"""


# The built-in component modules, then the named models: the plugins every case loads beside the broken one.
CORE_MODULES = ["zoo_core.encoders", "zoo_core.cells", "zoo_core.aggregators", "zoo_core.heads"]
BUILTIN_MODULES = [*CORE_MODULES, "zoo_plugins.models"]
# Components that must stay registered by their own module, and the good plugin's cell.
KEPT = [("cell", "gru", "zoo_core.cells"), ("cell", "tanh", "zoo_core.cells"), ("head", "sigmoid1", "zoo_core.heads"),
        ("encoder", "embedding", "zoo_core.encoders"), ("aggregator", "last", "zoo_core.aggregators"),
        ("cell", "echo", "good_plugin")]


def plugins_table(*modules: str) -> str:
    """registry.toml's ``[plugins]`` table listing ``modules``."""
    return "[plugins]\nmodules = [" + ", ".join(f'"{m}"' for m in modules) + "]\n"


def cells(body: str, returns: str) -> str:
    """A plugin module defining ``body`` and registering ``returns`` as cells."""
    return HEAD + textwrap.dedent(body) + f"\n@hookimpl\ndef zoo_register_cells():\n    return {returns}\n"


def registers(hook: str, body: str, returns: str) -> str:
    return HEAD + textwrap.dedent(body) + f"\n@hookimpl\ndef {hook}():\n    return {returns}\n"


def commands(body: str) -> str:
    return HEAD + "import click\n\n@hookimpl\ndef zoo_register_commands(cli):\n" + textwrap.indent(
        textwrap.dedent(body), "    ")


@dataclasses.dataclass
class Case:
    """One kind of broken plugin.

    Attributes:
        id: The test id.
        source: The plugin module's code (the module is called ``bad_<id>``).
        error: Expected in the plugin's ``error`` column (and in a warning);
            ``""``: the plugin loads cleanly.
        entry_point: Load it as this entry-point name of a distribution
            ``dist-<id>`` instead of from registry.toml.
        key: Its row in ``zoo plugins`` (default: the module or entry-point name).
        status: Its expected status.
        absent: ``(kind, name)`` of components it offers that must not be
            registered (e.g. from a hook pluggy must not call).
    """

    id: str
    source: str
    error: str
    entry_point: str = ""
    key: str = ""
    status: str = "failed"
    absent: tuple[tuple[str, str], ...] = ()

    @property
    def module(self) -> str:
        return "bad_" + self.id.replace("-", "_")


CASES = [
    # -- clashes: the first registration stays, the rest carry on ------------------------
    Case("clash-cell", HEAD + ECHO.format(name="gru"), "cell 'gru' is already registered by plugin 'zoo_core.cells'; kept that one"),
    Case("clash-model", registers("zoo_register_models", "", '[{"name": "gru-mean", "encoder": "embedding", '
                                  '"cell": "tanh", "aggregator": "last", "head": "sigmoid1"}]'),
         "model 'gru-mean' is already registered by plugin 'zoo_plugins.models'; kept that one"),
    Case("clash-toml-model", registers("zoo_register_models", "", '[{"name": "toml-model", "encoder": "embedding", '
                                       '"cell": "tanh", "aggregator": "last", "head": "sigmoid1"}]'),
         "model 'toml-model' is already registered by plugin 'registry.toml'; kept that one"),
    Case("clash-alias", registers("zoo_register_heads", """
        from zoo_core.heads import SigmoidHead
        class Sig(SigmoidHead):
            name = "sigmoid"
            aliases = ()
        """, "[Sig]"), "head 'sigmoid' (an alias of 'sigmoid1') is already registered by plugin 'zoo_core.heads'"),
    Case("clash-own-alias", registers("zoo_register_heads", """
        from zoo_core.heads import SoftmaxHead
        class Soft(SoftmaxHead):
            name = "soft3"
            aliases = ("softmax",)
        """, "[Soft]"), "head 'soft3': its alias 'softmax' (an alias of 'softmax2') is already registered"),
    # -- what a plugin's import or hooks raise -------------------------------------------
    Case("exit-at-import", HEAD + "sys.exit(0)\n", "SystemExit: 0 (bad_exit_at_import.py:4)"),
    Case("exit-in-hook", cells("", "sys.exit(3)"), "SystemExit: 3"),
    Case("interrupt-at-import", HEAD + "raise KeyboardInterrupt\n", "KeyboardInterrupt (bad_interrupt_at_import.py:4)"),
    Case("returns-a-class", cells(ECHO.split("@hookimpl")[0].format(name="lonely"), "Echo"),
         "zoo_register_cells() returned <class 'bad_returns_a_class.Echo'>; expected a list"),
    # -- the hook specification ----------------------------------------------------------
    Case("misspelt-hook", HEAD + "@hookimpl\ndef zoo_register_cell():\n    return []\n",
         "unknown hook zoo_register_cell; did you mean zoo_register_cells?"),
    Case("no-hookimpl", HEAD + "def zoo_register_cells():\n    return []\n",
         "zoo_register_cells is not marked @zoo_core.hookimpl, so zoo never calls it"),
    Case("no-hookimpl-misspelt", HEAD + "def zoo_register_model():\n    return []\n",
         "zoo_register_model is not marked @zoo_core.hookimpl, so zoo never calls it "
         "(and it is no hook; did you mean zoo_register_models?)"),
    Case("no-hookimpl-offers-a-cell", HEAD + ECHO.format(name="unmarked").replace("@hookimpl\n", ""),
         "zoo_register_cells is not marked @zoo_core.hookimpl, so zoo never calls it", absent=(("cell", "unmarked"),)),
    Case("misspelt-hook-offers-a-cell",
         HEAD + ECHO.format(name="misspelt").replace("def zoo_register_cells", "def zoo_register_cell"),
         "unknown hook zoo_register_cell; did you mean zoo_register_cells?", absent=(("cell", "misspelt"),)),
    Case("foreign-marker", "import pluggy\nhookimpl = pluggy.HookimplMarker('other')\n"
                           "@hookimpl\ndef zoo_register_cells():\n    return []\n",
         "zoo_register_cells is not marked @zoo_core.hookimpl"),
    Case("optional-unknown-hook", HEAD + "@hookimpl(optionalhook=True)\ndef zoo_register_later():\n    return []\n",
         "", status="loaded"),  # pluggy's way to implement a hook a later zoo may add: not an error
    Case("hook-arguments", HEAD + "@hookimpl\ndef zoo_register_cells(registry):\n    return []\n",
         "PluginValidationError"),
    # -- what a plugin registers ---------------------------------------------------------
    Case("kind-and-name-only", cells("""
        class Bare:
            kind = "cell"
            name = "bare"
        """, "[Bare]"), "refused cell 'bare' (bad_kind_and_name_only.Bare): does not subclass zoo_core.cells.Cell"),
    Case("not-a-class", cells("", '["gru"]'), "refused 'gru' as a cell: it is not a class"),
    Case("wrong-base", cells("from zoo_core.heads import SigmoidHead\nclass H(SigmoidHead):\n    name = 'h9'\n",
                             "[H]"), "refused cell 'h9' (bad_wrong_base.H): does not subclass zoo_core.cells.Cell"),
    Case("abstract-cell", cells("""
        from zoo_core.cells import Cell
        class Half(Cell):
            name = "half"
        """, "[Half]"), "refused cell 'half' (bad_abstract_cell.Half): no description; "
                        "does not implement output_size, unroll"),
    Case("abstract-step", cells("""
        from zoo_core.cells import StepCell, UNITS, KERNEL_INIT
        class NoStep(StepCell):
            name = "nostep"
            description = "forgot step"
            hparams = (UNITS, KERNEL_INIT)
        """, "[NoStep]"), "refused cell 'nostep' (bad_abstract_step.NoStep): does not implement step"),
    Case("undeclared-hparam", cells("""
        import tensorflow as tf
        from zoo_core.cells import StepCell, UNITS, KERNEL_INIT
        class Leaky(StepCell):
            name = "leaky2"
            description = "leaky tanh RNN"
            hparams = (UNITS, KERNEL_INIT)
            def step(self, projected_t, state):
                h = (1 - self.params["leak"]) * state + self.params["leak"] * tf.tanh(projected_t)
                return h, h
        """, "[Leaky]"), "Leaky.step reads hyperparameter 'leak', which its hparams do not declare"),
    Case("base-hparam-missing", cells("""
        from zoo_core.cells import TanhCell, UNITS
        class NoInit(TanhCell):
            name = "noinit"
            hparams = (UNITS,)
        """, "[NoInit]"), "StepCell.__init__ reads hyperparameter 'kernel_init', which its hparams do not declare"),
    Case("hparams-not-hparam", cells("""
        from zoo_core.cells import TanhCell
        class Dicts(TanhCell):
            name = "dicts"
            hparams = ({"name": "units", "default": 4},)
        """, "[Dicts]"), "hparams holds {'name': 'units', 'default': 4}, not an HParam"),
    Case("bad-default", cells("""
        from zoo_core.cells import TanhCell, KERNEL_INIT, RECURRENT_INIT
        from zoo_core.params import HParam
        class Big(TanhCell):
            name = "big"
            hparams = (HParam("units", int, 0, "units", low=1, high=8), KERNEL_INIT, RECURRENT_INIT)
        """, "[Big]"), "hyperparameter 'units' has an invalid default: parameter 'units' got 0"),
    Case("bad-tiny", cells("""
        from zoo_core.cells import TanhCell, KERNEL_INIT, RECURRENT_INIT, BPTT
        from zoo_core.params import HParam
        class Tiny(TanhCell):
            name = "tiny0"
            hparams = (HParam("units", int, 4, "units", low=1, high=8, tiny=0), KERNEL_INIT, RECURRENT_INIT, BPTT)
        """, "[Tiny]"), "hyperparameter 'units' has an invalid tiny value: parameter 'units' got 0"),
    Case("bad-name", cells(ECHO.split("@hookimpl")[0].format(name="my cell"), "[Echo]"),
         "name 'my cell' is not a plain name"),
    Case("alias-string", registers("zoo_register_heads", """
        from zoo_core.heads import SigmoidHead
        class Sig(SigmoidHead):
            name = "sig9"
            aliases = "s9"
        """, "[Sig]"), "aliases must be a tuple of plain names, not 's9'"),
    Case("bad-model", registers("zoo_register_models", "from zoo_core.config import ModelSpec\n",
                                '[ModelSpec(name="m9", encoder=3, cell="tanh", aggregator="last", head="sigmoid1")]'),
         "refused model 'm9': its encoder 3 is not a component name"),
    Case("model-missing-keys", registers("zoo_register_models", "", '[{"name": "m8", "cell": "tanh"}]'),
         "model 'm8' is missing encoder, aggregator, head"),
    # -- commands ------------------------------------------------------------------------
    Case("command-raises", commands("raise RuntimeError('no commands today')\n"),
         "zoo_register_commands: RuntimeError: no commands today"),
    Case("command-shadows-train", commands("""
        @cli.command(name="train")
        def shadow():
            "SHADOW: not the real train"
        """), "command 'train' already exists; kept the original"),
    # -- entry points --------------------------------------------------------------------
    Case("ep-named-like-builtin", HEAD + ECHO.format(name="echo-ep"), "",
         entry_point="zoo_core.cells", key="dist-ep-named-like-builtin:zoo_core.cells", status="loaded"),
    Case("ep-named-like-old-builtin", HEAD + ECHO.format(name="echo-old"), "",
         entry_point="zoo_plugins.builtin", status="loaded"),  # the old name of the built-ins is free now
    Case("ep-reexports-builtin", "from zoo_core.encoders import *\n",
         "encoder 'one-hot' is already registered by plugin 'zoo_core.encoders'; kept that one",
         entry_point="again"),
    Case("ep-is-builtin-module", "", "module zoo_core.encoders is already loaded as plugin 'zoo_core.encoders'",
         entry_point="builtin-module"),
]


def install(tmp_path: Path, monkeypatch, case: Case) -> Path:
    """Writes the case's plugin (and distribution), puts it on sys.path; returns the registry.toml."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "good_plugin.py").write_text(HEAD + ECHO.format(name="echo"), encoding="utf-8")
    modules = [*BUILTIN_MODULES, "good_plugin"]
    if case.source:
        (site / f"{case.module}.py").write_text(case.source, encoding="utf-8")
    if case.entry_point:
        target = case.module if case.source else "zoo_core.encoders"
        add_distribution(site, f"dist-{case.id}", {case.entry_point: target})
    else:
        modules.append(case.module)
    monkeypatch.syspath_prepend(str(site))
    path = tmp_path / "registry.toml"
    listed = ", ".join(f'"{m}"' for m in modules)
    path.write_text(f'[plugins]\nmodules = [{listed}]\n\n[models.toml-model]\nencoder = "embedding"\n'
                    'cell = "gru"\naggregator = "last"\nhead = "sigmoid1"\n', encoding="utf-8")
    return path


def add_distribution(site: Path, dist: str, entry_points: dict[str, str]) -> None:
    """An installed distribution as pip leaves it: ``<dist>-1.0.dist-info`` with ``rnn_zoo`` entry points."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n", encoding="utf-8")
    lines = "".join(f"{name} = {module}\n" for name, module in entry_points.items())
    (info / "entry_points.txt").write_text(f"[rnn_zoo]\n{lines}", encoding="utf-8")


def zoo(registry_file: Path, *args: str):
    result = CliRunner().invoke(cli, ["--registry", str(registry_file), *args], catch_exceptions=False)
    return result


def csv_rows(text: str, key: str) -> dict[str, dict[str, str]]:
    return {row[key]: row for row in csv.DictReader(io.StringIO(text))}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_broken_plugin_is_named_and_the_others_keep_working(tmp_path, monkeypatch, case):
    path = install(tmp_path, monkeypatch, case)

    result = zoo(path, "plugins", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = csv_rows(result.stdout, "plugin")
    row = rows[case.key or case.entry_point or case.module]
    assert row["status"] == case.status, row
    assert case.error in row["error"], row
    if case.error:
        warnings = [line for line in result.stderr.splitlines()
                    if line.startswith("warning: ") and not line.endswith("choose which plugins load)")]
        assert len(warnings) == 1, result.stderr  # one line, whatever the number of problems (slowness aside)
        assert warnings[0].startswith(f"warning: plugin {row['plugin']!r} failed: ") and case.error in warnings[0]
    else:
        assert row["error"] == ""
    assert "Traceback" not in result.output
    for builtin in (*BUILTIN_MODULES, "good_plugin"):
        assert rows[builtin]["status"] == "loaded" and rows[builtin]["error"] == "", rows[builtin]

    result = zoo(path, "components", "--format", "csv")
    assert result.exit_code == 0, result.output
    listed = {(row["kind"], row["name"].split(" (")[0]): row["plugin"]
              for row in csv.DictReader(io.StringIO(result.stdout))}
    for kind, name, plugin in KEPT:
        assert listed[(kind, name)] == plugin
    for kind, name in case.absent:
        assert (kind, name) not in listed
    assert any(name.startswith("sigmoid1 (sigmoid") for name in csv_rows(result.stdout, "name"))

    result = zoo(path, "models", "--format", "csv")
    assert result.exit_code == 0, result.output
    models = csv_rows(result.stdout, "model")
    assert models["gru-mean"]["plugin"] == "zoo_plugins.models"
    assert models["toml-model"]["plugin"] == "registry.toml"

    result = zoo(path, "--help")
    assert result.exit_code == 0 and "SHADOW" not in result.stdout


def test_two_distributions_with_one_entry_point_name_both_load(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    for dist, cell in [("zoo-alpha", "alpha"), ("zoo-beta", "beta")]:
        module = dist.replace("-", "_")
        (site / f"{module}.py").write_text(HEAD + ECHO.format(name=cell), encoding="utf-8")
        add_distribution(site, dist, {"twin": module})
    monkeypatch.syspath_prepend(str(site))
    path = tmp_path / "registry.toml"
    path.write_text(plugins_table(*CORE_MODULES), encoding="utf-8")

    rows = csv_rows(zoo(path, "plugins", "--format", "csv").stdout, "plugin")
    assert rows["zoo-alpha:twin"]["source"] == "entry point (zoo-alpha)"
    assert rows["zoo-beta:twin"]["source"] == "entry point (zoo-beta)"
    assert rows["zoo-alpha:twin"]["registered"] == "cell: alpha" and rows["zoo-beta:twin"]["registered"] == "cell: beta"
    assert {r["status"] for r in rows.values()} == {"loaded"}
    # --plugins matches the plain entry-point name, or the qualified one.
    rows = csv_rows(zoo(path, "--plugins", "zoo-beta:*", "plugins", "--format", "csv").stdout, "plugin")
    assert rows["zoo-alpha:twin"]["status"] == "disabled" and rows["zoo-beta:twin"]["status"] == "loaded"
    assert {rows[m]["status"] for m in CORE_MODULES} == {"loaded"}  # the zoo's own components always load


def test_a_plugin_command_is_listed_and_cannot_replace_a_builtin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "cmd_plugin.py").write_text(commands("""
        @cli.command()
        def hello():
            "Say hello."
            click.echo("hello from a plugin")

        @cli.command(name="components")
        def shadow():
            "SHADOW"
        """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    path = tmp_path / "registry.toml"
    path.write_text(plugins_table(*CORE_MODULES, "cmd_plugin"), encoding="utf-8")

    assert zoo(path, "hello").stdout == "hello from a plugin\n"
    result = zoo(path, "components", "head", "--format", "csv")
    assert result.exit_code == 0 and "sigmoid1" in result.stdout
    row = csv_rows(zoo(path, "plugins", "--format", "csv").stdout, "plugin")["cmd_plugin"]
    assert row["registered"] == "command: hello"
    assert row["error"] == "command 'components' already exists; kept the original"


def test_a_slow_plugin_is_named_on_stderr_with_its_time(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "slow_plugin.py").write_text("import time\ntime.sleep(0.6)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr("zoo_core.registry.SLOW_PLUGIN_SECONDS", 0.5)
    path = tmp_path / "registry.toml"
    path.write_text(plugins_table(*CORE_MODULES, "slow_plugin"), encoding="utf-8")

    result = zoo(path, "plugins", "--format", "csv")
    assert result.exit_code == 0
    slow = [line for line in result.stderr.splitlines() if "slow_plugin" in line]
    assert len(slow) == 1 and slow[0].startswith("warning: plugin 'slow_plugin' took "), result.stderr
    assert slow[0].endswith(" s to load (--plugins or $ZOO_PLUGINS choose which plugins load)")
    assert float(slow[0].split(" took ")[1].split(" s ")[0]) >= 0.6
    assert csv_rows(result.stdout, "plugin")["slow_plugin"]["status"] == "loaded"


def test_a_hyperparameter_read_the_checks_cannot_see_is_a_clear_error_naming_the_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sneaky_plugin.py").write_text(cells("""
        from zoo_core.cells import TanhCell
        class Sneaky(TanhCell):
            name = "sneaky"
            def __init__(self, input_dim, **params):
                super().__init__(input_dim, **params)
                key = "le" + "ak"  # not a constant: only building the cell finds it
                self.leak = self.params[key]
        """, "[Sneaky]"), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    path = tmp_path / "registry.toml"
    path.write_text(plugins_table(*CORE_MODULES, "sneaky_plugin"), encoding="utf-8")
    registry = build_registry(path, entry_points=False)
    assert registry.plugins["sneaky_plugin"].status == "loaded"
    message = ("cell 'sneaky' reads hyperparameter 'leak', which its hparams do not declare "
               "(declared: bptt, kernel_init, recurrent_init, units), a bug in plugin 'sneaky_plugin'")
    for name, params in [("sneaky", {}), ("stacked", {"cell": "sneaky"})]:
        with pytest.raises(ZooError) as err:
            registry.create("cell", name, 4, **params)
        assert not isinstance(err.value, KeyError) or str(err.value) == message
        assert str(err.value) == message


def test_plugins_breaking_the_hook_specification_are_left_out_of_pluggy(tmp_path, monkeypatch):
    """What stays registered with pluggy passes its own check; the rest is in ``zoo plugins``."""
    bad = [c for c in CASES if c.id in ("misspelt-hook", "no-hookimpl", "hook-arguments")]
    site = tmp_path / "site"
    site.mkdir()
    for case in bad:
        (site / f"{case.module}.py").write_text(case.source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    path = tmp_path / "registry.toml"
    path.write_text(plugins_table(*CORE_MODULES, *(c.module for c in bad)), encoding="utf-8")
    registry = build_registry(path, entry_points=False)
    registry.plugin_manager.check_pending()  # raises on any unknown hook left registered
    assert sorted(name for name, _ in registry.plugin_manager.list_name_plugin()) == sorted(CORE_MODULES)
    assert all(registry.plugins[c.module].status == "failed" for c in bad)


def test_every_builtin_component_passes_the_plugin_checks(registry):
    assert {info.status for info in registry.plugins.values()} <= {"loaded", "disabled"}
    assert all(not info.errors for info in registry.plugins.values())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_while_a_plugin_loads_still_stops_zoo(tmp_path, signum):
    """A real Ctrl-C or SIGTERM is the user's: zoo stops with 128 + the signal, unlike a
    KeyboardInterrupt a plugin raises itself (a failed plugin, see CASES)."""
    site = tmp_path / "site"
    site.mkdir()
    started = tmp_path / "started"
    (site / "sleepy_plugin.py").write_text(
        f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(120)\n", encoding="utf-8")
    path = tmp_path / "registry.toml"
    path.write_text('[plugins]\nmodules = ["sleepy_plugin"]\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    from tests.cli_helpers import interruptible

    child = subprocess.Popen([sys.executable, "-m", "zoo_core.cli", "--registry", str(path), "plugins"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             preexec_fn=interruptible)
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), child.communicate()
        child.send_signal(signum)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signum, (out, err)
    assert "sleepy_plugin" not in out + err  # zoo stopped instead of listing the plugin as failed
