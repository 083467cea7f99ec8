"""TensorFlow and Keras, imported on first use.

Importing TensorFlow takes seconds, so the modules that define components
bind ``tf`` and ``keras`` to the stand-ins below instead of importing them.
Listing, validating and naming components (``zoo --help``, ``zoo components``,
every bad-input error) then never imports TensorFlow; the first attribute
read (``tf.matmul``), which happens only when a model is built, does.

Plugins may do the same::

    from zoo_core.lazy import tf, keras
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Callable


class LazyModule:
    """Stands in for a module and imports it on the first attribute read.

    Each attribute read is cached on the stand-in, so later reads cost what a
    module attribute costs.

    Args:
        name: The module's import name, e.g. ``"tensorflow"``.

    Raises:
        ImportError: On the first attribute read, if the module is missing.
    """

    def __init__(self, name: str):
        object.__setattr__(self, "_lazy_name", name)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy/pickle/inspect probes must not import the module
            raise AttributeError(attr)
        value = getattr(importlib.import_module(self._lazy_name), attr)
        object.__setattr__(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._lazy_name!r}>"


tf = LazyModule("tensorflow")
keras = LazyModule("keras")
np = LazyModule("numpy")  # for NumPy references of component maths, used by tests, not to list components


def do_not_convert(function: Callable) -> Callable:
    """``tf.autograph.experimental.do_not_convert``, applied at the first call.

    For functions made of explicit ``tf.while_loop``s: AutoGraph has nothing to
    convert in them, and skipping it makes tracing faster. Applying the
    decorator at definition time would import TensorFlow.
    """
    @functools.cache
    def converted() -> Callable:
        return tf.autograph.experimental.do_not_convert(function)

    @functools.wraps(function)
    def call(*args, **kwargs):
        return converted()(*args, **kwargs)

    return call
