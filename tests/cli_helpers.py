"""Running ``zoo`` in-process for the CLI tests."""

from __future__ import annotations

from click.testing import CliRunner, Result

from zoo_core.cli import cli

# Tiny models on tiny data: a rank or train in a second or two.
TINY_RANK = ["--limit", "40", "--epochs", "1", "--maxlen", "20", "--set", "cell.units=4", "--set", "encoder.dim=4"]


def zoo(*args, expect: int | None = 0) -> Result:
    """Invokes ``zoo ARGS``; with ``expect``, fails the test (showing the output) on another exit status.

    The terminal is wide, so tables keep each cell on one line for the tests that read cells
    (tests/test_tables.py checks how tables fit a 100-column terminal).
    """
    result = CliRunner(env={"COLUMNS": "400"}).invoke(cli, [str(a) for a in args])
    if expect is not None and result.exit_code != expect:
        raise AssertionError(
            f"zoo {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}") from result.exception
    return result


def interruptible() -> None:
    """``preexec_fn`` for a child that the test will Ctrl-C.

    A shell starts background jobs with SIGINT ignored, and Python keeps an
    inherited "ignore" instead of raising KeyboardInterrupt; restoring the
    default makes the child behave as it does in a terminal, wherever CI runs.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
