"""Recurrent cells, written with low-level TF ops only.

A step cell follows Sonnet 2's ``RNNCore``: ``__call__(x_t, state) ->
(output, new_state)`` and ``initial_state(batch_size)``. For speed it is split
in two: :func:`time_major_projection` computes ``x W + b`` for every step at
once (one large matmul, hoisted out of the time loop, all gates fused), and
:meth:`StepCell.step` applies the recurrence to one projected step (one fused
recurrent matmul where the maths allows). The shared
:func:`zoo_core.unroll.unroll` runs ``step`` over time with masking, so a new
cell only writes its maths.

``tanh``, ``irnn``, ``gru`` and ``lstm`` also have a hand-written BPTT
(``bptt="fused"``, the default): a ``tf.custom_gradient`` whose forward loop
also saves how ``dh_t`` maps to each gate's pre-activation gradient, so the
backward loop holds one small matmul per step (the ``dh U^T`` recurrence),
while ``dU`` is one large matmul over all steps and ``dW`` and the input
gradient come from the hoisted projection's two large matmuls. Autodiff
through the generic loop (``bptt="autodiff"``) does three small matmuls per
step instead; the tests check that both give the same gradients.

Every cell carries a NumPy reference of its step (:meth:`StepCell.numpy_step`)
and of its whole unroll (:meth:`Cell.reference_unroll`); the registry-driven
tests compare against them. ``tanh``, ``gru`` and ``lstm`` use Keras' weight
layout (gate order, biases), so Keras' ``SimpleRNN``/``GRU``/``LSTM`` layers
weights load directly (:meth:`load_keras_weights`).

Wrappers (``stacked``, ``bidirectional``) build their inner cell by name from
the built-in cells, or from a ``registry`` passed to them.

Shapes: ``[batch, time, dim]`` inputs, ``[batch, units]`` states.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar


from zoo_core.component import Component
from zoo_core.encoders import DenseSequence, EncodedSequence, OneHotSequence
from zoo_core.errors import UnknownNameError, ZooError
from zoo_core.hookspecs import hookimpl
from zoo_core.lazy import do_not_convert, keras, np, tf
from zoo_core.params import HParam
from zoo_core.unroll import UnrollResult, from_time_major, to_time_major, unroll

INITIALIZERS = ("glorot", "orthogonal", "identity")


def make_initializer(name: str, seed: int | None = None):
    """Returns the initializer called ``name`` (one of :data:`INITIALIZERS`).

    ``identity`` puts an identity matrix in every ``[rows, rows]`` block of a
    fused ``[rows, k * rows]`` kernel (each gate starts as the identity, as in
    Le et al. 2015), and ``tf.eye(rows, cols)`` for other shapes.
    """
    if name == "glorot":
        return keras.initializers.GlorotUniform(seed=seed)
    if name == "orthogonal":
        return keras.initializers.Orthogonal(seed=seed)
    if name == "identity":

        def identity(shape, dtype=None):
            rows, cols = shape
            dtype = dtype or tf.float32
            if cols % rows == 0:
                return tf.tile(tf.eye(rows, dtype=dtype), [1, cols // rows])
            return tf.eye(rows, cols, dtype=dtype)

        return identity
    raise ValueError(f"unknown initializer {name!r} (known: {', '.join(INITIALIZERS)})")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


UNITS = HParam("units", int, 64, "hidden units H", low=1, high=8192, tiny=5)
KERNEL_INIT = HParam("kernel_init", str, "glorot", "input kernel initializer", choices=INITIALIZERS)
RECURRENT_INIT = HParam("recurrent_init", str, "orthogonal", "recurrent kernel initializer", choices=INITIALIZERS)
BPTT = HParam("bptt", str, "fused", "gradient: hand-written fused BPTT or autodiff through the loop",
              choices=("fused", "autodiff"))


# ---------------------------------------------------------------------------
# Bases
# ---------------------------------------------------------------------------
class Cell(Component):
    """Base of every cell: something that runs over a whole masked sequence.

    Args:
        input_dim: Size of one input step.
        dtype: Variable and state dtype (float64 for finite-difference tests).
        **params: The cell's declared hyperparameters.
    """

    kind = "cell"

    def __init__(self, input_dim: int, *, dtype: tf.DType | str = "float32", **params):
        super().__init__(**params)
        self.input_dim = int(input_dim)
        self.dtype = tf.as_dtype(dtype)

    @property
    @abc.abstractmethod
    def output_size(self) -> int:
        """Width of one output step."""

    @abc.abstractmethod
    def unroll(self, inputs: EncodedSequence, mask: tf.Tensor | None, keep_outputs: bool, *,
               reverse: bool = False, probe: tf.Tensor | None = None) -> UnrollResult:
        """Runs the cell over a whole sequence.

        Args:
            inputs: Encoded inputs ``[batch, time, input_dim]``.
            mask: ``[batch, time]`` bool, True on real tokens; ``None``: all real.
            keep_outputs: Whether to return every step's output.
            reverse: Run backward in time (outputs stay in input order).
            probe: Optional zeros ``[batch, time, output_size]`` added to each real
                step's output (and the hidden state it feeds forward); the gradient
                of a loss with respect to it is ``dL/dh_t`` through the whole
                recurrence (``zoo diagnose``).

        Returns:
            An :class:`UnrollResult`.
        """

    def reference_unroll(self, inputs: np.ndarray, mask: np.ndarray | None,
                         reverse: bool = False) -> tuple[np.ndarray, Any]:
        """NumPy reference of :meth:`unroll`: ``(outputs [batch, time, out], final_state)``.

        Same masking semantics: a padded step carries state and output unchanged.
        """
        raise NotImplementedError(
            f"cell {self.name!r} ({type(self).__name__}) has no NumPy reference: "
            "implement numpy_step (a step cell) or reference_unroll (a wrapper)"
        )

    def new_weight(self, name: str, shape: Sequence[int], initializer) -> tf.Variable:
        """A trainable variable of this cell's dtype, from a Keras-style initializer."""
        return tf.Variable(tf.cast(initializer(tuple(shape), dtype=self.dtype), self.dtype), name=name)


