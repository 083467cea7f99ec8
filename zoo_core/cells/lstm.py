"""Cells with a memory cell ``c`` in the LSTM's family: ``lstm``, ``janet``.

Each cell below is one block: its class (the maths in the docstring, the step
mirroring it, the NumPy reference) followed by the helpers only it uses (the
LSTM's step helper, shared by its step and its hand-written BPTT kernel).
"""

from __future__ import annotations

from zoo_core import hookimpl
from zoo_core.cells.base import KERNEL_INIT, RECURRENT_INIT, UNITS, KerasWeightLayout, StepCell, make_initializer, \
    numpy_sigmoid
from zoo_core.cells.bptt import BPTT, FusedBPTTCell, loop, num_steps, over_steps, previous
from zoo_core.lazy import keras, np, tf
from zoo_core.params import HParam


# ---------------------------------------------------------------------------
# lstm
# ---------------------------------------------------------------------------
class LongShortTermMemoryCell(KerasWeightLayout, FusedBPTTCell):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000).

    .. math::
        [a_i, a_f, a_g, a_o] &= x_t W + b + h_{t-1} U \\
        i, f, o &= \sigma(a_i), \sigma(a_f), \sigma(a_o), \quad g = \tanh(a_g) \\
        c_t &= f \odot c_{t-1} + i \odot g \\
        h_t &= o \odot \tanh(c_t)

    State ``(h, c)``, output ``h``. Keras' ``[i, f, c, o]`` gate order, so
    Keras' ``LSTM`` layer's weights load directly; the forget bias starts at 1
    (Jozefowicz et al. 2015), as Keras' ``unit_forget_bias``. Step maths:
    :func:`lstm_step`; hand-written BPTT: :func:`lstm_bptt`.

    Attributes:
        kernel: ``W`` ``[input_dim, 4H]``; bias: ``b`` ``[4H]``; recurrent_kernel: ``U`` ``[H, 4H]``.
    """

    name = "lstm"
    description = "LSTM, Keras' gate order, forget bias 1"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT, BPTT)
    gates = 4

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, 4 * self.units),
                                                make_initializer(self.params["recurrent_init"]))

    def initial_input_bias(self, shape, dtype=None):
        units = shape[0] // 4
        return tf.concat([tf.zeros([units]), tf.ones([units]), tf.zeros([2 * units])], 0)

    def initial_state(self, batch_size):
        zeros = tf.zeros([batch_size, self.units], self.dtype)
        return (zeros, zeros)

    def perturb(self, state, delta):
        h, c = state
        return (h + delta, c)

    def step(self, projected_t, state):
        h, c, _ = lstm_step(projected_t, *state, self.recurrent_kernel)
        return h, (h, c)

    def fused_scan(self, inputs_tm, mask_tm, initial_state):
        hs, c_last = lstm_bptt(inputs_tm, mask_tm, tf.convert_to_tensor(self.recurrent_kernel), *initial_state)
        return hs, (hs[-1], c_last)

    def numpy_step(self, weights, x_t, state):
        h, c = state
        a_i, a_f, a_g, a_o = np.split(x_t @ weights["kernel"] + weights["bias"] + h @ weights["recurrent_kernel"], 4,
                                      axis=-1)
        c = numpy_sigmoid(a_f) * c + numpy_sigmoid(a_i) * np.tanh(a_g)
        h = numpy_sigmoid(a_o) * np.tanh(c)
        return h, (h, c)


def lstm_step(projected_t, h, c, recurrent_kernel):
    """One :class:`LongShortTermMemoryCell` step; its ``step`` and :func:`lstm_bptt`'s forward loop call it.

    Args:
        projected_t: ``x_t W + b``, ``[batch, 4H]`` in ``[i, f, c, o]`` order.
        h, c: ``h_{t-1}``, ``c_{t-1}``, each ``[batch, H]``.
        recurrent_kernel: ``U`` ``[H, 4H]``.

    Returns:
        ``(h_t, c_t, (i, f, g, o, tanh(c_t)))``: the new state and what the backward pass reuses.
    """
    units = h.shape[-1]
    pre = projected_t + tf.matmul(h, recurrent_kernel)
    i, f, _, o = tf.split(tf.sigmoid(pre), 4, axis=-1)  # one sigmoid for three gates; the third block is unused
    g = tf.tanh(pre[:, 2 * units: 3 * units])
    c = f * c + i * g
    tanh_c = tf.tanh(c)
    return o * tanh_c, c, (i, f, g, o, tanh_c)


def lstm_bptt(inputs_tm, mask_tm, recurrent_kernel, h0, c0) -> tuple[tf.Tensor, tf.Tensor]:
    """LSTM unroll (:func:`lstm_step`) with hand-written BPTT.

    The forward loop also saves, per step, ``dh -> dc`` (``o (1 - tanh^2 c)``),
    ``dc -> d[a_i, a_f, a_g]`` and ``dh -> da_o`` (``coef``) and ``f``. The
    backward loop then needs one small matmul per step:
    ``dc~_t = dc_t + dh_t h2c_t``, ``da_t = [dc~_t, dc~_t, dc~_t, dh_t] * coef_t``,
    ``dh_{t-1} = da_t U^T``, ``dc_{t-1} = dc~_t f_t``; ``dU`` is one large matmul after it.
    Only ``h`` is stacked over time; ``c`` leaves the kernel as its final value,
    the only one the cell's callers see (a stack is a sequence-sized copy).

    Args:
        inputs_tm: Projected inputs ``[time, batch, 4H]`` in ``[i, f, c, o]`` order.
        mask_tm: Bool ``[time, batch, 1]`` or ``None``.
        recurrent_kernel: ``[H, 4H]`` (a tensor, not a variable); h0, c0: ``[batch, H]``.

    Returns:
        ``(hs, c_last)``: every ``h`` ``[time, batch, H]`` and the final ``c`` ``[batch, H]``
        (after the last real step).
    """
    units, steps = h0.shape[-1], num_steps(inputs_tm)

    @tf.custom_gradient
    def scan(inputs_tm, recurrent_kernel, h0, c0):
        def forward(t, h, c):
            new_h, new_c, (i, f, g, o, tanh_c) = lstm_step(inputs_tm[t], h, c, recurrent_kernel)
            h_to_c = o * (1.0 - tanh_c * tanh_c)
            coef = tf.concat([g * i * (1.0 - i), c * f * (1.0 - f), i * (1.0 - g * g), tanh_c * o * (1.0 - o)], axis=1)
            if mask_tm is not None:
                real = tf.cast(mask_tm[t], h.dtype)
                new_h, new_c = tf.where(mask_tm[t], new_h, h), tf.where(mask_tm[t], new_c, c)
                h_to_c, coef = h_to_c * real, coef * real
                f = f * real + (1.0 - real)  # a padded step copies c_{t-1}
            return (new_h, new_c), (new_h, h_to_c, coef, f)

        (_, c_last), (hs, h_to_c, coef, keep_c) = loop(forward, steps, (h0, c0), [units, units, 4 * units, units], h0)
        hs = hs.stack()

        def grad(d_hs, d_c_last):
            kernel_t = tf.transpose(recurrent_kernel)  # once, not a transposed matmul per step

            def backward(t, dh_next, dc_next):
                dh = d_hs[t] + dh_next if d_hs is not None else dh_next
                dc = dc_next + dh * h_to_c.read(t)
                d_pre = tf.concat([dc, dc, dc, dh], axis=1) * coef.read(t)
                dh_prev = tf.matmul(d_pre, kernel_t)
                if mask_tm is not None:
                    dh_prev = tf.where(mask_tm[t], dh_prev, dh)  # a padded step copied h_{t-1}
                return (dh_prev, dc * keep_c.read(t)), (d_pre,)

            zeros = tf.zeros_like(h0)
            dc_last = zeros if d_c_last is None else d_c_last  # enters at the last step, as dc_T
            (dh0, dc0), (d_pre,) = loop(backward, steps, (zeros, dc_last), [4 * units], h0, backward=True)
            d_pre = d_pre.stack()
            return d_pre, over_steps(previous(hs, h0), d_pre), dh0, dc0

        return (hs, c_last), grad

    return scan(inputs_tm, recurrent_kernel, h0, c0)


# ---------------------------------------------------------------------------
# janet
# ---------------------------------------------------------------------------
class JANETCell(StepCell):
    r"""JANET, "just another network" (van der Westhuizen & Lasenby 2018): an LSTM with only a forget gate.

    .. math::
        [s, a_c] &= x_t W + b + h_{t-1} U \\
        c_t &= \sigma(s) \odot c_{t-1} + (1 - \sigma(s - \beta)) \odot \tanh(a_c) \\
        h_t &= c_t

    The forget bias starts chrono-initialised, ``b_f = log(U(1, t_max - 1))``
    (Tallec & Ollivier 2018); ``beta`` shifts the input gate against it.

    Attributes:
        kernel: ``W`` ``[input_dim, 2H]``; bias: ``b`` ``[2H]``; recurrent_kernel: ``U`` ``[H, 2H]``,
        each in ``[f, c]`` order.
    """

    name = "janet"
    description = "JANET: LSTM with only a forget gate, chrono init"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT,
               HParam("beta", float, 1.0, "shift between the forget and input gates", low=-10.0, high=10.0),
               HParam("t_max", float, 200.0, "chrono init: longest dependency expected, in steps", low=2.0, high=1e6))
    gates = 2

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, 2 * self.units),
                                                make_initializer(self.params["recurrent_init"]))

    def initial_input_bias(self, shape, dtype=None):
        units = shape[0] // 2
        uniform = keras.initializers.RandomUniform(1.0, self.params["t_max"] - 1.0)
        return tf.concat([tf.math.log(uniform((units,), dtype=self.dtype)), tf.zeros([units], self.dtype)], 0)

    def step(self, projected_t, c):
        s, a_c = tf.split(projected_t + tf.matmul(c, self.recurrent_kernel), 2, axis=-1)
        c = tf.sigmoid(s) * c + (1.0 - tf.sigmoid(s - self.params["beta"])) * tf.tanh(a_c)
        return c, c

    def numpy_step(self, weights, x_t, c):
        s, a_c = np.split(x_t @ weights["kernel"] + weights["bias"] + c @ weights["recurrent_kernel"], 2, -1)
        c = numpy_sigmoid(s) * c + (1.0 - numpy_sigmoid(s - self.params["beta"])) * np.tanh(a_c)
        return c, c


@hookimpl
def zoo_register_cells():
    return [LongShortTermMemoryCell, JANETCell]
