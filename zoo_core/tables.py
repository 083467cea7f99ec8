"""Table output shared by every command that prints one: tabulate formats plus csv and json."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import tabulate

EXTRA_FORMATS = ("csv", "json")
TABLE_FORMATS = tuple(sorted(tabulate.tabulate_formats)) + EXTRA_FORMATS


#: Formats read on a terminal, whose long cells are wrapped to fit its width;
#: the others (github, latex, html, csv, json...) are for machines and documents
#: and keep every cell on one line.
WRAPPED_FORMATS = ("simple", "plain", "grid", "simple_grid", "rounded_grid", "fancy_grid", "psql", "outline",
                   "simple_outline", "rounded_outline", "fancy_outline", "presto", "orgtbl", "rst", "pretty")
MIN_COLUMN = 8  # characters: narrower than this, a wrapped column is harder to read than a wide table


def terminal_width() -> int | None:
    """The width to fit tables to, in characters, or None for no wrapping.

    ``$COLUMNS`` when set; else the terminal's width when standard output is
    one; else None: output piped to a file or another program keeps every
    cell on one line, so ids and values can be copied and parsed whole.
    """
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if sys.stdout.isatty():
            return shutil.get_terminal_size((100, 24)).columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


def fitted_widths(rows: Sequence[Sequence[Any]], headers: Sequence[str], width: int,
                  gap: int = 2) -> list[int | None] | None:
    """Per-column wrap widths that should make a table at most ``width`` characters wide.

    The widest column is narrowed first, one character at a time, never below
    :data:`MIN_COLUMN`; None for a column left as it is, and None in place of
    the list where the table already fits. An estimate: :func:`render`
    narrows further if the wrapped table is still too wide.
    """
    if not headers:
        return None
    natural = natural_widths(rows, headers)
    return _wrap_widths(natural, _narrowed(list(natural), sum(natural) + gap * (len(natural) - 1) - width))


def natural_widths(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> list[int]:
    """Each column's unwrapped width: its longest cell line, or its header plus tabulate's 2 of padding."""
    return [max([len(str(h)) + 2] + [max((len(line) for line in str(row[i]).splitlines()), default=0)
                                    for row in rows if i < len(row)]) for i, h in enumerate(headers)]


def _wrap_widths(natural: list[int], widths: list[int]) -> list[int | None] | None:
    return None if widths == natural else [w if w < n else None for w, n in zip(widths, natural)]


def _narrowed(widths: list[int], overflow: int) -> list[int]:
    """Takes ``overflow`` characters off the widest columns, none below :data:`MIN_COLUMN`."""
    for _ in range(max(overflow, 0)):
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= MIN_COLUMN:
            break
        widths[widest] -= 1
    return widths


def render(rows: Sequence[Sequence[Any]], headers: Sequence[str], fmt: str = "simple", floatfmt: str = "g",
           width: int | None = None) -> str:
    """Renders rows as a table in ``fmt``: any tabulate format, ``csv`` or ``json``.

    In the formats of :data:`WRAPPED_FORMATS`, text cells are wrapped so that
    the table fits ``width`` characters (default: :func:`terminal_width`; no
    wrapping when that is None, e.g. output to a file or a pipe).
    """
    if fmt == "json":
        return json.dumps([dict(zip(headers, row)) for row in rows], indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    width = width or terminal_width()
    widths = fitted_widths(rows, headers, width) if fmt in WRAPPED_FORMATS and width else None
    if widths is None:
        return tabulate.tabulate(rows, headers=headers, tablefmt=fmt, floatfmt=floatfmt)
    natural = natural_widths(rows, headers)
    while True:
        # tabulate pads headers by 2 (MIN_PADDING): wrap them 2 narrower so they never widen a column.
        text = tabulate.tabulate(rows, headers=headers, tablefmt=fmt, floatfmt=floatfmt, maxcolwidths=widths,
                                 maxheadercolwidths=[w and max(w - 2, 1) for w in widths])
        # Word breaks and borders can leave it wider than estimated: narrow the widest columns again.
        overflow = max(len(line) for line in text.splitlines()) - width
        current = [w or n for w, n in zip(widths, natural)]
        narrower = _narrowed(list(current), overflow)
        if overflow <= 0 or narrower == current:
            return text
        widths = _wrap_widths(natural, narrower)


def format_option(default: str = "simple"):
    """A ``--format`` click option accepting every table format."""
    return click.option(
        "--format", "fmt", default=default, show_default=True, type=click.Choice(TABLE_FORMATS),
        metavar="FORMAT", help="Table format: any tabulate format (plain, simple, github, grid, latex, html, ...), csv or json.",
    )


def wrap_caption(caption: str, fmt: str, width: int | None = None) -> str:
    """A table's caption wrapped to the terminal in the formats of :data:`WRAPPED_FORMATS`, as is otherwise."""
    width = width or terminal_width()
    if fmt not in WRAPPED_FORMATS or not width:
        return caption
    return "\n".join(textwrap.fill(line, width) for line in caption.splitlines())


#: Image formats the plots write (matplotlib's Agg canvas), by file suffix.
IMAGE_SUFFIXES = (".png", ".pdf", ".svg")


def image_path(path: str | os.PathLike) -> Path:
    """Where a plot will be written, checked before any work: its folder made if missing.

    Raises:
        ZooError: An empty path, a suffix other than :data:`IMAGE_SUFFIXES`, or a
            folder that cannot be made (a file in the way, no permission).
    """
    from zoo_core.errors import ZooError

    if not str(path).strip():
        raise ZooError("the plot's file name is empty: give a path ending in .png, .pdf or .svg")
    path = Path(path).expanduser()
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ZooError(f"cannot draw {path}: a plot file ends in {', '.join(IMAGE_SUFFIXES)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZooError(f"cannot write {path}: {err.strerror or err} ({path.parent})") from None
    return path