def time_major_projection(inputs: EncodedSequence, kernel: tf.Tensor, bias: tf.Tensor | None) -> tf.Tensor:
    """``inputs @ kernel + bias`` laid out time-major: ``[time, batch, units]``.

    The loops run over time-major steps. Transposing the narrow inputs (token ids,
    or ``[batch, time, dim]`` values) costs less than transposing the projection,
    which is ``gates`` times wider; other encodings transpose the projection.
    """
    if isinstance(inputs, OneHotSequence):
        projected = OneHotSequence(tf.transpose(inputs.ids), inputs.dim).project(kernel)
    elif isinstance(inputs, DenseSequence):
        values = tf.transpose(inputs.values, [1, 0, 2])  # [time, batch, dim]
        flat = tf.matmul(tf.reshape(values, [-1, inputs.dim]), kernel)  # one large matmul
        projected = tf.reshape(flat, tf.concat([tf.shape(values)[:2], [kernel.shape[-1]]], 0))
        projected.set_shape(values.shape[:2].concatenate([kernel.shape[-1]]))
    else:
        projected = tf.transpose(inputs.project(kernel), [1, 0, 2])
    return projected if bias is None else projected + bias


class StepCell(Cell):
    """A cell defined by one step; the shared loop unrolls it.

    Subclasses set ``gates`` (how many ``units``-wide blocks the fused input
    projection has), create their recurrent weights, and implement
    :meth:`step` and :meth:`numpy_step`. The base creates the fused input
    kernel ``[input_dim, gates * units]`` and bias ``[gates * units]``.
    """

    gates: ClassVar[int] = 1
    input_bias: ClassVar[bool] = True  # False where a later shift makes it redundant

    def __init__(self, input_dim: int, *, dtype: tf.DType | str = "float32", **params):
        super().__init__(input_dim, dtype=dtype, **params)
        self.units = self.params["units"]
        width = self.gates * self.units
        self.kernel = self.new_weight("kernel", (self.input_dim, width), make_initializer(self.params["kernel_init"]))
        if self.input_bias:
            self.bias = self.new_weight("bias", (width,), self.initial_input_bias)

    def initial_input_bias(self, shape, dtype=None) -> tf.Tensor:
        """The input bias at creation; zeros unless a cell says otherwise (e.g. forget gates)."""
        return tf.zeros(shape, dtype or self.dtype)

    @property
    def output_size(self) -> int:
        return self.units

    def initial_state(self, batch_size) -> Any:
        """The zero state; a tensor ``[batch, units]`` unless overridden."""
        return tf.zeros([batch_size, self.units], self.dtype)

    @abc.abstractmethod
    def step(self, projected_t: tf.Tensor, state: Any) -> tuple[tf.Tensor, Any]:
        """One step from a projected input ``[batch, gates * units]``: ``(output, new_state)``."""

    def perturb(self, state: Any, delta: tf.Tensor) -> Any:
        """``state`` with ``delta`` added to its hidden (output) part; see ``probe``."""
        return state + delta

    def __call__(self, x_t: tf.Tensor, state: Any) -> tuple[tf.Tensor, Any]:
        """One step from a raw input ``[batch, input_dim]``: ``(output, new_state)``."""
        projected = tf.matmul(x_t, self.kernel)
        return self.step(projected + self.bias if self.input_bias else projected, state)

    def fused_unroll(self, projected_tm: tf.Tensor, mask: tf.Tensor | None, keep_outputs: bool,
                     reverse: bool) -> UnrollResult | None:
        """A hand-written BPTT of the whole unroll, or ``None`` to use the generic loop.

        Args:
            projected_tm: Time-major input projections ``[time, batch, gates * units]``.
            mask, keep_outputs, reverse: As for :meth:`unroll`.
        """
        return None

    @do_not_convert
    def unroll(self, inputs, mask, keep_outputs, *, reverse=False, probe=None):
        projected = time_major_projection(inputs, self.kernel, self.bias if self.input_bias else None)
        # A probe must enter each step, which only the generic loop offers (diagnostics, not training).
        if probe is None and self.params.get("bptt", "autodiff") == "fused":
            result = self.fused_unroll(projected, mask, keep_outputs, reverse)
            if result is not None:
                return result
        batch = tf.shape(projected)[1]
        step = self.step
        if probe is not None:
            # Ride the probe along with the projected inputs, so the loop needs no extra input.
            width = projected.shape[-1]
            projected = tf.concat([projected, tf.transpose(tf.cast(probe, projected.dtype), [1, 0, 2])], axis=-1)

            def probed_step(packed_t, state):
                output, new_state = self.step(packed_t[:, :width], state)
                delta = packed_t[:, width:]
                return output + delta, self.perturb(new_state, delta)

            step = probed_step

        return unroll(step, projected, mask, self.initial_state(batch),
                      tf.zeros([batch, self.output_size], self.dtype), keep_outputs, reverse, time_major=True)

    # -- NumPy reference ---------------------------------------------------
    @staticmethod
    def numpy_step(params: dict[str, np.ndarray], x_t: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """NumPy reference of one step from a raw input ``[batch, input_dim]``.

        Args:
            params: This cell's variables by attribute name, and any hyperparameter
                its maths needs (:meth:`numpy_params`).
            x_t: ``[batch, input_dim]``.
            state: The state, as NumPy arrays with the structure of :meth:`initial_state`.

        Returns:
            ``(output [batch, units], new_state)``.
        """
        raise NotImplementedError

    def numpy_params(self) -> dict[str, np.ndarray]:
        """This cell's own variables as NumPy arrays, by attribute name."""
        return {name: value.numpy() for name, value in vars(self).items() if isinstance(value, tf.Variable)}

    def reference_unroll(self, inputs, mask, reverse=False):
        if type(self).numpy_step is StepCell.numpy_step:
            return super().reference_unroll(inputs, mask, reverse)
        params = self.numpy_params()
        batch, steps = inputs.shape[:2]
        mask = np.ones((batch, steps), bool) if mask is None else np.asarray(mask, bool)
        state = tf.nest.map_structure(lambda s: s.numpy(), self.initial_state(batch))
        output = np.zeros((batch, self.output_size), inputs.dtype)
        outputs = np.zeros((batch, steps, self.output_size), inputs.dtype)
        for t in reversed(range(steps)) if reverse else range(steps):
            new_output, new_state = self.numpy_step(params, inputs[:, t], state)
            real = mask[:, t, None]
            state = tf.nest.map_structure(lambda new, old: np.where(real, new, old), new_state, state)
            output = np.where(real, new_output, output)
            outputs[:, t] = output
        return outputs, state


# ---------------------------------------------------------------------------
# Hand-written BPTT kernels (tf.custom_gradient)
# ---------------------------------------------------------------------------
def _previous(states_tm: tf.Tensor, initial: tf.Tensor) -> tf.Tensor:
    """``[h_0, h_1, ..., h_{T-1}]`` from ``[h_1, ..., h_T]`` (time-major) and ``h_0``."""
    return tf.concat([initial[None], states_tm[:-1]], axis=0)


def _over_steps(prev_tm: tf.Tensor, grad_tm: tf.Tensor) -> tf.Tensor:
    """``sum_t prev_t^T grad_t`` as one matmul: ``[T, B, H] x [T, B, G] -> [H, G]``."""
    return tf.matmul(tf.reshape(prev_tm, [-1, prev_tm.shape[-1]]), tf.reshape(grad_tm, [-1, grad_tm.shape[-1]]),
                     transpose_a=True)


def _loop(step, steps, carry: tuple, widths: Sequence[int], like: tf.Tensor, backward: bool = False):
    """A ``tf.while_loop`` over time collecting what each step writes in TensorArrays.

    Args:
        step: ``(t, *carry) -> (new carry tuple, written tuple)``; ``written[k]`` is
            ``[batch, widths[k]]``.
        steps: Number of steps (static when known).
        carry: The initial carry, a tuple of tensors.
        widths: Width of each written value.
        like: A ``[batch, ...]`` tensor giving the batch size and dtype.
        backward: Run ``t = steps - 1 .. 0``.

    Returns:
        The final carry and one TensorArray per written value. A later loop reads
        them step by step (``.read(t)``) without the copy ``.stack()`` makes.
    """
    # clear_after_read=False: a persistent tape may run the backward loop (which reads them) twice.
    arrays = tuple(tf.TensorArray(like.dtype, size=steps, element_shape=[like.shape[0], w], clear_after_read=False)
                   for w in widths)

    def body(t, carry, arrays):
        carry, written = step(t, *carry)
        return (t - 1 if backward else t + 1), carry, tuple(a.write(t, w) for a, w in zip(arrays, written))

    start = steps - 1 if backward else 0
    _, carry, arrays = tf.while_loop(lambda t, *_: t >= 0 if backward else t < steps, body,
                                     (tf.convert_to_tensor(start), tuple(carry), arrays), maximum_iterations=steps)
    return carry, arrays


def _steps(inputs_tm: tf.Tensor):
    return inputs_tm.shape[0] if inputs_tm.shape[0] is not None else tf.shape(inputs_tm)[0]


def elman_bptt(inputs_tm, mask_tm, recurrent_kernel, h0, activation: str) -> tf.Tensor:
    """Elman unroll ``h_t = act(a_t)``, ``a_t = x_t + h_{t-1} U``, with hand-written BPTT.

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
    act = {"tanh": tf.tanh, "relu": tf.nn.relu}[activation]
    units, steps = h0.shape[-1], _steps(inputs_tm)

    @tf.custom_gradient
    def scan(inputs_tm, recurrent_kernel, h0):
        def forward(t, h):
            new = act(inputs_tm[t] + tf.matmul(h, recurrent_kernel))
            if mask_tm is not None:
                new = tf.where(mask_tm[t], new, h)
            return (new,), (new,)

        _, (states,) = _loop(forward, steps, (h0,), [units], h0)
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

            (dh0,), (d_pre,) = _loop(backward, steps, (tf.zeros_like(h0),), [units], h0, backward=True)
            d_pre = d_pre.stack()
            return d_pre, _over_steps(_previous(states, h0), d_pre), dh0

        return states, grad

    return scan(inputs_tm, recurrent_kernel, h0)


def gru_bptt(inputs_tm, mask_tm, recurrent_kernel, recurrent_bias, h0) -> tf.Tensor:
    """Reset-after GRU unroll (see :func:`gru_step`) with hand-written BPTT.

    The forward loop also saves, per step, how ``dh_t`` maps to the gradients of
    the pre-activations (``coef``) and to ``dh_{t-1}`` directly (``z``). The
    backward loop then needs one small matmul per step,
    ``dh_{t-1} = dh_t z_t + (dh_t * coef_t) U^T``; ``dU`` and the recurrent bias
    are one large matmul and one sum after it.

    Args:
        inputs_tm: Projected inputs ``[time, batch, 3H]`` in ``[z, r, h]`` order.
        mask_tm: Bool ``[time, batch, 1]`` or ``None``.
        recurrent_kernel: ``[H, 3H]``; recurrent_bias: ``[3H]``; h0: ``[batch, H]``.

    Returns:
        Every state ``[time, batch, H]``.
    """
    units, steps = h0.shape[-1], _steps(inputs_tm)

    @tf.custom_gradient
    def scan(inputs_tm, recurrent_kernel, recurrent_bias, h0):
        def forward(t, h):
            x = inputs_tm[t]
            m = tf.matmul(h, recurrent_kernel) + recurrent_bias
            z_r = tf.sigmoid(x[:, : 2 * units] + m[:, : 2 * units])
            z, r = z_r[:, :units], z_r[:, units:]
            m_h = m[:, 2 * units:]
            n = tf.tanh(x[:, 2 * units:] + r * m_h)
            new = n + z * (h - n)
            # dh -> d(pre-activations) of h = n + z (h_prev - n).
            one_minus_z = 1.0 - z
            d_n = one_minus_z * (1.0 - n * n)
            d_z_r = tf.concat([(h - n) * z * one_minus_z, d_n * m_h * r * (1.0 - r)], axis=1)
            if mask_tm is not None:
                real = tf.cast(mask_tm[t], h.dtype)
                new = tf.where(mask_tm[t], new, h)
                d_n, d_z_r = d_n * real, d_z_r * real
                z = z * real + (1.0 - real)  # a padded step copies h_{t-1}
            coef_m = tf.concat([d_z_r, d_n * r], axis=1)  # dh -> d(h_prev U + b_r)
            return (new,), (new, coef_m, d_n, z)

        _, (states, coef_m, coef_n, keep) = _loop(forward, steps, (h0,), [units, 3 * units, units, units], h0)
        states = states.stack()

        def grad(d_states):
            kernel_t = tf.transpose(recurrent_kernel)  # once, not a transposed matmul per step

            def backward(t, dh_next):
                dh = d_states[t] + dh_next
                d_m = tf.tile(dh, [1, 3]) * coef_m.read(t)
                d_x = tf.concat([d_m[:, : 2 * units], dh * coef_n.read(t)], axis=1)
                return (dh * keep.read(t) + tf.matmul(d_m, kernel_t),), (d_m, d_x)

            (dh0,), (d_m, d_x) = _loop(backward, steps, (tf.zeros_like(h0),), [3 * units, 3 * units], h0,
                                       backward=True)
            d_m = d_m.stack()
            return d_x.stack(), _over_steps(_previous(states, h0), d_m), tf.reduce_sum(d_m, axis=[0, 1]), dh0

        return states, grad

    return scan(inputs_tm, recurrent_kernel, recurrent_bias, h0)


def lstm_bptt(inputs_tm, mask_tm, recurrent_kernel, h0, c0) -> tuple[tf.Tensor, tf.Tensor]:
    """LSTM unroll (see :func:`lstm_step`) with hand-written BPTT.

    The forward loop also saves, per step, ``dh -> dc`` (``o (1 - tanh^2 c)``),
    ``dc -> d[a_i, a_f, a_c]`` and ``dh -> da_o`` (``coef``) and ``f``. The
    backward loop then needs one small matmul per step:
    ``dc~_t = dc_t + dh_t h2c_t``, ``da_t = [dc~_t, dc~_t, dc~_t, dh_t] * coef_t``,
    ``dh_{t-1} = da_t U^T``, ``dc_{t-1} = dc~_t f_t``; ``dU`` is one large matmul after it.

    Args:
        inputs_tm: Projected inputs ``[time, batch, 4H]`` in ``[i, f, c, o]`` order.
        mask_tm: Bool ``[time, batch, 1]`` or ``None``.
        recurrent_kernel: ``[H, 4H]``; h0, c0: ``[batch, H]``.

    Returns:
        Every ``h`` and every ``c``, each ``[time, batch, H]``.
    """
    units, steps = h0.shape[-1], _steps(inputs_tm)

    @tf.custom_gradient
    def scan(inputs_tm, recurrent_kernel, h0, c0):
        def forward(t, h, c):
            pre = inputs_tm[t] + tf.matmul(h, recurrent_kernel)
            gates = tf.sigmoid(pre)
            i, f, o = gates[:, :units], gates[:, units: 2 * units], gates[:, 3 * units:]
            g = tf.tanh(pre[:, 2 * units: 3 * units])
            new_c = f * c + i * g
            tanh_c = tf.tanh(new_c)
            new_h = o * tanh_c
            h_to_c = o * (1.0 - tanh_c * tanh_c)
            coef = tf.concat([g * i * (1.0 - i), c * f * (1.0 - f), i * (1.0 - g * g), tanh_c * o * (1.0 - o)], axis=1)
            if mask_tm is not None:
                real = tf.cast(mask_tm[t], h.dtype)
                new_h, new_c = tf.where(mask_tm[t], new_h, h), tf.where(mask_tm[t], new_c, c)
                h_to_c, coef = h_to_c * real, coef * real
                f = f * real + (1.0 - real)  # a padded step copies c_{t-1}
            return (new_h, new_c), (new_h, new_c, h_to_c, coef, f)

        _, (hs, cs, h_to_c, coef, keep_c) = _loop(forward, steps, (h0, c0), [units, units, units, 4 * units, units],
                                                  h0)
        hs, cs = hs.stack(), cs.stack()

        def grad(d_hs, d_cs):
            kernel_t = tf.transpose(recurrent_kernel)  # once, not a transposed matmul per step

            def backward(t, dh_next, dc_next):
                dh = d_hs[t] + dh_next if d_hs is not None else dh_next
                dc = dc_next + dh * h_to_c.read(t)
                if d_cs is not None:
                    dc += d_cs[t]
                d_pre = tf.concat([tf.tile(dc, [1, 3]), dh], axis=1) * coef.read(t)
                dh_prev = tf.matmul(d_pre, kernel_t)
                if mask_tm is not None:
                    dh_prev = tf.where(mask_tm[t], dh_prev, dh)  # a padded step copied h_{t-1}
                return (dh_prev, dc * keep_c.read(t)), (d_pre,)

            zeros = tf.zeros_like(h0)
            (dh0, dc0), (d_pre,) = _loop(backward, steps, (zeros, zeros), [4 * units], h0, backward=True)
            d_pre = d_pre.stack()
            return d_pre, _over_steps(_previous(hs, h0), d_pre), dh0, dc0

        return (hs, cs), grad

    return scan(inputs_tm, recurrent_kernel, h0, c0)


def _fused_result(states_tm: tf.Tensor, keep_outputs: bool, reverse: bool, final_state: Any) -> UnrollResult:
    """An :class:`UnrollResult` from time-major states whose output is ``h``."""
    return UnrollResult(
        outputs=from_time_major(states_tm, reverse) if keep_outputs else None,
        last_output=states_tm[-1],
        final_state=final_state,
    )


# ---------------------------------------------------------------------------
# Step maths: small pure functions
# ---------------------------------------------------------------------------
def elman_step(projected_t, h, recurrent_kernel, activation):
    """Elman step: ``h_t = act(x_t W + b + h_{t-1} U)``.

    Args:
        projected_t: ``x_t W + b``, ``[batch, H]``.
        h: ``h_{t-1}``, ``[batch, H]``.
        recurrent_kernel: ``U``, ``[H, H]``.
        activation: ``tf.tanh`` (Elman) or ``tf.nn.relu`` (IRNN).

    Returns:
        ``h_t`` ``[batch, H]``.
    """
    return activation(projected_t + tf.matmul(h, recurrent_kernel))


def gru_step(projected_t, h, recurrent_kernel, recurrent_bias):
    """Reset-after GRU step (Cho et al. 2014; the form Keras' ``GRU`` layer uses by default).

    ``[m_z, m_r, m_h] = h_{t-1} U + b_r`` (one fused matmul), then
    ``z = sigmoid(x_z + m_z)``, ``r = sigmoid(x_r + m_r)``,
    ``n = tanh(x_h + r * m_h)``, ``h_t = z * h_{t-1} + (1 - z) * n``.

    Args:
        projected_t: ``x_t W + b_x``, ``[batch, 3H]`` in Keras' ``[z, r, h]`` order.
        h: ``[batch, H]``.
        recurrent_kernel: ``U`` ``[H, 3H]``.
        recurrent_bias: ``b_r`` ``[3H]``.

    Returns:
        ``h_t`` ``[batch, H]``.
    """
    units = h.shape[-1]
    recurrent = tf.matmul(h, recurrent_kernel) + recurrent_bias
    z_r = tf.sigmoid(projected_t[:, : 2 * units] + recurrent[:, : 2 * units])
    z, r = z_r[:, :units], z_r[:, units:]
    n = tf.tanh(projected_t[:, 2 * units:] + r * recurrent[:, 2 * units:])
    return n + z * (h - n)


def lstm_step(projected_t, h, c, recurrent_kernel):
    """LSTM step (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    ``[a_i, a_f, a_c, a_o] = x_t W + b + h_{t-1} U`` (Keras' order, one matmul),
    ``i, f, o = sigmoid(a_i, a_f, a_o)``, ``g = tanh(a_c)``,
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``.

    Args:
        projected_t: ``[batch, 4H]``; h, c: ``[batch, H]``; recurrent_kernel: ``[H, 4H]``.

    Returns:
        ``(h_t, c_t)``, each ``[batch, H]``.
    """
    units = h.shape[-1]
    pre = projected_t + tf.matmul(h, recurrent_kernel)
    gates = tf.sigmoid(pre)  # i, f, (unused), o
    g = tf.tanh(pre[:, 2 * units: 3 * units])
    c = gates[:, units: 2 * units] * c + gates[:, :units] * g
    return gates[:, 3 * units:] * tf.tanh(c), c


def layer_norm(values, gain, shift, epsilon: float = 1e-5):
    """Layer normalisation over the last axis (Ba et al. 2016): ``gain * (a - mean) / std + shift``."""
    mean, variance = tf.nn.moments(values, axes=[-1], keepdims=True)
    return gain * (values - mean) * tf.math.rsqrt(variance + epsilon) + shift


def ln_tanh_step(projected_t, h, recurrent_kernel, gain, shift):
    """Layer-normalised Elman step: ``h_t = tanh(LN(x_t W + h_{t-1} U; gain, shift))``.

    Args:
        projected_t: ``x_t W`` ``[batch, H]`` (no bias: LN's shift replaces it).
        h: ``[batch, H]``; recurrent_kernel: ``[H, H]``; gain, shift: ``[H]``.
    """
    return tf.tanh(layer_norm(projected_t + tf.matmul(h, recurrent_kernel), gain, shift))


def mgu_step(projected_t, h, forget_kernel, candidate_kernel):
    """Minimal gated unit step (Zhou et al. 2016).

    ``f = sigmoid(x_f + h_{t-1} U_f)``, ``n = tanh(x_h + (f * h_{t-1}) U_h)``,
    ``h_t = (1 - f) * h_{t-1} + f * n``. The two recurrent matmuls cannot fuse:
    the second needs ``f``.

    Args:
        projected_t: ``[batch, 2H]`` in ``[f, h]`` order; h: ``[batch, H]``;
        forget_kernel, candidate_kernel: ``U_f``, ``U_h`` ``[H, H]``.
    """
    units = h.shape[-1]
    f = tf.sigmoid(projected_t[:, :units] + tf.matmul(h, forget_kernel))
    n = tf.tanh(projected_t[:, units:] + tf.matmul(f * h, candidate_kernel))
    return h + f * (n - h)


def ugrnn_step(projected_t, h, recurrent_kernel):
    """Update-gate RNN step (Collins, Sohl-Dickstein & Sussillo 2017).

    ``[a_c, a_g] = x_t W + b + h_{t-1} U`` (one matmul), ``c = tanh(a_c)``,
    ``g = sigmoid(a_g)``, ``h_t = g * h_{t-1} + (1 - g) * c``.

    Args:
        projected_t: ``[batch, 2H]`` in ``[c, g]`` order; h: ``[batch, H]``; recurrent_kernel: ``[H, 2H]``.
    """
    units = h.shape[-1]
    pre = projected_t + tf.matmul(h, recurrent_kernel)
    c, g = tf.tanh(pre[:, :units]), tf.sigmoid(pre[:, units:])
    return c + g * (h - c)


def indrnn_step(projected_t, h, recurrent_weight):
    """Independently recurrent step (Li et al. 2018): ``h_t = relu(x_t W + b + u * h_{t-1})``.

    Each unit sees only its own past (``u`` is a vector ``[H]``), so there is no recurrent matmul.
    """
    return tf.nn.relu(projected_t + recurrent_weight * h)


def janet_step(projected_t, c, recurrent_kernel, beta: float):
    """JANET step, the forget-gate-only LSTM (van der Westhuizen & Lasenby 2018).

    ``[s, a_c] = x_t W + b + h_{t-1} U`` (one matmul),
    ``c_t = sigmoid(s) * c_{t-1} + (1 - sigmoid(s - beta)) * tanh(a_c)``, ``h_t = c_t``.

    Args:
        projected_t: ``[batch, 2H]`` in ``[f, c]`` order; c: ``[batch, H]``;
        recurrent_kernel: ``[H, 2H]``; beta: the input gate's shift.
    """
    units = c.shape[-1]
    pre = projected_t + tf.matmul(c, recurrent_kernel)
    s = pre[:, :units]
    return tf.sigmoid(s) * c + (1.0 - tf.sigmoid(s - beta)) * tf.tanh(pre[:, units:])


# ---------------------------------------------------------------------------
# Step cells
# ---------------------------------------------------------------------------
class KerasWeightLayout:
    """Weights as Keras' ``SimpleRNN`` and ``LSTM`` layers lay them out: ``[kernel, recurrent_kernel, bias]``.

    Lets the reference tests load one set of weights into both implementations.
    """

    def keras_weights(self) -> list[np.ndarray]:
        """``[kernel, recurrent_kernel, bias]``, the order the Keras layer's ``set_weights`` takes."""
        return [v.numpy() for v in (self.kernel, self.recurrent_kernel, self.bias)]

    def load_keras_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Loads the Keras layer's ``get_weights()``."""
        for variable, value in zip((self.kernel, self.recurrent_kernel, self.bias), weights, strict=True):
            variable.assign(value)


class TanhCell(KerasWeightLayout, StepCell):
    """The Elman RNN (Elman 1990, "Finding structure in time").

    ``h_t = tanh(x_t W + h_{t-1} U + b)``; output and state are ``h_t``.
    Matches Keras' ``SimpleRNN`` layer given the same weights.
    """

    name = "tanh"
    description = "Elman RNN: h_t = tanh(x_t W + h_{t-1} U + b)"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT, BPTT)
    activation: ClassVar[str] = "tanh"

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, self.units),
                                                make_initializer(self.params["recurrent_init"]))

    def step(self, projected_t, state):
        h = elman_step(projected_t, state, self.recurrent_kernel, getattr(tf.nn, self.activation))
        return h, h

    def fused_unroll(self, projected_tm, mask, keep_outputs, reverse):
        inputs_tm, mask_tm = to_time_major(projected_tm, mask, reverse, time_major=True)
        h0 = self.initial_state(tf.shape(projected_tm)[1])
        states = elman_bptt(inputs_tm, mask_tm, tf.convert_to_tensor(self.recurrent_kernel), h0, self.activation)
        return _fused_result(states, keep_outputs, reverse, states[-1])

    @staticmethod
    def numpy_step(params, x_t, state):
        h = np.tanh(x_t @ params["kernel"] + params["bias"] + state @ params["recurrent_kernel"])
        return h, h


class IRNNCell(TanhCell):
    """IRNN (Le, Jaitly & Hinton 2015, "A simple way to initialize recurrent networks of rectified linear units").

    ``h_t = relu(x_t W + h_{t-1} U + b)`` with ``U`` initialised to the identity
    and ``b`` to zero, so at the start the state is carried forward unchanged.
    """

    name = "irnn"
    description = "ReLU RNN with identity recurrent init: h_t = relu(x_t W + h_{t-1} U + b), U_0 = I"
    hparams = (UNITS, KERNEL_INIT, dataclasses.replace(RECURRENT_INIT, default="identity"), BPTT)
    activation = "relu"

    @staticmethod
    def numpy_step(params, x_t, state):
        h = np.maximum(x_t @ params["kernel"] + params["bias"] + state @ params["recurrent_kernel"], 0.0)
        return h, h


class GatedRecurrentUnitCell(StepCell):
    """Gated recurrent unit (Cho et al. 2014), the reset-after form of Keras' ``GRU`` layer.

    ``z = sigmoid(x W_z + b_z + h U_z + c_z)``, ``r = sigmoid(x W_r + b_r + h U_r + c_r)``,
    ``n = tanh(x W_h + b_h + r * (h U_h + c_h))``, ``h_t = z * h_{t-1} + (1 - z) * n``.
    Gates fused in Keras' ``[z, r, h]`` order with its two biases (input ``b``, recurrent ``c``).
    """

    name = "gru"
    description = "GRU (Cho et al. 2014), reset-after as in Keras; [z, r, h] gates"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT, BPTT)
    gates = 3

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, 3 * self.units),
                                                make_initializer(self.params["recurrent_init"]))
        self.recurrent_bias = self.new_weight("recurrent_bias", (3 * self.units,), self.initial_input_bias)

    def step(self, projected_t, state):
        h = gru_step(projected_t, state, self.recurrent_kernel, self.recurrent_bias)
        return h, h

    def fused_unroll(self, projected_tm, mask, keep_outputs, reverse):
        inputs_tm, mask_tm = to_time_major(projected_tm, mask, reverse, time_major=True)
        h0 = self.initial_state(tf.shape(projected_tm)[1])
        states = gru_bptt(inputs_tm, mask_tm, tf.convert_to_tensor(self.recurrent_kernel),
                          tf.convert_to_tensor(self.recurrent_bias), h0)
        return _fused_result(states, keep_outputs, reverse, states[-1])

    @staticmethod
    def numpy_step(params, x_t, state):
        x_z, x_r, x_h = np.split(x_t @ params["kernel"] + params["bias"], 3, axis=-1)
        m_z, m_r, m_h = np.split(state @ params["recurrent_kernel"] + params["recurrent_bias"], 3, axis=-1)
        z, r = _sigmoid(x_z + m_z), _sigmoid(x_r + m_r)
        n = np.tanh(x_h + r * m_h)
        h = z * state + (1.0 - z) * n
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


