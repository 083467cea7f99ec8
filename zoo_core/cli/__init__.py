"""The ``zoo`` command line.

Each command family lives in its own module of this package and registers
itself on :data:`cli`; plugins add more commands through the
``zoo_register_commands`` hook.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from functools import cached_property

import click

from zoo_core import __version__
from zoo_core.cli import quiet, signals
from zoo_core.cli.progress import warn
from zoo_core.errors import ZooError

#: Modules of this package that define no command: shared options, terminal progress, log quieting, signals.
#: Every other module is one command, named after it (``zoo X`` is ``zoo_core/cli/X.py``; a group's
#: subcommands live in the group's module), found by listing the package: adding a command is adding its file.
SUPPORT_MODULES = frozenset({"__main__", "options", "progress", "quiet", "signals"})


class ZooClickError(click.ClickException):
    """A :class:`ZooError` shown by click: ``Error: <one line>``, exit status 2."""

    exit_code = 2


class AppState:
    """Lazily built registry and settings for one invocation."""

    def __init__(self, registry_file: str | None, plugins: str | None):
        self.registry_file = registry_file
        self.plugins = plugins
        self._warned = False
        self.commands_added = False
        self.runs_flag: str | None = None  # --runs DIR of the command (zoo_core.cli.options.runs_option)

    @cached_property
    def settings(self):
        """registry.toml's settings, read without loading plugins (which would import TensorFlow)."""
        from zoo_core.settings import load_settings

        return load_settings(self.registry_file)

    @cached_property
    def registry(self):
        from zoo_core.registry import build_registry

        # Plugin problems are printed as they happen, so a slow or broken plugin is named at once.
        return build_registry(self.registry_file, self.plugins, settings=self.settings, warn=warn)


class ZooGroup(signals.ExitOnInterrupt, click.Group):
    """Turns :class:`ZooError` into one line and exit status 2 (Ctrl-C into 130), and adds plugin commands."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ZooError as err:
            raise ZooClickError(str(err)) from None

    def add_plugin_commands(self, ctx) -> None:
        """Runs the plugins' ``zoo_register_commands`` hooks, once per invocation."""
        if ctx is None:
            return
        state = _state_from(ctx)
        if state.commands_added:
            return
        state.commands_added = True
        for name in getattr(self, "_from_plugins", ()):  # an earlier invocation's, in this process (tests)
            self.commands.pop(name, None)
        before = set(self.commands)
        try:
            state.registry.add_commands(self)
        except ZooError:
            pass  # reported when a command needs the registry
        self._from_plugins = set(self.commands) - before

    def list_commands(self, ctx):
        self.add_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None:
            self.add_plugin_commands(ctx)
            command = super().get_command(ctx, name)
        return command


def _state_from(ctx) -> AppState:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = AppState(root.params.get("registry_file"), root.params.get("plugins"))
    return root.obj


pass_state = click.make_pass_decorator(AppState, ensure=False)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="rnn-zoo")
# $ZOO_REGISTRY and $ZOO_PLUGINS are read by the core alone (zoo_core.settings.find_registry_file,
# zoo_core.registry.plugin_filter), where a library caller gets them too: no envvar= here.
@click.option("--registry", "registry_file", metavar="PATH",
              help="registry.toml to use (default: the checkout's; env ZOO_REGISTRY).")
@click.option("--plugins", metavar="PATTERNS",
              help="Load only plugins matching these comma-separated patterns, e.g. 'zoo_plugins.*' "
                   "(the zoo_core component modules always load; env ZOO_PLUGINS).")
@click.option("--verbose", is_flag=True, envvar="ZOO_VERBOSE", is_eager=True, expose_value=False,
              callback=lambda ctx, param, value: quiet.release() if value else None,
              help="Show TensorFlow's, absl's and oneDNN's own log lines (hidden by default; env ZOO_VERBOSE=1).")
@click.pass_context
def cli(ctx, registry_file, plugins):
    """rnn-zoo: mix, train and rank recurrent IMDB sentiment classifiers.

    A model is four components: an encoder, a cell, an aggregator and a head.

    \b
    Examples:
      zoo components                 # every component, by kind, with its plugin
      zoo components cell            # just the cells, with hyperparameters
      zoo models                     # named models
      zoo train --encoder embedding --cell gru --aggregator mean-states --head sigmoid1
      zoo train gru-mean --epochs 2 --set cell.units=128
      zoo rank --preset seed-grid --limit 2000 --epochs 1
      zoo leaderboard --format github
    """
    ctx.obj = AppState(registry_file, plugins)


def main(argv=None):
    """Console-script entry point: holds Ctrl-C and SIGTERM (see :mod:`zoo_core.cli.signals`), hides native
    log lines (see :mod:`zoo_core.cli.quiet`), then runs ``zoo``."""
    signals.install()  # first thing: from here on Ctrl-C and SIGTERM end zoo with 130 or 143
    quiet.quiet_native_stderr()
    return cli.main(args=argv, prog_name="zoo")


def command_modules() -> list[str]:
    """The names of this package's command modules (every module but :data:`SUPPORT_MODULES`), sorted."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if info.name not in SUPPORT_MODULES)


# Command modules register themselves on `cli` when imported.
for _module in command_modules():
    importlib.import_module(f"zoo_core.cli.{_module}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
