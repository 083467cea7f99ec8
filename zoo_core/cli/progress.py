"""Terminal progress bars and message lines for the core's callbacks (:mod:`zoo_core.progress`)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click

from zoo_core.progress import Bar

#: Training's bars are narrower than click's default (36): the running loss, accuracy and tokens/s follow them.
EPOCH_BAR_WIDTH = 24


class _ClickBar:
    def __init__(self, bar):
        self._bar = bar

    def update(self, n: int, text: str = "") -> None:
        self._bar.update(n, text or None)


class TerminalProgress:
    """A :data:`zoo_core.progress.Progress` drawing click progress bars on stderr.

    Args:
        width: The bar's width in characters (None: click's default).
    """

    def __init__(self, width: int | None = None):
        self.width = width

    @contextlib.contextmanager
    def __call__(self, length: int, label: str) -> Iterator[Bar]:
        options = {} if self.width is None else {"width": self.width}
        with click.progressbar(length=max(length, 1), label=label, file=sys.stderr, show_eta=True,
                               item_show_func=lambda text: text, **options) as bar:
            yield _ClickBar(bar)


#: Data loading's and downloading's bars (``zoo_core.data`` calls ``update(n)``), as wide as click's default.
DATA_BARS = TerminalProgress()


def echo_err(text: str) -> None:
    """A :data:`zoo_core.progress.Echo` writing the line to stderr."""
    click.echo(text, err=True)


def warn(message: str) -> None:
    """Prints ``warning: MESSAGE`` on stderr: how the library's ``warn`` callbacks reach the terminal."""
    click.echo(f"warning: {message}", err=True)