class LongShortTermMemoryCell(KerasWeightLayout, StepCell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000).

    ``i, f, o = sigmoid(x W + h U + b)``, ``g = tanh(x W_c + h U_c + b_c)``,
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``; state ``(h, c)``,
    output ``h``. Keras' ``[i, f, c, o]`` order; forget bias starts at 1
    (Jozefowicz et al. 2015), as Keras' ``unit_forget_bias``.
    """

    name = "lstm"
    description = "LSTM, [i, f, c, o] gates as in Keras, forget bias 1"
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
        h, c = lstm_step(projected_t, *state, self.recurrent_kernel)
        return h, (h, c)

    def fused_unroll(self, projected_tm, mask, keep_outputs, reverse):
        inputs_tm, mask_tm = to_time_major(projected_tm, mask, reverse, time_major=True)
        h0, c0 = self.initial_state(tf.shape(projected_tm)[1])
        hs, cs = lstm_bptt(inputs_tm, mask_tm, tf.convert_to_tensor(self.recurrent_kernel), h0, c0)
        return _fused_result(hs, keep_outputs, reverse, (hs[-1], cs[-1]))

    @staticmethod
    def numpy_step(params, x_t, state):
        h, c = state
        a_i, a_f, a_c, a_o = np.split(x_t @ params["kernel"] + params["bias"] + h @ params["recurrent_kernel"], 4, -1)
        c = _sigmoid(a_f) * c + _sigmoid(a_i) * np.tanh(a_c)
        h = _sigmoid(a_o) * np.tanh(c)
        return h, (h, c)


class LayerNormTanhCell(StepCell):
    """Layer-normalised Elman RNN (Ba, Kiros & Hinton 2016, "Layer normalization").

    ``h_t = tanh(gain * (a_t - mean(a_t)) / std(a_t) + shift)`` with
    ``a_t = x_t W + h_{t-1} U``, statistics over the units of each example.
    """

    name = "ln-tanh"
    description = "layer-normalised Elman RNN: h_t = tanh(LN(x_t W + h_{t-1} U))"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT)
    input_bias = False

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, self.units),
                                                make_initializer(self.params["recurrent_init"]))
        self.gain = self.new_weight("gain", (self.units,), lambda shape, dtype: tf.ones(shape, dtype))
        self.shift = self.new_weight("shift", (self.units,), lambda shape, dtype: tf.zeros(shape, dtype))

    def step(self, projected_t, state):
        h = ln_tanh_step(projected_t, state, self.recurrent_kernel, self.gain, self.shift)
        return h, h

    @staticmethod
    def numpy_step(params, x_t, state):
        a = x_t @ params["kernel"] + state @ params["recurrent_kernel"]
        normed = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-5)
        h = np.tanh(params["gain"] * normed + params["shift"])
        return h, h


class MGUCell(StepCell):
    """Minimal gated unit (Zhou, Wu, Zhang & Zhou 2016): a GRU with one gate.

    ``f = sigmoid(x W_f + h U_f + b_f)``, ``n = tanh(x W_h + (f * h) U_h + b_h)``,
    ``h_t = (1 - f) * h_{t-1} + f * n``.
    """

    name = "mgu"
    description = "minimal gated unit: one forget gate, h_t = (1 - f) h + f tanh(x W + (f h) U)"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT)
    gates = 2

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        init = make_initializer(self.params["recurrent_init"])
        self.forget_kernel = self.new_weight("forget_kernel", (self.units, self.units), init)
        self.candidate_kernel = self.new_weight("candidate_kernel", (self.units, self.units),
                                                make_initializer(self.params["recurrent_init"]))

    def step(self, projected_t, state):
        h = mgu_step(projected_t, state, self.forget_kernel, self.candidate_kernel)
        return h, h

    @staticmethod
    def numpy_step(params, x_t, state):
        x_f, x_h = np.split(x_t @ params["kernel"] + params["bias"], 2, axis=-1)
        f = _sigmoid(x_f + state @ params["forget_kernel"])
        n = np.tanh(x_h + (f * state) @ params["candidate_kernel"])
        h = (1.0 - f) * state + f * n
        return h, h


class UGRNNCell(StepCell):
    """Update-gate RNN (Collins, Sohl-Dickstein & Sussillo 2017, "Capacity and trainability in RNNs").

    ``c = tanh(x W_c + h U_c + b_c)``, ``g = sigmoid(x W_g + h U_g + b_g)``,
    ``h_t = g * h_{t-1} + (1 - g) * c``.
    """

    name = "ugrnn"
    description = "update-gate RNN: h_t = g h + (1 - g) tanh(x W + h U), one fused matmul"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT)
    gates = 2

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, 2 * self.units),
                                                make_initializer(self.params["recurrent_init"]))

    def step(self, projected_t, state):
        h = ugrnn_step(projected_t, state, self.recurrent_kernel)
        return h, h

    @staticmethod
    def numpy_step(params, x_t, state):
        a_c, a_g = np.split(x_t @ params["kernel"] + params["bias"] + state @ params["recurrent_kernel"], 2, -1)
        g = _sigmoid(a_g)
        h = g * state + (1.0 - g) * np.tanh(a_c)
        return h, h


class IndRNNCell(StepCell):
    """Independently recurrent neural network (Li, Li, Cook, Zhu & Gao 2018).

    ``h_t = relu(x_t W + b + u * h_{t-1})`` with a recurrent *vector* ``u``
    ``[H]``, initialised uniformly in ``[0, recurrent_max]``; each unit sees
    only its own past, so long memories stay trainable.
    """

    name = "indrnn"
    description = "IndRNN: h_t = relu(x_t W + u * h_{t-1} + b), u a vector"
    hparams = (UNITS, KERNEL_INIT,
               HParam("recurrent_max", float, 1.0, "u starts uniform in [0, recurrent_max]", low=0.0, high=10.0))

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.recurrent_weight = self.new_weight(
            "recurrent_weight", (self.units,), keras.initializers.RandomUniform(0.0, self.params["recurrent_max"]))

    def step(self, projected_t, state):
        h = indrnn_step(projected_t, state, self.recurrent_weight)
        return h, h

    @staticmethod
    def numpy_step(params, x_t, state):
        h = np.maximum(x_t @ params["kernel"] + params["bias"] + params["recurrent_weight"] * state, 0.0)
        return h, h


class JANETCell(StepCell):
    """JANET, "just another network" (van der Westhuizen & Lasenby 2018): an LSTM with only a forget gate.

    ``s = x W_f + h U_f + b_f``, ``c_t = sigmoid(s) * c_{t-1} + (1 - sigmoid(s - beta)) * tanh(x W_c + h U_c + b_c)``,
    ``h_t = c_t``. The forget bias starts chrono-initialised,
    ``b_f = log(U(1, t_max - 1))`` (Tallec & Ollivier 2018).
    """

    name = "janet"
    description = "JANET: forget-gate-only LSTM, c_t = s(f) c + (1 - s(f - beta)) tanh(...), chrono init"
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

    def step(self, projected_t, state):
        c = janet_step(projected_t, state, self.recurrent_kernel, self.params["beta"])
        return c, c

    def numpy_params(self):
        return {**super().numpy_params(), "beta": np.float64(self.params["beta"])}

    @staticmethod
    def numpy_step(params, x_t, state):
        s, a_c = np.split(x_t @ params["kernel"] + params["bias"] + state @ params["recurrent_kernel"], 2, -1)
        c = _sigmoid(s) * state + (1.0 - _sigmoid(s - params["beta"])) * np.tanh(a_c)
        return c, c


# ---------------------------------------------------------------------------
# Wrappers
# ---------------------------------------------------------------------------
DEFAULT_INIT = "default"
INNER_CELL = HParam("cell", str, "gru", "the inner cell's name (a step cell, e.g. tanh, gru, lstm)")
INNER_KERNEL_INIT = HParam("kernel_init", str, DEFAULT_INIT, "inner cells' input kernel initializer",
                           choices=(DEFAULT_INIT,) + INITIALIZERS)
INNER_RECURRENT_INIT = HParam("recurrent_init", str, DEFAULT_INIT, "inner cells' recurrent kernel initializer",
                              choices=(DEFAULT_INIT,) + INITIALIZERS)


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
    description = "no recurrence: h_t = x_t (with mean-states and an embedding: the fastText baseline)"
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
        values = inputs.values if isinstance(inputs, DenseSequence) else inputs.project(tf.eye(inputs.dim))
        values = tf.cast(values, self.dtype)
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


def builtin_cell_class(name: str) -> type[Cell]:
    """The built-in cell class called ``name`` (or one of its aliases)."""
    for cls in BUILTIN_CELLS:
        if name == cls.name or name in cls.aliases:
            return cls
    raise UnknownNameError("cell", name, [c.name for c in BUILTIN_CELLS])


class WrapperCell(Cell):
    """A cell made of inner cells, built by name.

    Args:
        input_dim: Size of one input step.
        registry: Where to look up the inner cell (plugin cells too); the
            built-in cells when ``None``.
        dtype: Variable dtype.
        **params: ``cell``, ``units`` and optional initializers for the inner cells.
    """

    wants_registry = True

    def __init__(self, input_dim: int, *, registry=None, dtype: tf.DType | str = "float32", **params):
        super().__init__(input_dim, dtype=dtype, **params)
        name = self.params["cell"]
        self.inner_class = registry.get("cell", name).obj if registry is not None else builtin_cell_class(name)
        if not issubclass(self.inner_class, StepCell):
            raise ZooError(f"cell {self.name!r}: its inner cell must be a step cell, not the wrapper {name!r}")
        declared = {p.name for p in self.inner_class.hparams}
        self.inner_params = {"units": self.params["units"]}
        for key in ("kernel_init", "recurrent_init"):
            if self.params[key] != DEFAULT_INIT:
                if key not in declared:
                    raise ZooError(f"cell {self.name!r}: inner cell {name!r} has no parameter {key!r}")
                self.inner_params[key] = self.params[key]

    def make_inner(self, input_dim: int) -> StepCell:
        return self.inner_class(input_dim, dtype=self.dtype, **self.inner_params)


class StackedCell(WrapperCell):
    """A deep RNN: ``layers`` cells, each reading the outputs of the one below (Graves et al. 2013).

    Unrolled layer by layer: layer ``k`` runs over the whole sequence and its
    outputs, a :class:`~zoo_core.encoders.DenseSequence`, are layer ``k+1``'s
    inputs. The final state is the tuple of every layer's final state; the
    output is the top layer's.
    """

    name = "stacked"
    description = "deep RNN: `layers` copies of `cell`, each reading the outputs of the one below"
    hparams = (HParam("layers", int, 2, "number of stacked layers", low=1, high=32), INNER_CELL, UNITS,
               INNER_KERNEL_INIT, INNER_RECURRENT_INIT)

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.layers = []
        for _ in range(self.params["layers"]):
            self.layers.append(self.make_inner(input_dim if not self.layers else self.layers[-1].output_size))

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size

    @do_not_convert
    def unroll(self, inputs, mask, keep_outputs, *, reverse=False, probe=None):
        states = []
        for depth, layer in enumerate(self.layers):
            top = depth == len(self.layers) - 1
            result = layer.unroll(inputs, mask, keep_outputs or not top, reverse=reverse,
                                  probe=probe if top else None)
            states.append(result.final_state)
            if not top:
                inputs = DenseSequence(result.outputs)
        return UnrollResult(result.outputs, result.last_output, tuple(states))

    def reference_unroll(self, inputs, mask, reverse=False):
        states = []
        for layer in self.layers:
            inputs, state = layer.reference_unroll(inputs, mask, reverse)
            states.append(state)
        return inputs, tuple(states)


class BidirectionalCell(WrapperCell):
    """A forward and a backward cell, outputs concatenated (Schuster & Paliwal 1997).

    The backward cell runs the same loop with time reversed; because padded
    steps are no-ops, that is correct for pre- and post-padding alike. Per-step
    outputs are ``[forward_t, backward_t]`` ``[batch, time, 2H]``; the last
    output is ``[forward final, backward final]`` (the backward cell's final
    output is at the first real token).
    """

    name = "bidirectional"
    description = "forward + backward `cell`, outputs concatenated [batch, time, 2H]"
    hparams = (INNER_CELL, UNITS, INNER_KERNEL_INIT, INNER_RECURRENT_INIT)

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        self.forward = self.make_inner(input_dim)
        self.backward = self.make_inner(input_dim)

    @property
    def output_size(self) -> int:
        return self.forward.output_size + self.backward.output_size

    @do_not_convert
    def unroll(self, inputs, mask, keep_outputs, *, reverse=False, probe=None):
        probes = (None, None) if probe is None else tf.split(probe, [self.forward.output_size,
                                                                     self.backward.output_size], axis=-1)
        fwd = self.forward.unroll(inputs, mask, keep_outputs, reverse=reverse, probe=probes[0])
        bwd = self.backward.unroll(inputs, mask, keep_outputs, reverse=not reverse, probe=probes[1])
        outputs = tf.concat([fwd.outputs, bwd.outputs], axis=-1) if keep_outputs else None
        return UnrollResult(outputs, tf.concat([fwd.last_output, bwd.last_output], axis=-1),
                            (fwd.final_state, bwd.final_state))

    def reference_unroll(self, inputs, mask, reverse=False):
        fwd_outputs, fwd_state = self.forward.reference_unroll(inputs, mask, reverse)
        bwd_outputs, bwd_state = self.backward.reference_unroll(inputs, mask, not reverse)
        return np.concatenate([fwd_outputs, bwd_outputs], axis=-1), (fwd_state, bwd_state)


BUILTIN_CELLS = (TanhCell, IRNNCell, GatedRecurrentUnitCell, LongShortTermMemoryCell, LayerNormTanhCell, MGUCell, UGRNNCell, IndRNNCell,
                 JANETCell, IdentityCell, StackedCell, BidirectionalCell)


@hookimpl
def zoo_register_cells():
    return [TanhCell, IRNNCell, GatedRecurrentUnitCell, LongShortTermMemoryCell, LayerNormTanhCell, MGUCell,
            UGRNNCell, IndRNNCell, JANETCell, IdentityCell, StackedCell, BidirectionalCell]
