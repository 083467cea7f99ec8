"""A test-only plugin whose components provoke a fault at a chosen moment, for certain, on any machine.

- ``trap-sigmoid1``: the ``sigmoid1`` head, whose loss is NaN at its
  ``nan_step``-th call (training steps come first, so ``nan_step=k`` is step
  ``k`` of epoch 1 while ``k`` is within the first epoch). NaN + x is NaN in
  IEEE arithmetic whatever the cell and aggregator did, unlike a huge learning
  rate, whose overflow depends on how a CPU rounds, or a NaN input, which a
  ReLU or a max may drop.

Enable it with a registry.toml listing ``tests.trap_plugin`` (and the
checkout on ``PYTHONPATH`` for a child process), or register the classes on a
registry directly.
"""

from __future__ import annotations

import tensorflow as tf

import zoo_core
from zoo_core.heads import SigmoidHead
from zoo_core.params import HParam


class TrapSigmoidHead(SigmoidHead):
    """The sigmoid head, with a NaN loss at call ``nan_step`` of :meth:`loss` (tests only)."""

    name = "trap-sigmoid1"
    description = "sigmoid1 with a test trap: NaN loss at the nan_step-th loss computation"
    hparams = SigmoidHead.hparams + (HParam("nan_step", int, -1, "loss call made NaN (-1: none)", low=-1),)

    def __init__(self, feature_dim: int, **params):
        super().__init__(feature_dim, **params)
        self.calls = tf.Variable(0, trainable=False, name="loss_calls")

    def loss(self, labels, logits):
        calls = self.calls.assign_add(1)
        return super().loss(labels, logits) + tf.where(calls == self.params["nan_step"], float("nan"), 0.0)


@zoo_core.hookimpl
def zoo_register_heads():
    return [TrapSigmoidHead]
