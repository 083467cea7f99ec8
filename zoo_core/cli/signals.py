"""Ctrl-C (SIGINT) and SIGTERM for the ``zoo`` command: record the request, let the work stop cleanly.

Why not rely on ``KeyboardInterrupt`` alone: Python raises it wherever the main
thread happens to be, which may be a TensorFlow finaliser (``Exception ignored
in: ConcreteFunctionGarbageCollector.__del__``), where it is lost and the work
runs on, or a spot where nothing saves the trained model.

So, inside :func:`stoppable` (the part of ``zoo train`` and ``zoo rank`` that
trains, evaluates and saves), the first signal only records the request. The
core loops receive the :class:`StopRequest` as their ``should_stop`` callable and
check it between batches, evaluation batches, epochs and runs; they stop
cleanly, keeping what is done. A second signal raises :class:`Interrupt` (a
``KeyboardInterrupt``) at once.

Outside :func:`stoppable` (start-up, data loading, commands that do not check),
a signal raises :class:`Interrupt` at once, as Python's own handler would, but
for SIGTERM too. :class:`ExitOnInterrupt` turns an interrupt that reaches the
command line into its exit status instead of click's ``Aborted!`` and 1.

Exit status: ``128 + the number of the first signal``, the shell's convention:
130 for SIGINT (Ctrl-C) and 143 for SIGTERM. The ``zoo`` console script
(:mod:`zoo_core.launcher`) records a signal that arrives while Python imports
the command line, and :func:`install` then exits with that status. Only one
arriving before Python has imported ``zoo_core`` itself, or before
:func:`install` when ``zoo`` is started another way (``python -m
zoo_core.cli``), gets Python's default handling: SIGINT raises
``KeyboardInterrupt``, SIGTERM ends the process, which a shell also reports
as 130 or 143.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import click

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupt(KeyboardInterrupt):
    """Stop at once: a signal outside :func:`stoppable`, or a second one inside it.

    Attributes:
        exit_status: 128 + the first signal's number (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, exit_status: int = 128 + signal.SIGINT):
        super().__init__()
        self.exit_status = exit_status


class StopRequest:
    """Whether SIGINT or SIGTERM asked this command to stop; call it: ``should_stop()``.

    Attributes:
        signum: The first signal received, or None.
        count: How many signals were received.
        deferring: Inside :func:`stoppable`: the first signal is recorded, not raised.
    """

    def __init__(self):
        self.signum: int | None = None
        self.count = 0
        self.deferring = False

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_status(self) -> int:
        """128 + the first signal's number: 130 for SIGINT, 143 for SIGTERM (130 if none came)."""
        return 128 + int(self.signum or signal.SIGINT)

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        """A block inside :func:`stoppable` that cannot check the request (e.g. loading data).

        A signal in it raises :class:`Interrupt` at once instead of waiting
        for a check that would come only after the block.
        """
        if self():
            raise Interrupt(self.exit_status)
        deferring, self.deferring = self.deferring, False
        try:
            yield
        finally:
            self.deferring = deferring

    def handle(self, signum: int, frame) -> None:
        """The signal handler. It only records, and raises at most; it never prints.

        Writing to stderr here could land inside the main thread's own write
        (a progress bar), which Python refuses as a reentrant call.
        """
        self.count += 1
        if self.signum is None:
            self.signum = signum
        if self.deferring and self.count == 1:
            return  # the work checks the request at its next batch, epoch or run
        raise Interrupt(self.exit_status)


_installed: StopRequest | None = None  # the process's request, once the console entry point installed it
early_signals: list[int] = []  # recorded by zoo_core.launcher while Python imported the command line


def _set_handlers(handler) -> dict[int, object]:
    """Points SIGINT and SIGTERM at ``handler``; returns the handlers it replaced."""
    previous = {}
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue  # e.g. a background job of a script: it is meant to ignore Ctrl-C
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread: signals keep their default handling
            pass
    return previous


def install() -> StopRequest:
    """Routes SIGINT and SIGTERM to a fresh :class:`StopRequest` for the rest of the process.

    For the console entry point only (it changes process-wide state); called
    as early as the ``zoo`` command starts.

    Raises:
        SystemExit: 130 or 143 if :mod:`zoo_core.launcher` recorded a signal
            while Python imported the command line.
    """
    global _installed
    _installed = StopRequest()
    _set_handlers(_installed.handle)
    if early_signals:  # from here on the handler above records; before, the launcher's did
        name = signal.Signals(early_signals[0]).name
        click.echo(f"stopped by {name} while starting", err=True)
        raise SystemExit(128 + early_signals[0])
    return _installed


def stop_requested() -> bool:
    """Whether SIGINT or SIGTERM reached the handlers :func:`install` set (False without them)."""
    return _installed is not None and _installed()


def stop_exit_status() -> int:
    """130 or 143 for the first signal :func:`install`'s handlers received (130 if none)."""
    return _installed.exit_status if _installed is not None else 128 + signal.SIGINT


@contextlib.contextmanager
def stoppable() -> Iterator[StopRequest]:
    """A block whose work checks ``should_stop()`` itself: the first signal is only recorded.

    Yields the :class:`StopRequest` to pass to the core as ``should_stop``.
    Without :func:`install` (``zoo`` run in-process, e.g. by tests), the
    handlers are installed for this block only and restored after it.

    Raises:
        Interrupt: on entry, if a signal already arrived (one raised during
            start-up but swallowed, e.g. by a finaliser, is still honoured).
    """
    request, previous = _installed, {}
    if request is None:
        request = StopRequest()
        previous = _set_handlers(request.handle)
    try:
        if request():
            raise Interrupt(request.exit_status)
        request.deferring = True
        yield request
    finally:
        request.deferring = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class ExitOnInterrupt:
    """A click group mix-in: an interrupt ends ``zoo`` with 130 (143 for SIGTERM), not ``Aborted!`` and 1."""

    def make_context(self, *args, **kwargs):
        with _exit_on_interrupt():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _exit_on_interrupt():
            return super().invoke(ctx)


@contextlib.contextmanager
def _exit_on_interrupt() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt as err:
        status = getattr(err, "exit_status", 128 + signal.SIGINT)
        click.echo(f"\nstopped by {signal.Signals(status - 128).name}", err=True)
        raise SystemExit(status) from None
