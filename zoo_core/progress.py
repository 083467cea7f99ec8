"""How library code reports progress and messages: callbacks the caller passes in.

The core (training, ranking, data loading) never prints nor imports click:
it takes a :data:`Progress` factory for progress bars and an :data:`Echo` for
lines of text, and does nothing when given None. The command line passes
terminal implementations (:mod:`zoo_core.cli.progress`); a notebook or a test
passes its own, or nothing.

A :data:`Progress` is called as ``progress(length, label)`` and returns a
context manager whose value has ``update(n, text="")``: ``n`` more units of
``length`` are done, and ``text`` (optional) says how it is going, e.g. the
running loss. ``length`` may be 0 (nothing to do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import ContextManager, Protocol


class Bar(Protocol):
    """The value of a :data:`Progress` context: advance it as work gets done."""

    def update(self, n: int, text: str = "") -> None:
        """``n`` more units are done; ``text``, if any, says how it is going."""


Progress = Callable[[int, str], ContextManager[Bar]]
Echo = Callable[[str], None]


class _NoBar:
    def update(self, n: int, text: str = "") -> None:
        pass


@contextlib.contextmanager
def no_progress(length: int, label: str) -> Iterator[Bar]:
    """A :data:`Progress` that shows nothing."""
    yield _NoBar()


def no_echo(text: str) -> None:
    """An :data:`Echo` that says nothing."""


def progress_or_silent(progress: Progress | None) -> Progress:
    """``progress``, or :func:`no_progress` for None (or False, as older callers pass).

    Raises:
        TypeError: ``progress`` is True or another value that is not callable:
            pass a factory, e.g. :class:`zoo_core.cli.progress.TerminalProgress`.
    """
    if progress is None or progress is False:
        return no_progress
    if not callable(progress):
        raise TypeError(f"progress must be a Progress factory (length, label) -> bar, or None; got {progress!r}")
    return progress


def echo_or_silent(echo: Echo | None) -> Echo:
    """``echo``, or :func:`no_echo` for None."""
    return no_echo if echo is None else echo
