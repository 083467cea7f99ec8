"""Errors that reach the user as one clear line.

Every failure caused by the user's input (an unknown component, a bad flag
value, missing or corrupt data, a broken plugin) raises :class:`ZooError`.
The CLI prints its message on one line and exits with status 2, without a
traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """A user-facing error: one line, no traceback, exit status 2."""

    exit_code = 2


class UnknownNameError(ZooError, KeyError):
    """An unknown component, model, preset or run name."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = ""):
        self.kind, self.name = kind, name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        message = f"unknown {kind} {name!r}"
        if not name.strip():  # e.g. --cell '': a slip, never a request for the default
            message = f"the {kind} name is empty"
        elif close:
            message += f"; did you mean {', '.join(repr(c) for c in close)}?"
        elif 0 < len(self.known) <= 8:  # short lists are worth showing whole
            message += f"; known: {', '.join(self.known)}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class DuplicateNameError(ZooError):
    """Two plugins registered the same name."""


class UndeclaredParamError(ZooError, KeyError):
    """A component's code read a hyperparameter its ``hparams`` do not declare (a plugin bug).

    Attributes:
        owner: The component, e.g. ``"cell 'leaky'"``.
        param: The hyperparameter it read.
    """

    def __init__(self, owner: str, param: str, declared: Iterable[str]):
        self.owner, self.param = owner, param
        known = ", ".join(sorted(declared)) or "none"
        super().__init__(f"{owner} reads hyperparameter {param!r}, which its hparams do not declare "
                         f"(declared: {known})")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]
