"""The base every component kind shares: a name, a description, hyperparameters."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import tensorflow as tf

from zoo_core.params import HParam, resolve


class Component(tf.Module):
    """Base of encoders, cells, aggregators and heads.

    Subclasses set the class attributes below; the registry reads them without
    building the component, so ``zoo components`` stays cheap.

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

    def __init__(self, **params: Any):
        # tf.Module names must be identifiers; registry names may hold dashes.
        super().__init__(name=re.sub(r"\W", "_", self.name) or None)
        self.params = resolve(self.hparams, params, f"{self.kind} {self.name!r}")
