"""Hyperparameter declarations and validation.

Every component declares its hyperparameters as a tuple of :class:`HParam`.
The declarations drive validation (types and ranges), ``zoo components``
and ``--set key=value`` parsing, so a plugin gets all three for free.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from zoo_core.errors import UndeclaredParamError, ZooError

_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str"}


@dataclasses.dataclass(frozen=True)
class HParam:
    """One hyperparameter of a component.

    Attributes:
        name: Name used in specs and ``--set component.name=value``.
        type: One of ``int``, ``float``, ``bool``, ``str``.
        default: Default value, of ``type``.
        help: One-line description.
        low: Smallest valid value (numbers only), inclusive unless ``low_open``.
        high: Largest valid value (numbers only), inclusive unless ``high_open``.
        choices: Valid values (strings only).
        low_open: ``low`` itself is invalid, e.g. a learning rate must be above 0.
        high_open: ``high`` itself is invalid, e.g. a dropout rate must be below 1.
        allow_nonfinite: NaN and the infinities are valid (floats only; never by default,
            because NaN passes every comparison and so any range check).
        allow_empty: The empty string is valid (strings without ``choices``; a name never is).
            Even then it is not accepted as command-line text: see :meth:`parse`.
        tiny: A small valid value that the registry-driven tests build every
            component with, so they stay fast (e.g. ``units``: 5 instead of 64);
            ``None`` when the default is small already. Never used in training.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    low_open: bool = False
    high_open: bool = False
    allow_nonfinite: bool = False
    allow_empty: bool = False
    tiny: Any = None

    def valid_range(self) -> str:
        """Describes the valid values, e.g. ``int in [1, 4096]`` or ``float in (0.0, 100.0]``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        kind = _TYPE_NAMES.get(self.type, str(self.type))
        if self.type is str and not self.allow_empty:
            return "a non-empty str"
        if self.low is None and self.high is None:
            return kind
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{kind} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"

    def _where(self, owner: str = "", label: str | None = None) -> str:
        if label:
            return label
        return f"{owner}: parameter {self.name!r}" if owner else f"parameter {self.name!r}"

    def parse(self, text: str, label: str | None = None) -> Any:
        """Parses a command-line string into this parameter's type (the range is :meth:`validate`'s).

        Args:
            text: What the user typed.
            label: How errors name the value (e.g. ``--lr``); default ``parameter 'NAME'``.

        Raises:
            ZooError: an empty or blank text (for every type: on the command line an
                empty value is a slip, never a choice), or one that is not of the type.
        """
        where = self._where(label=label)
        if not text.strip():
            if self.allow_empty:  # its empty value is the default: say so rather than "expected str"
                raise ZooError(f"{where} got an empty value; leave it out for the default")
            raise ZooError(f"{where} got an empty value; expected {self.valid_range()}")
        if self.type is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ZooError(f"{where} got {text!r}; expected a bool (true or false)")
        try:
            return self.type(text)
        except ValueError:
            raise ZooError(f"{where} got {text!r}; expected {self.valid_range()}") from None

    def validate(self, value: Any, owner: str = "", label: str | None = None) -> Any:
        """Checks the type and range of ``value`` and returns it, coerced.

        Args:
            value: A value of the type, or command-line text to :meth:`parse` first.
            owner: The component or section, named in errors (e.g. ``train``).
            label: Names the value in errors instead (e.g. ``--lr``).

        Raises:
            ZooError: naming the parameter and its valid range.
        """
        where = self._where(owner, label)
        if isinstance(value, str) and self.type is not str:
            try:
                value = self.parse(value, label)
            except ZooError as err:
                raise ZooError(f"{owner}: {err}" if owner and not label else str(err)) from None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise ZooError(f"{where} got {value}; expected {self.valid_range()}") from None
        if self.type is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise ZooError(f"{where} got {value!r} ({type(value).__name__}); expected {self.valid_range()}")
        if self.type is float and not self.allow_nonfinite and not math.isfinite(value):
            raise ZooError(f"{where} got {value!r}; expected {self.valid_range()} (a finite number)")
        if self.choices and value not in self.choices:
            raise ZooError(f"{where} got {value!r}; expected {self.valid_range()}")
        if self.type is str and not self.choices and not self.allow_empty and not value.strip():
            raise ZooError(f"{where} got an empty value; expected {self.valid_range()}")
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise ZooError(f"{where} got {value!r}; expected {self.valid_range()}")
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            raise ZooError(f"{where} got {value!r}; expected {self.valid_range()}")
        return value


def resolve(declared: Sequence[HParam], given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Merges ``given`` over the declared defaults and validates every value.

    Args:
        declared: The component's declarations.
        given: User-supplied values; unknown names are an error.
        owner: Component name, used in error messages.

    Returns:
        A complete :class:`Params` mapping of every declared name to a validated value.
    """
    by_name = {p.name: p for p in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        valid = ", ".join(sorted(by_name)) or "none"
        raise ZooError(f"{owner} has no parameter {unknown[0]!r} (its parameters: {valid})")
    return Params({p.name: p.validate(given.get(p.name, p.default), owner) for p in declared}, owner)


class Params(dict):
    """Validated hyperparameters; reading an undeclared one raises :class:`UndeclaredParamError`, not a bare KeyError."""

    def __init__(self, values: Mapping[str, Any] | Iterable = (), owner: str = "a component"):
        super().__init__(values)
        self.owner = owner

    def __missing__(self, key: str):
        raise UndeclaredParamError(self.owner, key, self)

    def __reduce__(self):
        return type(self), (dict(self), self.owner)
