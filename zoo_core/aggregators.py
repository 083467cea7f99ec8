"""Aggregators: per-step outputs + mask + head -> logits ``[batch, k]``.

An aggregator receives the head because some apply it at every step
(``mean-logits``) rather than once on a pooled feature. Each carries a NumPy
reference of its maths (:meth:`Aggregator.numpy_reference`, which calls the
head's own NumPy references), which the registry-driven tests compare with
its TensorFlow code; the built-ins register themselves at the bottom
(``zoo_register_aggregators``).
"""

from __future__ import annotations

import abc


from zoo_core.component import Component
from zoo_core.heads import Head
from zoo_core.hookspecs import hookimpl
from zoo_core.lazy import np, tf
from zoo_core.params import HParam
from zoo_core.unroll import UnrollResult

# Dropout on what a pooling aggregator hands the head (Johnson & Zhang 2016 drop the pooled LSTM features).
POOLED_DROPOUT = HParam("dropout", float, 0.0, "dropout rate on the pooled features before the head (training only)",
                        low=0.0, high=0.95)


def pooled_dropout(features: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
    """Inverted dropout of pooled features ``[batch, F]`` at ``rate`` while training; ``features`` otherwise."""
    return tf.nn.dropout(features, rate=rate) if training and rate > 0 else features


def masked_mean(values: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
    """Mean over time of ``values`` ``[batch, time, ...]`` at real steps only."""
    if mask is None:
        return tf.reduce_mean(values, axis=1)
    weights = tf.cast(mask, values.dtype)
    weights = tf.reshape(weights, tf.concat([tf.shape(weights), tf.ones([values.shape.rank - 2], tf.int32)], 0))
    total = tf.reduce_sum(values * weights, axis=1)
    return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


def _np_masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """NumPy reference of :func:`masked_mean`: ``values`` ``[batch, time, d]`` -> ``[batch, d]``, a real step per row."""
    weights = mask.astype(values.dtype)[..., None]  # [batch, time, 1]
    return (values * weights).sum(axis=1) / weights.sum(axis=1)


def masked_max(values: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
    """Max over time of ``values`` ``[batch, time, dim]`` at real steps; zeros for a row with none."""
    if mask is None:
        return tf.reduce_max(values, axis=1)
    real = tf.cast(mask, tf.bool)[:, :, None]  # [batch, time, 1]
    lowest = tf.fill(tf.shape(values), values.dtype.min)
    pooled = tf.reduce_max(tf.where(real, values, lowest), axis=1)
    # An all-padding row would otherwise pool to the dtype's lowest value.
    return tf.where(tf.reduce_any(real, axis=1), pooled, tf.zeros_like(pooled))


def masked_softmax(scores: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
    """Softmax over time of ``scores`` ``[batch, time]``, zero weight on padded steps."""
    if mask is None:
        return tf.nn.softmax(scores, axis=1)
    real = tf.cast(mask, tf.bool)
    # A large finite negative, not -inf, so an all-padding row gives zeros rather than NaN.
    scores = tf.where(real, scores, tf.fill(tf.shape(scores), -1e9))
    return tf.nn.softmax(scores, axis=1) * tf.cast(real, scores.dtype)


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

    @classmethod
    def head_input_dim(cls, feature_dim: int) -> int:
        """Width of what this aggregator hands the head, for cell outputs ``feature_dim`` wide (the model sizes
        the head with it); most pass ``feature_dim`` through."""
        return feature_dim

    @abc.abstractmethod
    def __call__(self, result: UnrollResult, mask: tf.Tensor | None, head: Head, training: bool = False) -> tf.Tensor:
        """Logits ``[batch, k]``."""

    def numpy_reference(self, outputs: np.ndarray, last_output: np.ndarray, mask: np.ndarray, head: Head) -> np.ndarray:
        """NumPy reference of :meth:`__call__` (at inference), from this instance's weights.

        Args:
            outputs: Per-step outputs ``[batch, time, feature_dim]``.
            last_output: The output at each row's last real step ``[batch, feature_dim]``.
            mask: ``[batch, time]`` bool, True on real steps; every row has one at least.
            head: The head to apply; the reference calls its NumPy references
                (:meth:`Head.numpy_logits` and the like), not its TensorFlow code.

        Returns:
            Logits ``[batch, k]``.

        Raises:
            NotImplementedError: the aggregator has none (the tests then fail, naming it).
        """
        raise NotImplementedError(f"aggregator {self.name!r} ({type(self).__qualname__}) has no NumPy reference: "
                                  "implement numpy_reference(outputs, last_output, mask, head)")


class LastStep(Aggregator):
    """The output at the last real token (correct for pre- and post-padding)."""

    name = "last"
    description = "output at the last real token, then the head"
    needs_sequence = False

    def __call__(self, result, mask, head, training=False):
        return head(result.last_output)

    def numpy_reference(self, outputs, last_output, mask, head):
        return head.numpy_logits(last_output)


class MeanStates(Aggregator):
    """The masked mean of the outputs over real steps, then the head."""

    name = "mean-states"
    description = "masked mean of the per-step outputs, then the head"
    hparams = (POOLED_DROPOUT,)

    def __call__(self, result, mask, head, training=False):
        return head(pooled_dropout(masked_mean(result.outputs, mask), self.params["dropout"], training))

    def numpy_reference(self, outputs, last_output, mask, head):
        return head.numpy_logits(_np_masked_mean(outputs, mask))


class MeanLogits(Aggregator):
    """The head at every real step, then the masked mean of the logits."""

    name = "mean-logits"
    description = "the head at every real step, then the masked mean of the logits"

    def __call__(self, result, mask, head, training=False):
        return masked_mean(head(result.outputs), mask)

    def numpy_reference(self, outputs, last_output, mask, head):
        return _np_masked_mean(head.numpy_logits(outputs), mask)


class MaxStates(Aggregator):
    """The masked max over time of each output unit (max-pooling), then the head."""

    name = "max-states"
    description = "masked max over time of each output unit, then the head"
    hparams = (POOLED_DROPOUT,)

    def __call__(self, result, mask, head, training=False):
        return head(pooled_dropout(masked_max(result.outputs, mask), self.params["dropout"], training))

    def numpy_reference(self, outputs, last_output, mask, head):
        return head.numpy_logits(np.where(mask[..., None], outputs, -np.inf).max(axis=1))


class MeanMaxStates(Aggregator):
    """The masked mean and the masked max over time, concatenated, then the head ("concat pooling").

    ``c = [mean_t h_t ; max_t h_t]`` ``[batch, 2H]`` over real steps (Howard &
    Ruder 2018, ULMFiT, also pool the last state; Johnson & Zhang 2016 pool
    LSTM outputs over time). With the ``skip`` cell the mean half holds the
    bag-of-n-grams (fastText) features, so the model contains the baseline.
    """

    name = "mean-max-states"
    description = "masked mean and masked max over time, concatenated [batch, 2H], then the head"

    @classmethod
    def head_input_dim(cls, feature_dim: int) -> int:
        return 2 * feature_dim

    hparams = (POOLED_DROPOUT,)

    def __call__(self, result, mask, head, training=False):
        pooled = tf.concat([masked_mean(result.outputs, mask), masked_max(result.outputs, mask)], axis=-1)
        return head(pooled_dropout(pooled, self.params["dropout"], training))

    def numpy_reference(self, outputs, last_output, mask, head):
        pooled_max = np.where(mask[..., None], outputs, -np.inf).max(axis=1)
        return head.numpy_logits(np.concatenate([_np_masked_mean(outputs, mask), pooled_max], axis=-1))


class MeanProbs(Aggregator):
    """The masked mean over real steps of P(positive), returned as logits.

    Each step votes with its own probability ``p_t = P(positive | h_t)``; the
    vote ``mean_t p_t`` goes back through ``head.logits_from_prob`` so the
    head's own loss applies unchanged.
    """

    name = "mean-probs"
    description = "P(positive) from the head at every real step, masked mean, back to logits"

    def __call__(self, result, mask, head, training=False):
        probs = head.prob_positive(head(result.outputs))  # [batch, time]
        return head.logits_from_prob(masked_mean(probs[:, :, None], mask)[:, 0])

    def numpy_reference(self, outputs, last_output, mask, head):
        probs = head.numpy_prob_positive(head.numpy_logits(outputs))  # [batch, time]
        return head.numpy_logits_from_prob(_np_masked_mean(probs[..., None], mask)[:, 0])


class Attention(Aggregator):
    """Attention pooling with a learned query (dot-product, masked softmax over steps).

    ``a_t = softmax_t(q . h_t / sqrt(H))`` over real steps, ``c = sum_t a_t h_t``,
    logits ``= head(c)``. The query starts at zero, so training starts from
    ``mean-states`` and learns which steps to weigh.
    """

    name = "attention"
    description = "learned query, masked softmax over steps, weighted sum of outputs, then the head"

    def __init__(self, feature_dim: int, **params):
        super().__init__(feature_dim, **params)
        self.query = tf.Variable(tf.zeros([self.feature_dim]), name="query")

    def weights(self, outputs: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
        """Attention weights ``[batch, time]`` for outputs ``[batch, time, H]``."""
        scores = tf.einsum("bth,h->bt", outputs, self.query) / tf.sqrt(float(self.feature_dim))
        return masked_softmax(scores, mask)

    def __call__(self, result, mask, head, training=False):
        weights = self.weights(result.outputs, mask)
        return head(tf.einsum("bt,bth->bh", weights, result.outputs))

    def numpy_reference(self, outputs, last_output, mask, head):
        scores = outputs @ self.query.numpy() / np.sqrt(self.feature_dim)  # [batch, time]
        scores = np.where(mask, scores, -np.inf)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        return head.numpy_logits((weights[..., None] * outputs).sum(axis=1))


@hookimpl
def zoo_register_aggregators():
    return [LastStep, MeanStates, MeanLogits, MaxStates, MeanMaxStates, MeanProbs, Attention]
