"""Recurrent cells, written with low-level TF ops only.

A cell follows Sonnet 2's ``RNNCore``: ``__call__(x_t, state) -> (output,
new_state)`` and ``initial_state(batch_size)``. For speed it is split in two:
``project_inputs`` computes ``x @ W + b`` for every step at once (one large
matmul, hoisted out of the time loop; all gates fused), and ``step`` applies the
recurrence to one projected step. The shared :func:`zoo_core.unroll.unroll`
runs ``step`` over time with masking, so a new cell only writes its maths.

Shapes: ``[batch, time, dim]`` inputs, ``[batch, units]`` states.
"""

from __future__ import annotations

import abc
from typing import Any

import keras
import tensorflow as tf

from zoo_core.component import Component
from zoo_core.encoders import DenseSequence, EncodedSequence
from zoo_core.params import HParam
from zoo_core.unroll import UnrollResult, unroll

INITIALIZERS = ("glorot", "orthogonal", "identity")


def make_initializer(name: str, seed: int | None = None) -> keras.initializers.Initializer:
    """Returns the Keras initializer called ``name`` (one of :data:`INITIALIZERS`)."""
    if name == "glorot":
        return keras.initializers.GlorotUniform(seed=seed)
    if name == "orthogonal":
        return keras.initializers.Orthogonal(seed=seed)
    if name == "identity":
        # Identity on the square part, zeros elsewhere (a [D, k*D] kernel gets k blocks).
        def identity(shape, dtype=None):
            rows, cols = shape
            eye = tf.eye(rows, dtype=dtype or tf.float32)
            return tf.tile(eye, [1, cols // rows]) if cols % rows == 0 else tf.eye(rows, cols, dtype=dtype or tf.float32)

        return identity
    raise ValueError(f"unknown initializer {name!r}")


UNITS = HParam("units", int, 64, "hidden units H", low=1, high=8192)
KERNEL_INIT = HParam("kernel_init", str, "glorot", "input kernel initializer", choices=INITIALIZERS)
RECURRENT_INIT = HParam("recurrent_init", str, "orthogonal", "recurrent kernel initializer", choices=INITIALIZERS)


class Cell(Component):
    """Base cell.

    Args:
        input_dim: Size of one input step.
        **params: The cell's declared hyperparameters.

    Subclasses set ``gates`` (how many ``units``-wide blocks the input
    projection has) and implement :meth:`step`; the base creates the fused
    input kernel ``[input_dim, gates * units]`` and bias.
    """

    kind = "cell"
    gates: int = 1

    def __init__(self, input_dim: int, **params):
        super().__init__(**params)
        self.input_dim = int(input_dim)
        self.units = self.params.get("units", 0)
        if self.units:
            width = self.gates * self.units
            init = make_initializer(self.params.get("kernel_init", "glorot"))
            self.kernel = tf.Variable(init((self.input_dim, width)), name="kernel")
            self.bias = tf.Variable(tf.zeros([width]), name="bias")

    @property
    def output_size(self) -> int:
        """Width of one output step."""
        return self.units

    def initial_state(self, batch_size) -> Any:
        """The zero state; a tensor ``[batch, units]`` unless overridden."""
        return tf.zeros([batch_size, self.units])

    def project_inputs(self, inputs: EncodedSequence) -> tf.Tensor:
        """``inputs @ kernel + bias`` for all steps: ``[batch, time, gates * units]``."""
        return inputs.project(self.kernel) + self.bias

    @abc.abstractmethod
    def step(self, projected_t: tf.Tensor, state: Any) -> tuple[tf.Tensor, Any]:
        """One step from a projected input ``[batch, gates * units]``."""

    def __call__(self, x_t: tf.Tensor, state: Any) -> tuple[tf.Tensor, Any]:
        """One step from a raw input ``[batch, input_dim]``: ``(output, new_state)``."""
        return self.step(tf.matmul(x_t, self.kernel) + self.bias, state)

    def unroll(self, inputs: EncodedSequence, mask: tf.Tensor | None, keep_outputs: bool) -> UnrollResult:
        """Runs the cell over a whole sequence with the shared masked loop."""
        batch = tf.shape(mask)[0] if mask is not None else None
        projected = self.project_inputs(inputs)
        if batch is None:
            batch = tf.shape(projected)[0]
        return unroll(
            self.step,
            projected,
            mask,
            self.initial_state(batch),
            tf.zeros([batch, self.output_size]),
            keep_outputs,
        )


def tanh_step(projected_t, h, recurrent_kernel):
    """Elman step: ``h_t = tanh(x_t W + b + h_{t-1} U)``.

    Args:
        projected_t: ``x_t W + b``, ``[batch, units]``.
        h: ``h_{t-1}``, ``[batch, units]``.
        recurrent_kernel: ``U``, ``[units, units]``.

    Returns:
        ``h_t`` ``[batch, units]``.
    """
    return tf.tanh(projected_t + tf.matmul(h, recurrent_kernel))


class TanhCell(Cell):
    """The Elman RNN (Elman 1990, "Finding structure in time").

    ``h_t = tanh(W x_t + U h_{t-1} + b)``; output and state are ``h_t``.
    Matches ``keras.layers.SimpleRNN`` given the same weights.
    """

    name = "tanh"
    description = "Elman RNN: h_t = tanh(x_t W + h_{t-1} U + b)"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT)

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        init = make_initializer(self.params["recurrent_init"])
        self.recurrent_kernel = tf.Variable(init((self.units, self.units)), name="recurrent_kernel")

    def step(self, projected_t, state):
        h = tanh_step(projected_t, state, self.recurrent_kernel)
        return h, h


BUILTIN_CELLS = (TanhCell,)
