"""Gated cells in the GRU's family: ``gru``, ``mgu``, ``ugrnn``.

Each cell below is one block: its class (the maths in the docstring, the step
mirroring it, the NumPy reference) followed by the helpers only it uses (the
GRU's step helper, shared by its step and its hand-written BPTT kernel).
"""

from __future__ import annotations

from collections.abc import Sequence

from zoo_core import hookimpl
from zoo_core.cells.base import KERNEL_INIT, RECURRENT_INIT, UNITS, StepCell, make_initializer, numpy_sigmoid
from zoo_core.cells.bptt import BPTT, FusedBPTTCell, loop, num_steps, over_steps, previous
from zoo_core.lazy import np, tf


# ---------------------------------------------------------------------------
# gru
# ---------------------------------------------------------------------------
class GatedRecurrentUnitCell(FusedBPTTCell):
    r"""Gated recurrent unit (Cho et al. 2014), the reset-after form of Keras' ``GRU`` layer.

    .. math::
        [m_z, m_r, m_n] &= h_{t-1} U + c \\
        z &= \sigma(x_t W_z + b_z + m_z) \\
        r &= \sigma(x_t W_r + b_r + m_r) \\
        n &= \tanh(x_t W_n + b_n + r \odot m_n) \\
        h_t &= z \odot h_{t-1} + (1 - z) \odot n

    Gates fused in Keras' ``[z, r, n]`` order with its two biases (input ``b``,
    recurrent ``c``); one recurrent matmul per step. Output and state are
    ``h_t``. Step maths: :func:`gru_step`; hand-written BPTT: :func:`gru_bptt`.

    Attributes:
        kernel: ``W`` ``[input_dim, 3H]``; bias: ``b`` ``[3H]``;
        recurrent_kernel: ``U`` ``[H, 3H]``; recurrent_bias: ``c`` ``[3H]``.
    """

    name = "gru"
    description = "GRU, reset-after as in Keras"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT, BPTT)
    gates = 3

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, 3 * self.units),
                                                make_initializer(self.params["recurrent_init"]))
        self.recurrent_bias = self.new_weight("recurrent_bias", (3 * self.units,), self.initial_input_bias)

    def step(self, projected_t, h):
        h, _ = gru_step(projected_t, h, self.recurrent_kernel, self.recurrent_bias)
        return h, h

    def fused_scan(self, inputs_tm, mask_tm, initial_state):
        states = gru_bptt(inputs_tm, mask_tm, tf.convert_to_tensor(self.recurrent_kernel),
                          tf.convert_to_tensor(self.recurrent_bias), initial_state)
        return states, states[-1]

    def numpy_step(self, weights, x_t, h):
        x_z, x_r, x_n = np.split(x_t @ weights["kernel"] + weights["bias"], 3, axis=-1)
        m_z, m_r, m_n = np.split(h @ weights["recurrent_kernel"] + weights["recurrent_bias"], 3, axis=-1)
        z, r = numpy_sigmoid(x_z + m_z), numpy_sigmoid(x_r + m_r)
        n = np.tanh(x_n + r * m_n)
        h = z * h + (1.0 - z) * n
        return h, h

    def keras_weights(self) -> list[np.ndarray]:
        """``[kernel, recurrent_kernel, bias [2, 3H]]``, the order ``GRU.set_weights`` takes."""
        bias = np.stack([self.bias.numpy(), self.recurrent_bias.numpy()])
        return [self.kernel.numpy(), self.recurrent_kernel.numpy(), bias]

    def load_keras_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Loads the ``get_weights()`` of Keras' ``GRU(reset_after=True)`` layer."""
        kernel, recurrent_kernel, bias = weights
        self.kernel.assign(kernel)
        self.recurrent_kernel.assign(recurrent_kernel)
        self.bias.assign(bias[0])
        self.recurrent_bias.assign(bias[1])


