"""Elman-style cells, one matrix (or vector) of recurrence and no gates: ``tanh``, ``irnn``, ``ln-tanh``, ``indrnn``,
and ``identity``, which has no recurrence at all.

Each cell below is one block: its class (the maths in the docstring, the step
mirroring it, the NumPy reference) followed by the helpers only it uses.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from zoo_core import hookimpl
from zoo_core.cells.base import KERNEL_INIT, RECURRENT_INIT, UNITS, Cell, KerasWeightLayout, StepCell, make_initializer
from zoo_core.cells.bptt import BPTT, FusedBPTTCell, loop, num_steps, over_steps, previous
from zoo_core.errors import ZooError
from zoo_core.lazy import do_not_convert, keras, np, tf
from zoo_core.params import HParam
from zoo_core.unroll import unroll


# ---------------------------------------------------------------------------
# tanh and irnn: the Elman RNN, and its ReLU form
# ---------------------------------------------------------------------------
class TanhCell(KerasWeightLayout, FusedBPTTCell):
    """The Elman RNN (Elman 1990, "Finding structure in time").

    ``h_t = tanh(x_t W + h_{t-1} U + b)``; output and state are ``h_t``.
    Matches Keras' ``SimpleRNN`` layer given the same weights. Hand-written
    BPTT: :func:`elman_bptt`.

    Attributes:
        kernel: ``W`` ``[input_dim, H]``; bias: ``b`` ``[H]``; recurrent_kernel: ``U`` ``[H, H]``.
    """

    name = "tanh"
    description = "Elman RNN (tanh)"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT, BPTT)
    activation: ClassVar[str] = "tanh"  # a tf.nn function; elman_bptt knows its derivative

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, self.units),
                                                make_initializer(self.params["recurrent_init"]))

    def step(self, projected_t, h):
        h = elman_step(projected_t, h, self.recurrent_kernel, getattr(tf.nn, self.activation))
        return h, h

    def fused_scan(self, inputs_tm, mask_tm, initial_state):
        states = elman_bptt(inputs_tm, mask_tm, tf.convert_to_tensor(self.recurrent_kernel), initial_state,
                            self.activation)
        return states, states[-1]

    def numpy_step(self, weights, x_t, h):
        h = np.tanh(x_t @ weights["kernel"] + weights["bias"] + h @ weights["recurrent_kernel"])
        return h, h


class IRNNCell(TanhCell):
    """IRNN (Le, Jaitly & Hinton 2015, "A simple way to initialize recurrent networks of rectified linear units").

    ``h_t = relu(x_t W + h_{t-1} U + b)`` with ``U`` initialised to the identity
    and ``b`` to zero, so at the start the state is carried forward unchanged.
    The Elman RNN's weights and kernel otherwise.
    """

    name = "irnn"
    description = "ReLU Elman RNN, identity recurrent init"
    hparams = (UNITS, KERNEL_INIT, dataclasses.replace(RECURRENT_INIT, default="identity"), BPTT)
    activation = "relu"

    def numpy_step(self, weights, x_t, h):
        h = np.maximum(x_t @ weights["kernel"] + weights["bias"] + h @ weights["recurrent_kernel"], 0.0)
        return h, h


def elman_step(projected_t, h, recurrent_kernel, activation):
    """``h_t = act(x_t W + b + h_{t-1} U)``: :meth:`TanhCell.step` and :func:`elman_bptt`'s forward loop.

    Args:
        projected_t: ``x_t W + b``, ``[batch, H]``.
        h: ``h_{t-1}``, ``[batch, H]``.
        recurrent_kernel: ``U``, ``[H, H]``.
        activation: ``tf.tanh`` (Elman) or ``tf.nn.relu`` (IRNN).

    Returns:
        ``h_t`` ``[batch, H]``.
    """
    return activation(projected_t + tf.matmul(h, recurrent_kernel))


def elman_bptt(inputs_tm, mask_tm, recurrent_kernel, h0, activation: str) -> tf.Tensor:
    """Elman unroll (:func:`elman_step`) with hand-written BPTT.

    Backward: ``da_t = dh_t * act'(a_t)``, ``dh_{t-1} = da_t U^T`` is the only
    recurrence (one small matmul per step); ``dU = sum_t h_{t-1}^T da_t`` is one
    large matmul after the loop and ``dx_t = da_t``. A padded step passes ``dh``
    straight through.

    Args:
        inputs_tm: Projected inputs ``[time, batch, H]``.
        mask_tm: Bool ``[time, batch, 1]`` or ``None``.
        recurrent_kernel: ``U`` ``[H, H]`` (a tensor, not a variable).
        h0: ``[batch, H]``.
        activation: ``"tanh"`` or ``"relu"``.

    Returns:
        Every state ``[time, batch, H]`` (a padded step repeats the previous one).
    """
    act = getattr(tf.nn, activation)
    units, steps = h0.shape[-1], num_steps(inputs_tm)

    @tf.custom_gradient
    def scan(inputs_tm, recurrent_kernel, h0):
        def forward(t, h):
            new = elman_step(inputs_tm[t], h, recurrent_kernel, act)
            if mask_tm is not None:
                new = tf.where(mask_tm[t], new, h)
            return (new,), (new,)

        _, (states,) = loop(forward, steps, (h0,), [units], h0)
        states = states.stack()

        def grad(d_states):
            kernel_t = tf.transpose(recurrent_kernel)  # once, not a transposed matmul per step

            def backward(t, dh_next):
                dh = d_states[t] + dh_next
                h = states[t]
                # act'(a_t) from the output: tanh' = 1 - h^2, relu' = [h > 0].
                da = dh * (1.0 - h * h) if activation == "tanh" else tf.where(h > 0, dh, tf.zeros_like(dh))
                if mask_tm is None:
                    return (tf.matmul(da, kernel_t),), (da,)
                da = tf.where(mask_tm[t], da, tf.zeros_like(da))
                # A padded step copied h_{t-1}: its gradient flows straight back.
                dh_prev = tf.where(mask_tm[t], tf.matmul(da, kernel_t), dh)
                return (dh_prev,), (da,)

            (dh0,), (d_pre,) = loop(backward, steps, (tf.zeros_like(h0),), [units], h0, backward=True)
            d_pre = d_pre.stack()
            return d_pre, over_steps(previous(states, h0), d_pre), dh0

        return states, grad

    return scan(inputs_tm, recurrent_kernel, h0)


# ---------------------------------------------------------------------------
# ln-tanh
# ---------------------------------------------------------------------------
class LayerNormTanhCell(StepCell):
    """Layer-normalised Elman RNN (Ba, Kiros & Hinton 2016, "Layer normalization").

    ``a_t = x_t W + h_{t-1} U``, ``h_t = tanh(gain * (a_t - mean(a_t)) / std(a_t) + shift)``,
    statistics over the units of each example (:func:`layer_norm`). No input
    bias: LN's ``shift`` replaces it.

    Attributes:
        kernel: ``W`` ``[input_dim, H]``; recurrent_kernel: ``U`` ``[H, H]``; gain, shift: ``[H]``.
    """

    name = "ln-tanh"
    description = "layer-normalised Elman RNN"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT)
    input_bias = False

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, self.units),
                                                make_initializer(self.params["recurrent_init"]))
        self.gain = self.new_weight("gain", (self.units,), lambda shape, dtype: tf.ones(shape, dtype))
        self.shift = self.new_weight("shift", (self.units,), lambda shape, dtype: tf.zeros(shape, dtype))

    def step(self, projected_t, h):
        a = projected_t + tf.matmul(h, self.recurrent_kernel)
        h = tf.tanh(layer_norm(a, self.gain, self.shift))
        return h, h

    def numpy_step(self, weights, x_t, h):
        a = x_t @ weights["kernel"] + h @ weights["recurrent_kernel"]
        normed = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-5)
        h = np.tanh(weights["gain"] * normed + weights["shift"])
        return h, h


def layer_norm(values, gain, shift, epsilon: float = 1e-5):
    """Layer normalisation over the last axis (Ba et al. 2016): ``gain * (a - mean) / std + shift``."""
    mean, variance = tf.nn.moments(values, axes=[-1], keepdims=True)
    return gain * (values - mean) * tf.math.rsqrt(variance + epsilon) + shift


# ---------------------------------------------------------------------------
# indrnn
# ---------------------------------------------------------------------------
class IndRNNCell(StepCell):
    """Independently recurrent neural network (Li, Li, Cook, Zhu & Gao 2018).

    ``h_t = relu(x_t W + b + u * h_{t-1})`` with a recurrent *vector* ``u``
    ``[H]``, initialised uniformly in ``[0, recurrent_max]``; each unit sees
    only its own past, so long memories stay trainable and there is no
    recurrent matmul.

    Attributes:
        kernel: ``W`` ``[input_dim, H]``; bias: ``b`` ``[H]``; recurrent_weight: ``u`` ``[H]``.
    """

    name = "indrnn"
    description = "IndRNN: ReLU RNN whose units each see only their own past"
    hparams = (UNITS, KERNEL_INIT,
               HParam("recurrent_max", float, 1.0, "u starts uniform in [0, recurrent_max]", low=0.0, high=10.0))

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_weight = self.new_weight(
            "recurrent_weight", (self.units,), keras.initializers.RandomUniform(0.0, self.params["recurrent_max"]))

    def step(self, projected_t, h):
        h = tf.nn.relu(projected_t + self.recurrent_weight * h)
        return h, h

    def numpy_step(self, weights, x_t, h):
        h = np.maximum(x_t @ weights["kernel"] + weights["bias"] + weights["recurrent_weight"] * h, 0.0)
        return h, h


# ---------------------------------------------------------------------------
# identity
# ---------------------------------------------------------------------------
class IdentityCell(Cell):
    """No recurrence: ``h_t = x_t``, the bag-of-embeddings baseline.

    With ``mean-states`` and a linear head the classifier is fastText's (Joulin
    et al. 2017, "Bag of tricks for efficient text classification"): the logit
    is an affine function of the mean of the encoder's (n-gram) embeddings. At
    the same encoder, aggregator and head it shows what a recurrence adds.

    It has no weights. Outputs follow every cell's masking rule (a padded step
    repeats the previous real step's output), through the shared loop; the
    final state is the last output. Shapes: ``[batch, time, input_dim]`` in and
    out.

    Raises:
        ZooError: an input wider than :attr:`MAX_INPUT_DIM` (e.g. a one-hot
            encoder over the vocabulary: every batch would hold
            ``[batch, time, vocab]`` floats).
    """

    name = "identity"
    description = "no recurrence, h_t = x_t: the bag-of-embeddings (fastText) baseline"
    hparams = ()
    MAX_INPUT_DIM: ClassVar[int] = 4096

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        if self.input_dim > self.MAX_INPUT_DIM:
            raise ZooError(f"cell 'identity' passes its input through, and a {self.input_dim}-wide input "
                           f"(e.g. one-hot over the vocabulary) would fill memory; use an embedding encoder "
                           f"(at most {self.MAX_INPUT_DIM} wide)")

    @property
    def output_size(self) -> int:
        return self.input_dim

    @do_not_convert
    def unroll(self, inputs, mask, keep_outputs, *, reverse=False, probe=None):
        values = tf.cast(inputs.features(), self.dtype)
        if probe is not None:
            values = values + tf.cast(probe, self.dtype)
        batch = tf.shape(values)[0]
        zeros = tf.zeros([batch, self.input_dim], self.dtype)
        return unroll(lambda x_t, _: (x_t, x_t), values, mask, zeros, zeros, keep_outputs, reverse)

    def reference_unroll(self, inputs, mask, reverse=False):
        batch, steps = inputs.shape[:2]
        mask = np.ones((batch, steps), bool) if mask is None else np.asarray(mask, bool)
        output = np.zeros((batch, self.input_dim), inputs.dtype)
        outputs = np.zeros_like(inputs)
        for t in reversed(range(steps)) if reverse else range(steps):
            output = np.where(mask[:, t, None], inputs[:, t], output)
            outputs[:, t] = output
        return outputs, output


@hookimpl
def zoo_register_cells():
    return [TanhCell, IRNNCell, LayerNormTanhCell, IndRNNCell, IdentityCell]
