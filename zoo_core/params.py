"""Hyperparameter declarations and validation.

Every component declares its hyperparameters as a tuple of :class:`HParam`.
The declarations drive validation (types and ranges), ``zoo components``
and ``--set key=value`` parsing, so a plugin gets all three for free.
"""

from __future__ import annotations

import dataclasses
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
        low: Smallest valid value (numbers only), inclusive.
        high: Largest valid value (numbers only), inclusive.
        choices: Valid values (strings only).
    """

    name: str
    type: type
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    def valid_range(self) -> str:
        """Describes the valid values, e.g. ``int in [1, 4096]``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        kind = _TYPE_NAMES.get(self.type, str(self.type))
        if self.low is None and self.high is None:
            return kind
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{kind} in [{low}, {high}]"

    def parse(self, text: str) -> Any:
        """Parses a command-line string into this parameter's type."""
        if self.type is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ZooError(f"parameter {self.name!r} got {text!r}; expected a bool (true or false)")
        try:
            return self.type(text)
        except ValueError:
            raise ZooError(f"parameter {self.name!r} got {text!r}; expected {self.valid_range()}") from None

    def validate(self, value: Any, owner: str = "") -> Any:
        """Checks the type and range of ``value`` and returns it, coerced.

        Raises:
            ZooError: naming the parameter and its valid range.
        """
        where = f"{owner}: parameter {self.name!r}" if owner else f"parameter {self.name!r}"
        if isinstance(value, str) and self.type is not str:
            try:
                value = self.parse(value)
            except ZooError as err:
                raise ZooError(f"{owner}: {err}" if owner else str(err)) from None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise ZooError(f"{where} got {value!r} ({type(value).__name__}); expected {self.valid_range()}")
        if self.choices and value not in self.choices:
            raise ZooError(f"{where} got {value!r}; expected {self.valid_range()}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
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
