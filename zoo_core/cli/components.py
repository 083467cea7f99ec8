"""``zoo components``: the registered components, by kind, with their plugin and hyperparameters."""

from __future__ import annotations

import click

from zoo_core.cli import cli, pass_state
from zoo_core.cli.options import format_option
from zoo_core.config import KINDS
from zoo_core.tables import render


def describe_hparams(cls) -> str:
    """``units=64 (int in [1, 8192]); kernel_init=glorot (one of ...)``."""
    return "; ".join(f"{p.name}={p.default} ({p.valid_range()})" for p in cls.hparams) or "-"


@cli.command()
@click.argument("kind", required=False, type=click.Choice(KINDS))
@click.option("--filter", "pattern", default="*", metavar="PATTERN", help="fnmatch pattern on names, e.g. 'mean-*'.")
@click.option("--params", "by_param", is_flag=True,
              help="One row per hyperparameter: its default, valid values and what it does (set it with "
                   "--set KIND.NAME=VALUE).")
@format_option()
@pass_state
def components(state, kind, pattern, by_param, fmt):
    """List components: name, plugin, description and hyperparameters.

    \b
    Examples:
      zoo components
      zoo components cell
      zoo components aggregator --filter 'mean-*' --format github
      zoo components cell --filter skip --params     # what each of skip's settings does
    """
    registry = state.registry
    rows = []
    for k in [kind] if kind else KINDS:
        for name in registry.list(k, pattern):
            entry = registry.get(k, name)
            cls = entry.obj
            if by_param:
                rows += [[k, name, p.name, p.default, p.valid_range(), p.help] for p in cls.hparams]
                continue
            aliases = ", ".join(getattr(cls, "aliases", ())) or ""
            rows.append([k, name + (f" ({aliases})" if aliases else ""), entry.plugin, cls.description,
                         describe_hparams(cls)])
    headers = (["kind", "name", "parameter", "default", "values", "what it does"] if by_param
               else ["kind", "name", "plugin", "description", "hyperparameters"])
    click.echo(render(rows, headers, fmt))
