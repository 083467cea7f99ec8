"""The ``zoo`` console script: hold Ctrl-C and SIGTERM from its first moment, then run the command line.

Importing the command line (click, NumPy, tabulate, ...) takes from a few
tenths of a second to seconds on a busy machine. A signal in that time would
get Python's default handling: a ``KeyboardInterrupt`` traceback, or death by
SIGTERM. So, before importing anything, this only records such a signal;
:func:`zoo_core.cli.signals.install`, the first thing ``zoo`` does once
imported, then ends it with exit status 130 (SIGINT) or 143 (SIGTERM).

When a signal stopped the command, its work is saved and reported by the
time the command returns, so ``zoo`` then leaves at once with ``os._exit``
(after the exit functions): TensorFlow's teardown at interpreter exit takes
seconds on a busy machine. The status is the command's, or 130/143 if it
went on to its end because a finaliser swallowed the interrupt.
"""

import atexit
import os
import signal
import sys


def main():
    """Console-script entry point: :func:`zoo_core.cli.main` with the signals of its imports kept."""
    early: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # a background job of a script keeps ignoring Ctrl-C
            signal.signal(signum, lambda number, frame: early.append(number))

    from zoo_core.cli import main as cli_main
    from zoo_core.cli import signals

    signals.early_signals = early  # read, and the handlers replaced, by install() at the start of cli_main
    try:
        return cli_main()
    except SystemExit as end:
        if signals.stop_requested():
            # The work is saved and reported; Python's and TensorFlow's teardown would take seconds more.
            # The exit functions still run: the quiet stderr filter drains its pipe in one.
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
            code = end.code if isinstance(end.code, int) else int(end.code is not None)
            # A command that went on to the end (its interrupt swallowed by a finaliser) still says it was stopped.
            os._exit(code or signals.stop_exit_status())
        raise
    finally:
        # The work is over and kept: a signal while Python exits gets the default action (the shell
        # reports 130 or 143), not zoo's handler, which would raise into the interpreter's exit.
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
