"""Registers the built-in encoders, cells, aggregators and heads."""

from zoo_core import hookimpl
from zoo_core.aggregators import BUILTIN_AGGREGATORS
from zoo_core.cells import zoo_register_cells  # noqa: F401  (registered here until zoo_core.cells is listed itself)
from zoo_core.encoders import BUILTIN_ENCODERS
from zoo_core.heads import BUILTIN_HEADS


@hookimpl
def zoo_register_encoders():
    return list(BUILTIN_ENCODERS)


@hookimpl
def zoo_register_aggregators():
    return list(BUILTIN_AGGREGATORS)


@hookimpl
def zoo_register_heads():
    return list(BUILTIN_HEADS)
