"""``zoo plugins``: what each plugin registered, and why one failed."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import format_option
from zoo_core.tables import render


@cli.command()
@format_option()
@pass_state
def plugins(state, fmt):
    """List plugins: name, version, source, status, what each registered and load errors.

    A failed plugin's error says why; what it did register still works.
    """
    registry = state.registry
    root = click.get_current_context().find_root()
    root.command.add_plugin_commands(root)  # so a failing or clashing command hook shows here too
    rows = []
    for info in registry.plugins.values():
        what = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items()) or "-"
        rows.append([info.name, info.version, info.source, info.status, what, info.error])
    click.echo(render(rows, ["plugin", "version", "source", "status", "registered", "error"], fmt))
