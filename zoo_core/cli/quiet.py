"""A quiet terminal: TensorFlow's, absl's and oneDNN's log lines are dropped.

TensorFlow 2.21's native code writes its log lines (``I0000 ... cpu_feature_guard``,
``E0000 ... oneDNN supports DT_BOOL only on platforms with AVX-512``) straight
to file descriptor 2, and ``TF_CPP_MIN_LOG_LEVEL`` no longer silences all of
them, so they can only be caught below Python. :func:`quiet_native_stderr`
points descriptor 2 at a pipe and a thread copies every line to the real
standard error except those log lines; Python's own ``sys.stderr`` (errors,
warnings, progress bars) writes to the real standard error directly, so its
partial lines and its order are untouched.

This is process-wide state, so only the command line entry point sets it up;
``zoo --verbose`` (or ``ZOO_VERBOSE=1``) lets everything through.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import re
import sys
import threading
import warnings

#: Native log lines: absl's ``I0000 00:00:1795957326.415932    1894 file.cc:227] ...`` (before
#: absl is initialised the time reads ``00:00:<seconds since the epoch>``)
#: (levels I, W and E; F, a fatal error, always gets through), TF's older
#: ``2026-11-29 13:00:00.123: W tensorflow/...`` form, absl's preamble and the
#: second line of the CPU-feature notice.
NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]]+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags)"
)

#: Python-side loggers of the same libraries, raised to ERROR.
PYTHON_LOGGERS = ("tensorflow", "absl", "keras", "h5py")


class _NativeLogFilter:
    """The state :func:`quiet_native_stderr` sets up, and undoes on :meth:`release`."""

    def __init__(self) -> None:
        self.passthrough = False
        self.set_log_level = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
        self.warning_filters = list(warnings.filters)

    def release(self) -> None:
        """Lets every line through again (``--verbose``); call it before TensorFlow is imported."""
        self.passthrough = True
        if self.set_log_level:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        for name in PYTHON_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        warnings.filters[:] = self.warning_filters


_active: _NativeLogFilter | None = None


def quiet_native_stderr() -> None:
    """Drops TF/absl/oneDNN log lines from descriptor 2 for the rest of the process.

    Also raises the Python loggers in :data:`PYTHON_LOGGERS` to ``ERROR``,
    ignores Python warnings raised from ``tensorflow``, ``keras`` and ``absl``
    modules, and sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the environment sets
    it. Call it before TensorFlow is imported; :func:`release` undoes it.
    Where descriptor 2 cannot be duplicated (an embedded interpreter without
    one), only the Python side is quietened.
    """
    global _active
    if _active is not None:
        return
    _active = quiet = _NativeLogFilter()
    if quiet.set_log_level:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    for name in PYTHON_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|absl)(\.|$)")
    try:
        sys.stderr.flush()
        real_stderr = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    # Python's own writes bypass the filter: same terminal, no line buffering imposed.
    sys.stderr = io.TextIOWrapper(io.FileIO(real_stderr, "w", closefd=False), encoding=sys.stderr.encoding,
                                  errors="backslashreplace", line_buffering=True)
    copier = threading.Thread(target=_copy_lines, args=(read_end, real_stderr, quiet), name="zoo-stderr-filter",
                              daemon=True)
    copier.start()

    def drain() -> None:  # at exit: close our write end so the copier sees EOF and flushes
        try:
            sys.stderr.flush()
            os.dup2(real_stderr, 2)
        except (OSError, ValueError):
            return
        copier.join(timeout=1.0)

    atexit.register(drain)


def release() -> None:
    """Undoes :func:`quiet_native_stderr` (``zoo --verbose``); does nothing if it was not called."""
    if _active is not None:
        _active.release()


def _copy_lines(read_end: int, real_stderr: int, quiet: _NativeLogFilter) -> None:
    with io.open(read_end, "rb", buffering=0, closefd=True) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines
                           if quiet.passthrough or not NATIVE_LOG_LINE.match(line))
            if kept:
                os.write(real_stderr, kept)
        if pending and (quiet.passthrough or not NATIVE_LOG_LINE.match(pending)):
            os.write(real_stderr, pending)
