"""A test-only plugin whose components provoke a fault at a chosen moment, for certain, on any machine.

- ``trap-sigmoid1``: the ``sigmoid1`` head, whose loss is NaN at its
  ``nan_step``-th call (training steps come first, so ``nan_step=k`` is step
  ``k`` of epoch 1 while ``k`` is within the first epoch). NaN + x is NaN in
  IEEE arithmetic whatever the cell and aggregator did, unlike a huge learning
  rate, whose overflow depends on how a CPU rounds, or a NaN input, which a
  ReLU or a max may drop.
- ``trap-embedding``: the ``embedding`` encoder, where an evaluation batch
  (``training=False``) holding token ``wait_id`` first creates the file
  ``$ZOO_TRAP_DIR/waiting``, then waits until ``$ZOO_TRAP_DIR/go`` exists. A
  test can thus signal ``zoo`` while it is surely inside an evaluation.

Enable it with a registry.toml listing ``tests.trap_plugin`` (and the
checkout on ``PYTHONPATH`` for a child process), or register the classes on a
registry directly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import tensorflow as tf

import zoo_core
from zoo_core.encoders import EmbeddingEncoder
from zoo_core.heads import SigmoidHead
from zoo_core.params import HParam

WAIT_LIMIT_S = 300  # a `go` file never written must not hang the suite for ever


class TrapSigmoidHead(SigmoidHead):
    """The sigmoid head, with a NaN loss at call ``nan_step`` of :meth:`loss` (tests only)."""

    name = "trap-sigmoid1"
    aliases = ()  # not the sigmoid head's own ("sigmoid"), which stays the built-in's
    description = "sigmoid1 with a test trap: NaN loss at the nan_step-th loss computation"
    hparams = SigmoidHead.hparams + (HParam("nan_step", int, -1, "loss call made NaN (-1: none)", low=-1),)

    def __init__(self, feature_dim: int, **params):
        super().__init__(feature_dim, **params)
        self.calls = tf.Variable(0, trainable=False, name="loss_calls")

    def loss(self, labels, logits):
        calls = self.calls.assign_add(1)
        return super().loss(labels, logits) + tf.where(calls == self.params["nan_step"], float("nan"), 0.0)


def _wait_for_go(hit) -> bool:
    if bool(hit):
        folder = Path(os.environ["ZOO_TRAP_DIR"])
        (folder / "waiting").touch()
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not (folder / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return True


class TrapEmbedding(EmbeddingEncoder):
    """The embedding encoder, with evaluation batches holding token ``wait_id`` waiting for a file (tests only)."""

    name = "trap-embedding"
    aliases = ()
    description = "embedding with a test trap: evaluation batches holding token wait_id wait for $ZOO_TRAP_DIR/go"
    hparams = EmbeddingEncoder.hparams + (
        HParam("wait_id", int, -1, "token id on which an evaluation batch waits (-1: none)", low=-1),
    )

    def __call__(self, ids, training=False):
        if not training and self.params["wait_id"] >= 0:
            hit = tf.reduce_any(ids == self.params["wait_id"])
            waited = tf.py_function(_wait_for_go, [hit], tf.bool)
            with tf.control_dependencies([waited]):
                ids = tf.identity(ids)
        return super().__call__(ids, training)


@zoo_core.hookimpl
def zoo_register_encoders():
    return [TrapEmbedding]


@zoo_core.hookimpl
def zoo_register_heads():
    return [TrapSigmoidHead]
