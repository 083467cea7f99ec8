"""What every cell shares: the :class:`Cell` and :class:`StepCell` bases, initializers, common hyperparameters.

A step cell follows Sonnet 2's ``RNNCore``: ``__call__(x_t, state) ->
(output, new_state)`` and ``initial_state(batch_size)``. For speed it is split
in two: :meth:`StepCell.project` computes ``x W + b`` for every step at once
(one large matmul, hoisted out of the time loop, all gates fused), and
:meth:`StepCell.step` applies the recurrence to one projected step. The shared
:func:`zoo_core.unroll.unroll` runs ``step`` over time with masking, so a new
cell only writes its maths, and :meth:`StepCell.numpy_step` its NumPy
reference.

Shapes: ``[batch, time, dim]`` inputs, ``[batch, units]`` states.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

from zoo_core.component import Component
from zoo_core.encoders import EncodedSequence
from zoo_core.lazy import do_not_convert, keras, np, tf
from zoo_core.params import HParam
from zoo_core.unroll import UnrollResult, unroll

INITIALIZERS = ("glorot", "orthogonal", "identity")


def make_initializer(name: str, seed: int | None = None):
    """Returns the initializer called ``name`` (one of :data:`INITIALIZERS`).

    ``identity`` puts an identity matrix in every ``[rows, rows]`` block of a
    fused ``[rows, k * rows]`` kernel (each gate starts as the identity, as in
    Le et al. 2015), and ``tf.eye(rows, cols)`` for other shapes.

    Raises:
        ValueError: an unknown name (``HParam.choices`` rejects it before).
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


def numpy_sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` for the NumPy references."""
    return 1.0 / (1.0 + np.exp(-x))


UNITS = HParam("units", int, 64, "hidden units H", low=1, high=8192, tiny=5)
KERNEL_INIT = HParam("kernel_init", str, "glorot", "input kernel initializer", choices=INITIALIZERS)
RECURRENT_INIT = HParam("recurrent_init", str, "orthogonal", "recurrent kernel initializer", choices=INITIALIZERS)


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

    def regularize(self, result: UnrollResult) -> UnrollResult:
        """Training-time noise on an unrolled result; the classifier calls it only when training.

        The default adds none; ``skip`` drops its inner cells' outputs per
        example (drop-path, Larsson et al. 2017).

        Args:
            result: What :meth:`unroll` returned: outputs ``[batch, time, output_size]``
                (or None), last output ``[batch, output_size]``.

        Returns:
            The result the aggregator pools, of the same shapes.
        """
        return result

    def reference_unroll(self, inputs: np.ndarray, mask: np.ndarray | None,
                         reverse: bool = False) -> tuple[np.ndarray, Any]:
        """NumPy reference of :meth:`unroll`: ``(outputs [batch, time, out], final_state)``.

        Same masking semantics: a padded step carries state and output unchanged.

        Raises:
            NotImplementedError: the cell has no reference (the registry-driven tests then fail).
        """
        raise NotImplementedError(
            f"cell {self.name!r} ({type(self).__name__}) has no NumPy reference: "
            "implement numpy_step (a step cell) or reference_unroll (a wrapper)"
        )

    def new_weight(self, name: str, shape: Sequence[int], initializer) -> tf.Variable:
        """A trainable variable of this cell's dtype, from a Keras-style initializer."""
        return tf.Variable(tf.cast(initializer(tuple(shape), dtype=self.dtype), self.dtype), name=name)


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

    def project(self, inputs: EncodedSequence) -> tf.Tensor:
        """``inputs W + b`` for every step at once, time-major: ``[time, batch, gates * units]``."""
        projected = inputs.project_time_major(self.kernel)
        return projected + self.bias if self.input_bias else projected

    @do_not_convert
    def unroll(self, inputs, mask, keep_outputs, *, reverse=False, probe=None):
        projected = self.project(inputs)
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
    def numpy_step(self, weights: dict[str, np.ndarray], x_t: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """NumPy reference of one step from a raw input ``[batch, input_dim]``.

        Args:
            weights: This cell's variables as NumPy arrays, by attribute name
                (:meth:`numpy_weights`); hyperparameters are in ``self.params``.
            x_t: ``[batch, input_dim]``.
            state: The state, as NumPy arrays with the structure of :meth:`initial_state`.

        Returns:
            ``(output [batch, units], new_state)``.
        """
        raise NotImplementedError

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """This cell's own variables as NumPy arrays, by attribute name."""
        return {name: value.numpy() for name, value in vars(self).items() if isinstance(value, tf.Variable)}

    def reference_unroll(self, inputs, mask, reverse=False):
        if type(self).numpy_step is StepCell.numpy_step:
            return super().reference_unroll(inputs, mask, reverse)
        weights = self.numpy_weights()
        batch, steps = inputs.shape[:2]
        mask = np.ones((batch, steps), bool) if mask is None else np.asarray(mask, bool)
        state = tf.nest.map_structure(lambda s: s.numpy(), self.initial_state(batch))
        output = np.zeros((batch, self.output_size), inputs.dtype)
        outputs = np.zeros((batch, steps, self.output_size), inputs.dtype)
        for t in reversed(range(steps)) if reverse else range(steps):
            new_output, new_state = self.numpy_step(weights, inputs[:, t], state)
            real = mask[:, t, None]
            state = tf.nest.map_structure(lambda new, old: np.where(real, new, old), new_state, state)
            output = np.where(real, new_output, output)
            outputs[:, t] = output
        return outputs, state


class KerasWeightLayout:
    """Weights as Keras' ``SimpleRNN`` and ``LSTM`` layers lay them out: ``[kernel, recurrent_kernel, bias]``.

    Lets the reference tests (and the throughput benchmark) load one set of
    weights into both implementations.
    """

    def keras_weights(self) -> list[np.ndarray]:
        """``[kernel, recurrent_kernel, bias]``, the order the Keras layer's ``set_weights`` takes."""
        return [v.numpy() for v in (self.kernel, self.recurrent_kernel, self.bias)]

    def load_keras_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Loads the Keras layer's ``get_weights()``."""
        for variable, value in zip((self.kernel, self.recurrent_kernel, self.bias), weights, strict=True):
            variable.assign(value)
