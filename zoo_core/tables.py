"""Table output shared by every command that prints one: tabulate formats plus csv and json."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sys
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


#: Where a long word may break: after a slash, underscore or hyphen that follows a letter and is followed by
#: no digit (``embedding/``, ``test_``, ``mean-``; never inside ``2.8e-05``, ``06-01`` or ``-0.5``).
_BREAK = re.compile(r"(?<=[^/_\-\s][/_-])(?=[^\d/_-])")
#: Run ids (:func:`zoo_core.results.new_run_id`): never split, digits or not.
RUN_ID = re.compile(r"[0-9a-f]{12}")


def _pieces(word: str) -> list[str]:
    """``word`` cut where it may break; a piece holding a digit (a number, ``sigmoid1``) and a run id stay
    whole."""
    return [word] if RUN_ID.fullmatch(word) else _BREAK.split(word)


def _whole(piece: str) -> bool:
    return any(c.isdigit() for c in piece) or bool(RUN_ID.fullmatch(piece))


def wrap_text(text: str, width: int) -> str:
    """``text`` wrapped to ``width`` columns at spaces, then at ``/``, ``_`` or ``-`` inside long words.

    Numbers (any piece holding a digit) and run ids are never split: a line
    holding one longer than ``width`` is left longer. Line breaks already in
    the text are kept; runs of spaces within a line become one.
    """
    lines = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split():
            if len(line) + 1 + len(word) <= width if line else len(word) <= width:
                line = f"{line} {word}" if line else word
                continue
            if line:
                lines.append(line)
                line = ""
            for piece in _pieces(word):
                # A plain piece longer than a line (a very long word) is cut anywhere; a whole one never.
                for part in [piece] if _whole(piece) else [piece[k:k + width] for k in range(0, len(piece), width)]:
                    if line and len(line) + len(part) > width:
                        lines.append(line)
                        line = ""
                    line += part
        lines.append(line)
    return "\n".join(lines)


def piece_width(cell: Any, plain_too: bool = False) -> int:
    """The narrowest a column can be for ``cell`` without splitting a number or run id (with
    ``plain_too``: without cutting any word except at its break points)."""
    if not isinstance(cell, str):
        return len(str(cell))  # numbers are never wrapped
    return max((len(piece) for word in cell.split() for piece in _pieces(word) if plain_too or _whole(piece)),
               default=0)


def fitted_widths(rows: Sequence[Sequence[Any]], headers: Sequence[str], width: int,
                  gap: int = 2) -> list[int | None] | None:
    """Per-column wrap widths that should make a table at most ``width`` characters wide.

    The widest column is narrowed first, one character at a time, never below
    :data:`MIN_COLUMN` nor below its longest number or run id (see
    :func:`floor_widths`); None for a column left as it is, and None in place
    of the list where the table already fits. An estimate: :func:`render`
    narrows further if the wrapped table is still too wide.
    """
    if not headers:
        return None
    natural = natural_widths(rows, headers)
    overflow = sum(natural) + gap * (len(natural) - 1) - width
    return _wrap_widths(natural, _narrowed_in_turn(list(natural), overflow, rows, headers))


def natural_widths(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> list[int]:
    """Each column's unwrapped width: its longest cell line, or its header plus tabulate's 2 of padding."""
    return [max([len(str(h)) + 2] + [max((len(line) for line in str(row[i]).splitlines()), default=0)
                                    for row in rows if i < len(row)]) for i, h in enumerate(headers)]


def floor_widths(rows: Sequence[Sequence[Any]], headers: Sequence[str], plain_too: bool = False) -> list[int]:
    """Each column's narrowest width: :data:`MIN_COLUMN`, or its longest number or run id if longer (with
    ``plain_too``, its longest word between break points); a header's counts tabulate's 2 of padding."""
    return [max([MIN_COLUMN, piece_width(str(h), plain_too) + 2]
                + [piece_width(row[i], plain_too) for row in rows if i < len(row)]) for i, h in enumerate(headers)]


def _narrowed_in_turn(widths: list[int], overflow: int, rows, headers) -> list[int]:
    """Takes ``overflow`` characters off: first down to where no word is cut, then down to where no
    number or run id would be."""
    before = sum(widths)
    widths = _narrowed(widths, overflow, floor_widths(rows, headers, plain_too=True))
    return _narrowed(widths, overflow - (before - sum(widths)), floor_widths(rows, headers))


def _wrap_widths(natural: list[int], widths: list[int]) -> list[int | None] | None:
    return None if widths == natural else [w if w < n else None for w, n in zip(widths, natural)]


def _narrowed(widths: list[int], overflow: int, floors: Sequence[int] | None = None) -> list[int]:
    """Takes ``overflow`` characters off the widest columns, none below its floor (default :data:`MIN_COLUMN`)."""
    floors = floors or [MIN_COLUMN] * len(widths)
    for _ in range(max(overflow, 0)):
        narrowable = [i for i in range(len(widths)) if widths[i] > floors[i]]
        if not narrowable:
            break
        widths[max(narrowable, key=widths.__getitem__)] -= 1
    return widths


def _wrapped(rows: Sequence[Sequence[Any]], headers: Sequence[str],
             widths: Sequence[int | None]) -> tuple[list[list[Any]], list[str]]:
    """Text cells wrapped by :func:`wrap_text` to ``widths`` (None: as they are); headers 2 narrower, since
    tabulate pads them by 2 (MIN_PADDING) and they must not widen a column."""
    def cell(value, w):
        return wrap_text(value, w) if w and isinstance(value, str) else value

    return ([[cell(v, w) for v, w in zip(row, widths)] + list(row[len(widths):]) for row in rows],
            [cell(str(h), w and max(w - 2, 1)) for h, w in zip(headers, widths)])


def render(rows: Sequence[Sequence[Any]], headers: Sequence[str], fmt: str = "simple", floatfmt: str = "g",
           width: int | None = None) -> str:
    """Renders rows as a table in ``fmt``: any tabulate format, ``csv`` or ``json``.

    In the formats of :data:`WRAPPED_FORMATS`, text cells are wrapped so that
    the table fits ``width`` characters (default: :func:`terminal_width`; no
    wrapping when that is None, e.g. output to a file or a pipe), at spaces
    and never inside a number or run id (see :func:`wrap_text`).
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
    columns = list(headers) or [""] * max((len(row) for row in rows), default=0)  # no headers: key/value rows
    widths = fitted_widths(rows, columns, width) if fmt in WRAPPED_FORMATS and width else None
    if widths is None:
        return tabulate.tabulate(rows, headers=headers, tablefmt=fmt, floatfmt=floatfmt)
    natural = natural_widths(rows, columns)
    while True:
        cells, names = _wrapped(rows, columns, widths)
        text = tabulate.tabulate(cells, headers=names if headers else (), tablefmt=fmt, floatfmt=floatfmt)
        # Word breaks and borders can leave it wider than estimated: narrow the widest columns again.
        overflow = max(len(line) for line in text.splitlines()) - width
        current = [w or n for w, n in zip(widths, natural)]
        narrower = _narrowed_in_turn(list(current), overflow, rows, columns)
        if overflow <= 0 or narrower == current:
            return text
        widths = _wrap_widths(natural, narrower) or [None] * len(natural)


def fit_text(text: str, width: int | None = None) -> str:
    """Free text wrapped by :func:`wrap_text` to ``width`` (default: :func:`terminal_width`), or as it is
    where that is None (output to a file or a pipe)."""
    width = width or terminal_width()
    return wrap_text(text, width) if width else text


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
    return "\n".join(wrap_text(line, width) for line in caption.splitlines())


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
