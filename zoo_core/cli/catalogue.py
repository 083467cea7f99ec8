"""``zoo components``, ``zoo models``, ``zoo plugins``: what the registry holds."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import format_option
from zoo_core.config import KINDS
from zoo_core.tables import MACHINE_FORMATS, render


def describe_hparams(cls) -> str:
    """``units=64 (int in [1, 8192]); kernel_init=glorot (one of ...)``."""
    return "; ".join(f"{p.name}={p.default} ({p.valid_range()})" for p in cls.hparams) or "-"


@cli.command()
@click.argument("kind", required=False, type=click.Choice(KINDS))
@click.option("--filter", "pattern", default="*", metavar="PATTERN", help="fnmatch pattern on names, e.g. 'mean-*'.")
@format_option()
@pass_state
def components(state, kind, pattern, fmt):
    """List components: name, plugin, description and hyperparameters.

    \b
    Examples:
      zoo components
      zoo components cell
      zoo components aggregator --filter 'mean-*' --format github
    """
    registry = state.registry
    rows = []
    for k in [kind] if kind else KINDS:
        for name in registry.list(k, pattern):
            entry = registry.get(k, name)
            cls = entry.obj
            aliases = ", ".join(getattr(cls, "aliases", ())) or ""
            rows.append([k, name + (f" ({aliases})" if aliases else ""), entry.plugin, cls.description,
                         describe_hparams(cls)])
    click.echo(render(rows, ["kind", "name", "plugin", "description", "hyperparameters"], fmt))


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
