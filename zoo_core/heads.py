"""Heads: features ``[..., units]`` -> logits ``[..., k]``, their loss and P(positive)."""

from __future__ import annotations

import abc


from zoo_core.component import Component
from zoo_core.hookspecs import hookimpl
from zoo_core.lazy import keras, tf


class Head(Component):
    """Base head.

    Args:
        feature_dim: Size of the features it reads.
        **params: The head's declared hyperparameters.
    """

    kind = "head"
    num_logits: int = 0

    def __init__(self, feature_dim: int, **params):
        super().__init__(**params)
        self.feature_dim = int(feature_dim)
        self.kernel = tf.Variable(
            keras.initializers.GlorotUniform()((self.feature_dim, self.num_logits)), name="kernel"
        )
        self.bias = tf.Variable(tf.zeros([self.num_logits]), name="bias")

    def __call__(self, features: tf.Tensor) -> tf.Tensor:
        """Logits ``[..., k]`` for features ``[..., feature_dim]`` (any leading dims)."""
        return tf.tensordot(features, self.kernel, axes=1) + self.bias

    @abc.abstractmethod
    def loss(self, labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        """Mean loss over the batch; ``labels`` ``[batch]`` in {0, 1}."""

    @abc.abstractmethod
    def prob_positive(self, logits: tf.Tensor) -> tf.Tensor:
        """P(positive) ``[...]`` from logits ``[..., k]``."""

    @abc.abstractmethod
    def logits_from_prob(self, prob: tf.Tensor) -> tf.Tensor:
        """Inverse of :meth:`prob_positive`: logits ``[..., k]`` giving ``prob``."""


class SigmoidHead(Head):
    """One logit ``z``; ``P(positive) = sigmoid(z)``; binary cross-entropy."""

    name = "sigmoid1"
    aliases = ("sigmoid",)
    description = "1 logit, P(pos) = sigmoid(z), binary cross-entropy"
    num_logits = 1

    def __init__(self, feature_dim: int, **params):
        super().__init__(feature_dim, **params)
        self._loss = keras.losses.BinaryCrossentropy(from_logits=True)

    def loss(self, labels, logits):
        return self._loss(tf.cast(labels, tf.float32)[:, None], logits)

    def prob_positive(self, logits):
        return tf.sigmoid(logits[..., 0])

    def logits_from_prob(self, prob):
        prob = tf.clip_by_value(prob, 1e-7, 1 - 1e-7)
        return (tf.math.log(prob) - tf.math.log1p(-prob))[..., None]


class SoftmaxHead(Head):
    """Two logits; ``P(positive) = softmax(z)[1]``; sparse categorical cross-entropy."""

    name = "softmax2"
    aliases = ("softmax",)
    description = "2 logits, P(pos) = softmax(z)[1], sparse categorical cross-entropy"
    num_logits = 2

    def __init__(self, feature_dim: int, **params):
        super().__init__(feature_dim, **params)
        self._loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss(self, labels, logits):
        return self._loss(labels, logits)

    def prob_positive(self, logits):
        return tf.nn.softmax(logits, axis=-1)[..., 1]

    def logits_from_prob(self, prob):
        prob = tf.clip_by_value(prob, 1e-7, 1 - 1e-7)
        return tf.stack([tf.math.log1p(-prob), tf.math.log(prob)], axis=-1)


@hookimpl
def zoo_register_heads():
    return [SigmoidHead, SoftmaxHead]
