"""The base every component kind shares: a name, a description, hyperparameters."""

from __future__ import annotations

import functools
import re
from typing import Any, ClassVar


from zoo_core.lazy import tf
from zoo_core.params import HParam, resolve


class Component:
    """Base of encoders, cells, aggregators and heads.

    Subclasses set the class attributes below; the registry reads them without
    building the component, so ``zoo components`` stays cheap.

    Every instance is a ``tf.Module`` (its variables are tracked and
    checkpointed), but the classes are not: defining, listing and validating
    components must not import TensorFlow. :meth:`__new__` builds each instance
    from ``trackable_class(cls)``, the class with ``tf.Module`` mixed in, so
    ``isinstance(component, cls)`` and ``isinstance(component, tf.Module)``
    both hold.

    Attributes:
        kind: ``"encoder"``, ``"cell"``, ``"aggregator"`` or ``"head"``.
        name: Registry name, e.g. ``"gru"``.
        description: One line shown by ``zoo components``.
        hparams: Declared hyperparameters.
        aliases: Other names accepted by the registry (e.g. ``"sigmoid"``).
        wants_registry: Whether :meth:`Registry.create` passes itself as
            ``registry=`` (components built from other components by name).
        params: The validated hyperparameters of this instance.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    hparams: ClassVar[tuple[HParam, ...]] = ()
    aliases: ClassVar[tuple[str, ...]] = ()
    wants_registry: ClassVar[bool] = False

    def __new__(cls, *args: Any, **kwargs: Any):
        return object.__new__(trackable_class(cls))

    def __init__(self, **params: Any):
        # tf.Module names must be identifiers; registry names may hold dashes.
        super().__init__(name=re.sub(r"\W", "_", self.name) or None)
        self.params = resolve(self.hparams, params, f"{self.kind} {self.name!r}")


@functools.cache
def trackable_class(cls: type) -> type:
    """``cls`` with ``tf.Module`` mixed in (imports TensorFlow); ``cls`` itself if it has it.

    The subclass keeps ``cls``'s name, module and docstring, so it reads as
    ``cls`` in reprs and error messages. A copy or a pickle of an instance
    rebuilds it through this same function and gets the same class back.
    """
    if issubclass(cls, tf.Module):
        return cls
    return type(cls.__name__, (cls, tf.Module),
                {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
