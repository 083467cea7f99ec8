"""Table output shared by every command that prints one: tabulate formats plus csv and json."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import click
import tabulate

EXTRA_FORMATS = ("csv", "json")
TABLE_FORMATS = tuple(sorted(tabulate.tabulate_formats)) + EXTRA_FORMATS


def render(rows: Sequence[Sequence[Any]], headers: Sequence[str], fmt: str = "simple", floatfmt: str = "g") -> str:
    """Renders rows as a table in ``fmt``: any tabulate format, ``csv`` or ``json``."""
    if fmt == "json":
        return json.dumps([dict(zip(headers, row)) for row in rows], indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    return tabulate.tabulate(rows, headers=headers, tablefmt=fmt, floatfmt=floatfmt)


def format_option(default: str = "simple"):
    """A ``--format`` click option accepting every table format."""
    return click.option(
        "--format", "fmt", default=default, show_default=True, type=click.Choice(TABLE_FORMATS),
        metavar="FORMAT", help="Table format: any tabulate format (plain, simple, github, grid, latex, html, ...), csv or json.",
    )
