"""Heads: features ``[..., units]`` -> logits ``[..., k]``, their loss and P(positive).

Each head carries NumPy references of its maths (``numpy_logits``,
``numpy_loss``, ``numpy_prob_positive``, ``numpy_logits_from_prob``), which
the registry-driven tests compare with its TensorFlow code; the built-ins
register themselves at the bottom (``zoo_register_heads``).
"""

from __future__ import annotations

import abc


from zoo_core.component import Component
from zoo_core.hookspecs import hookimpl
from zoo_core.lazy import keras, np, tf

#: Probabilities are clipped to [EPSILON, 1 - EPSILON] before a log, as Keras does (``keras.config.epsilon()``).
EPSILON = 1e-7


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

    # -- NumPy references, from this instance's weights (the registry-driven tests use them) --
    def numpy_logits(self, features: np.ndarray) -> np.ndarray:
        """Reference of :meth:`__call__`: logits ``[..., k]`` for features ``[..., feature_dim]``."""
        return features @ self.kernel.numpy() + self.bias.numpy()

    def numpy_loss(self, labels: np.ndarray, logits: np.ndarray) -> float:
        """Reference of :meth:`loss`: the mean loss for ``labels`` ``[batch]`` in {0, 1} and logits ``[batch, k]``."""
        raise self._no_reference("numpy_loss(labels, logits)")

    def numpy_prob_positive(self, logits: np.ndarray) -> np.ndarray:
        """Reference of :meth:`prob_positive`: P(positive) ``[...]`` from logits ``[..., k]``."""
        raise self._no_reference("numpy_prob_positive(logits)")

    def numpy_logits_from_prob(self, prob: np.ndarray) -> np.ndarray:
        """Reference of :meth:`logits_from_prob`: logits ``[..., k]`` giving ``prob`` ``[...]``."""
        raise self._no_reference("numpy_logits_from_prob(prob)")

    def _no_reference(self, method: str) -> NotImplementedError:
        return NotImplementedError(f"head {self.name!r} ({type(self).__qualname__}) has no NumPy reference: "
                                   f"implement {method}")


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
        prob = tf.clip_by_value(prob, EPSILON, 1 - EPSILON)
        return (tf.math.log(prob) - tf.math.log1p(-prob))[..., None]

    def numpy_loss(self, labels, logits):
        z = logits[:, 0]
        # -log sigmoid(z) for positives, -log(1 - sigmoid(z)) = softplus(z) for negatives.
        return float(np.mean(np.where(labels == 1, np.logaddexp(0.0, -z), np.logaddexp(0.0, z))))

    def numpy_prob_positive(self, logits):
        return 1.0 / (1.0 + np.exp(-logits[..., 0]))

    def numpy_logits_from_prob(self, prob):
        prob = np.clip(prob, EPSILON, 1 - EPSILON)
        return np.log(prob / (1.0 - prob))[..., None]


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
        prob = tf.clip_by_value(prob, EPSILON, 1 - EPSILON)
        return tf.stack([tf.math.log1p(-prob), tf.math.log(prob)], axis=-1)

    def numpy_loss(self, labels, logits):
        log_probs = logits - np.logaddexp(logits[:, :1], logits[:, 1:])  # log softmax over the 2 logits
        return float(-np.mean(log_probs[np.arange(len(labels)), labels]))

    def numpy_prob_positive(self, logits):
        return np.exp(logits[..., 1] - np.logaddexp(logits[..., 0], logits[..., 1]))

    def numpy_logits_from_prob(self, prob):
        prob = np.clip(prob, EPSILON, 1 - EPSILON)
        return np.stack([np.log1p(-prob), np.log(prob)], axis=-1)


@hookimpl
def zoo_register_heads():
    return [SigmoidHead, SoftmaxHead]
