"""``zoo models``: the named models, and the presets."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import format_option
from zoo_core.tables import MACHINE_FORMATS, render


@cli.command()
@click.argument("pattern", default="*")
@format_option()
@pass_state
def models(state, pattern, fmt):
    """List named models matching PATTERN (fnmatch on the name or on
    encoder/cell/aggregator/head), and the presets.

    \b
    Examples:
      zoo models
      zoo models 'gru*'
      zoo models '*/lstm/*'
    """
    registry = state.registry
    rows = []
    for name in registry.list("model", pattern):
        entry = registry.get("model", name)
        spec = entry.obj
        params = "; ".join(f"{k}.{p}={v}" for k, vals in sorted(spec.params.items()) for p, v in vals.items()) or "-"
        rows.append([name, spec.combo, params, entry.plugin, spec.description])
    click.echo(render(rows, ["model", "encoder/cell/aggregator/head", "params", "plugin", "description"], fmt))
    if fmt not in MACHINE_FORMATS and pattern == "*":
        presets = state.settings.presets
        if presets:
            click.echo()
            prows = [[p.name, len(registry.expand_preset(p)), p.description] for p in presets.values()]
            click.echo(render(prows, ["preset", "models", "description"], fmt))
