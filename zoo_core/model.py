"""A classifier composed of an encoder, a cell, an aggregator and a head."""

from __future__ import annotations

import tensorflow as tf

from zoo_core.config import ModelSpec
from zoo_core.registry import Registry


class Classifier(tf.Module):
    """``ids [batch, time]`` -> encoder -> cell (unrolled) -> aggregator (+ head) -> logits ``[batch, k]``.

    Args:
        spec: The four component names and their hyperparameters.
        registry: Where the components are looked up.
        vocab_size: Number of token ids the encoder accepts.
    """

    def __init__(self, spec: ModelSpec, registry: Registry, vocab_size: int):
        super().__init__(name="classifier")
        self.spec = registry.validate_spec(spec)
        self.encoder = registry.create("encoder", self.spec.encoder, vocab_size, **self.spec.params_for("encoder"))
        self.cell = registry.create("cell", self.spec.cell, self.encoder.output_dim, **self.spec.params_for("cell"))
        # The head is made before the aggregator (the order of the saved variables), sized for what it pools.
        pooled_dim = registry.get("aggregator", self.spec.aggregator).obj.head_input_dim(self.cell.output_size)
        self.head = registry.create("head", self.spec.head, pooled_dim, **self.spec.params_for("head"))
        self.aggregator = registry.create(
            "aggregator", self.spec.aggregator, self.cell.output_size, **self.spec.params_for("aggregator")
        )

    def __call__(self, ids: tf.Tensor, mask: tf.Tensor | None = None, training: bool = False) -> tf.Tensor:
        """Logits ``[batch, k]``.

        Args:
            ids: Token ids ``[batch, time]``.
            mask: ``[batch, time]`` bool, True on real tokens; ``None`` treats every step as real.
            training: Enables dropout where a component offers it.
        """
        inputs = self.encoder(ids, training=training)
        result = self.cell.unroll(inputs, mask, keep_outputs=self.aggregator.needs_sequence)
        if training:
            result = self.cell.regularize(result)
        return self.aggregator(result, mask, self.head, training=training)

    def prob_positive(self, ids: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        """P(positive) ``[batch]``."""
        return self.head.prob_positive(self(ids, mask))

    def loss(self, labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        return self.head.loss(labels, logits)

    def count_params(self) -> int:
        return int(sum(v.shape.num_elements() for v in self.trainable_variables))