def gru_step(projected_t, h, recurrent_kernel, recurrent_bias):
    """One :class:`GatedRecurrentUnitCell` step; its ``step`` and :func:`gru_bptt`'s forward loop call it.

    Args:
        projected_t: ``x_t W + b``, ``[batch, 3H]`` in ``[z, r, n]`` order.
        h: ``h_{t-1}``, ``[batch, H]``.
        recurrent_kernel: ``U`` ``[H, 3H]``.
        recurrent_bias: ``c`` ``[3H]``.

    Returns:
        ``(h_t, (z, r, n, m_n))``: the new state and the gates the backward pass reuses.
    """
    units = h.shape[-1]
    x_zr, x_n = tf.split(projected_t, [2 * units, units], axis=-1)
    m_zr, m_n = tf.split(tf.matmul(h, recurrent_kernel) + recurrent_bias, [2 * units, units], axis=-1)
    z, r = tf.split(tf.sigmoid(x_zr + m_zr), 2, axis=-1)  # one sigmoid for both gates
    n = tf.tanh(x_n + r * m_n)
    return n + z * (h - n), (z, r, n, m_n)  # z h + (1 - z) n, one multiply fewer


def gru_bptt(inputs_tm, mask_tm, recurrent_kernel, recurrent_bias, h0) -> tf.Tensor:
    """GRU unroll (:func:`gru_step`) with hand-written BPTT.

    The forward loop also saves, per step, how ``dh_t`` maps to the gradients of
    the pre-activations (``coef``) and to ``dh_{t-1}`` directly (``z``). The
    backward loop then needs one small matmul per step,
    ``dh_{t-1} = dh_t z_t + (dh_t * coef_t) U^T``; ``dU`` and the recurrent bias
    are one large matmul and one sum after it.

    Args:
        inputs_tm: Projected inputs ``[time, batch, 3H]`` in ``[z, r, n]`` order.
        mask_tm: Bool ``[time, batch, 1]`` or ``None``.
        recurrent_kernel: ``[H, 3H]``; recurrent_bias: ``[3H]`` (tensors, not variables); h0: ``[batch, H]``.

    Returns:
        Every state ``[time, batch, H]``.
    """
    units, steps = h0.shape[-1], num_steps(inputs_tm)

    @tf.custom_gradient
    def scan(inputs_tm, recurrent_kernel, recurrent_bias, h0):
        def forward(t, h):
            new, (z, r, n, m_n) = gru_step(inputs_tm[t], h, recurrent_kernel, recurrent_bias)
            # dh -> d(pre-activations) of h = n + z (h_prev - n).
            one_minus_z = 1.0 - z
            d_n = one_minus_z * (1.0 - n * n)
            d_z_r = tf.concat([(h - n) * z * one_minus_z, d_n * m_n * r * (1.0 - r)], axis=1)
            if mask_tm is not None:
                real = tf.cast(mask_tm[t], h.dtype)
                new = tf.where(mask_tm[t], new, h)
                d_n, d_z_r = d_n * real, d_z_r * real
                z = z * real + (1.0 - real)  # a padded step copies h_{t-1}
            coef_m = tf.concat([d_z_r, d_n * r], axis=1)  # dh -> d(h_prev U + c)
            return (new,), (new, coef_m, d_n, z)

        _, (states, coef_m, coef_n, keep) = loop(forward, steps, (h0,), [units, 3 * units, units, units], h0)
        states = states.stack()

        def grad(d_states):
            kernel_t = tf.transpose(recurrent_kernel)  # once, not a transposed matmul per step

            def backward(t, dh_next):
                dh = d_states[t] + dh_next
                d_m = tf.tile(dh, [1, 3]) * coef_m.read(t)
                d_x = tf.concat([d_m[:, : 2 * units], dh * coef_n.read(t)], axis=1)
                return (dh * keep.read(t) + tf.matmul(d_m, kernel_t),), (d_m, d_x)

            (dh0,), (d_m, d_x) = loop(backward, steps, (tf.zeros_like(h0),), [3 * units, 3 * units], h0,
                                      backward=True)
            d_m = d_m.stack()
            return d_x.stack(), over_steps(previous(states, h0), d_m), tf.reduce_sum(d_m, axis=[0, 1]), dh0

        return states, grad

    return scan(inputs_tm, recurrent_kernel, recurrent_bias, h0)


