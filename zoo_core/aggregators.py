"""Aggregators: per-step outputs + mask + head -> logits ``[batch, k]``.

An aggregator receives the head because some apply it at every step
(``mean-logits``) rather than once on a pooled feature.
"""

from __future__ import annotations

import abc

import tensorflow as tf

from zoo_core.component import Component
from zoo_core.heads import Head
from zoo_core.unroll import UnrollResult


def masked_mean(values: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
    """Mean over time of ``values`` ``[batch, time, ...]`` at real steps only."""
    if mask is None:
        return tf.reduce_mean(values, axis=1)
    weights = tf.cast(mask, values.dtype)
    weights = tf.reshape(weights, tf.concat([tf.shape(weights), tf.ones([values.shape.rank - 2], tf.int32)], 0))
    total = tf.reduce_sum(values * weights, axis=1)
    return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


class Aggregator(Component):
    """Base aggregator.

    Args:
        feature_dim: Width of the cell's outputs.
        **params: The aggregator's declared hyperparameters.

    Attributes:
        needs_sequence: Whether it reads every step's output; when False the
            unroll keeps only the last output, saving memory.
    """

    kind = "aggregator"
    needs_sequence: bool = True

    def __init__(self, feature_dim: int, **params):
        super().__init__(**params)
        self.feature_dim = int(feature_dim)

    @abc.abstractmethod
    def __call__(self, result: UnrollResult, mask: tf.Tensor | None, head: Head, training: bool = False) -> tf.Tensor:
        """Logits ``[batch, k]``."""


class LastStep(Aggregator):
    """The output at the last real token (correct for pre- and post-padding)."""

    name = "last"
    description = "output at the last real token, then the head"
    needs_sequence = False

    def __call__(self, result, mask, head, training=False):
        return head(result.last_output)


class MeanStates(Aggregator):
    """The masked mean of the outputs over real steps, then the head."""

    name = "mean-states"
    description = "masked mean of the per-step outputs, then the head"

    def __call__(self, result, mask, head, training=False):
        return head(masked_mean(result.outputs, mask))


class MeanLogits(Aggregator):
    """The head at every real step, then the masked mean of the logits."""

    name = "mean-logits"
    description = "the head at every real step, then the masked mean of the logits"

    def __call__(self, result, mask, head, training=False):
        return masked_mean(head(result.outputs), mask)


BUILTIN_AGGREGATORS = (LastStep, MeanStates, MeanLogits)