# ---------------------------------------------------------------------------
# mgu
# ---------------------------------------------------------------------------
class MGUCell(StepCell):
    r"""Minimal gated unit (Zhou, Wu, Zhang & Zhou 2016): a GRU with one gate.

    .. math::
        f &= \sigma(x_t W_f + b_f + h_{t-1} U_f) \\
        n &= \tanh(x_t W_n + b_n + (f \odot h_{t-1}) U_n) \\
        h_t &= (1 - f) \odot h_{t-1} + f \odot n

    The two recurrent matmuls cannot fuse: the second needs ``f``.

    Attributes:
        kernel: ``[W_f, W_n]`` ``[input_dim, 2H]``; bias: ``[b_f, b_n]`` ``[2H]``;
        forget_kernel: ``U_f`` ``[H, H]``; candidate_kernel: ``U_n`` ``[H, H]``.
    """

    name = "mgu"
    description = "minimal gated unit: a GRU with one gate"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT)
    gates = 2

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        # One initializer each: a Keras initializer called twice returns the same values.
        self.forget_kernel = self.new_weight("forget_kernel", (self.units, self.units),
                                             make_initializer(self.params["recurrent_init"]))
        self.candidate_kernel = self.new_weight("candidate_kernel", (self.units, self.units),
                                                make_initializer(self.params["recurrent_init"]))

    def step(self, projected_t, h):
        x_f, x_n = tf.split(projected_t, 2, axis=-1)
        f = tf.sigmoid(x_f + tf.matmul(h, self.forget_kernel))
        n = tf.tanh(x_n + tf.matmul(f * h, self.candidate_kernel))
        h = h + f * (n - h)  # (1 - f) h + f n, one multiply fewer
        return h, h

    def numpy_step(self, weights, x_t, h):
        x_f, x_n = np.split(x_t @ weights["kernel"] + weights["bias"], 2, axis=-1)
        f = numpy_sigmoid(x_f + h @ weights["forget_kernel"])
        n = np.tanh(x_n + (f * h) @ weights["candidate_kernel"])
        h = (1.0 - f) * h + f * n
        return h, h


# ---------------------------------------------------------------------------
# ugrnn
# ---------------------------------------------------------------------------
class UGRNNCell(StepCell):
    r"""Update-gate RNN (Collins, Sohl-Dickstein & Sussillo 2017, "Capacity and trainability in RNNs").

    .. math::
        [a_c, a_g] &= x_t W + b + h_{t-1} U \\
        c &= \tanh(a_c), \quad g = \sigma(a_g) \\
        h_t &= g \odot h_{t-1} + (1 - g) \odot c

    One fused recurrent matmul per step.

    Attributes:
        kernel: ``W`` ``[input_dim, 2H]``; bias: ``b`` ``[2H]``; recurrent_kernel: ``U`` ``[H, 2H]``,
        each in ``[c, g]`` order.
    """

    name = "ugrnn"
    description = "update-gate RNN: one gate between the state and a tanh candidate"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT)
    gates = 2

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, 2 * self.units),
                                                make_initializer(self.params["recurrent_init"]))

    def step(self, projected_t, h):
        a_c, a_g = tf.split(projected_t + tf.matmul(h, self.recurrent_kernel), 2, axis=-1)
        c, g = tf.tanh(a_c), tf.sigmoid(a_g)
        h = c + g * (h - c)  # g h + (1 - g) c, one multiply fewer
        return h, h

    def numpy_step(self, weights, x_t, h):
        a_c, a_g = np.split(x_t @ weights["kernel"] + weights["bias"] + h @ weights["recurrent_kernel"], 2, -1)
        g = numpy_sigmoid(a_g)
        h = g * h + (1.0 - g) * np.tanh(a_c)
        return h, h


@hookimpl
def zoo_register_cells():
    return [GatedRecurrentUnitCell, MGUCell, UGRNNCell]
