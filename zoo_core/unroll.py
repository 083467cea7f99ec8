"""The one unroll loop every cell shares: masking and BPTT come for free.

A cell only defines how one step maps ``(projected_t, state)`` to
``(output, new_state)``. :func:`unroll` runs that step over time with a
``tf.while_loop`` over time-major inputs, carries the state (and output)
unchanged through padded steps, and lets ``tf.GradientTape`` differentiate
through the loop (backpropagation through time).

Because padded steps are no-ops, pre-padding, post-padding and no padding give
the same final state, and reversing time (for a backward direction) needs no
per-sequence bookkeeping.

The loop compiles under XLA (``tf.function(jit_compile=True)``): its trip
count is the static time dimension and every buffer has a fixed size.
:func:`to_time_major` and :func:`from_time_major` are shared with the
hand-written BPTT kernels (:mod:`zoo_core.cells.bptt`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from zoo_core.lazy import do_not_convert, tf


@dataclasses.dataclass
class UnrollResult:
    """What a cell's unroll returns.

    Attributes:
        outputs: Per-step outputs ``[batch, time, units]``, or ``None`` when not kept.
            On a padded step the output repeats the previous real step's output.
        last_output: Output at the last real token ``[batch, units]``.
        final_state: The cell's state after the last real token (nested structure).
    """

    outputs: tf.Tensor | None
    last_output: tf.Tensor
    final_state: Any


StepFn = Callable[[Any, Any], tuple[Any, Any]]  # (x_t [batch, features], state) -> (output_t, new state)


def to_time_major(
    projected: tf.Tensor, mask: tf.Tensor | None, reverse: bool = False, time_major: bool = False
) -> tuple[tf.Tensor, tf.Tensor | None]:
    """Turns inputs and mask into the loop's time-major order.

    Args:
        projected: ``[batch, time, G]``, or ``[time, batch, G]`` when ``time_major``.
        mask: ``[batch, time]`` (bool or 0/1), or ``None``.
        reverse: Also flip time, for a backward direction.
        time_major: ``projected`` is already time-major.

    Returns:
        ``projected`` as ``[time, batch, G]`` and the mask as bool ``[time, batch, 1]``
        (``None`` stays ``None``), flipped in time when ``reverse``.
    """
    inputs_tm = projected if time_major else tf.transpose(projected, [1, 0, 2])
    mask_tm = None if mask is None else tf.transpose(tf.cast(mask, tf.bool))[:, :, None]
    if reverse:
        inputs_tm = tf.reverse(inputs_tm, [0])
        mask_tm = None if mask_tm is None else tf.reverse(mask_tm, [0])
    return inputs_tm, mask_tm


def from_time_major(outputs_tm: tf.Tensor, reverse: bool = False) -> tf.Tensor:
    """``[time, batch, units]`` loop outputs -> ``[batch, time, units]`` in input order."""
    if reverse:
        outputs_tm = tf.reverse(outputs_tm, [0])
    return tf.transpose(outputs_tm, [1, 0, 2])


def gradient_possible() -> bool:
    """Whether a tape (or forward accumulator) is recording here, so a gradient of what is built may be asked for.

    Read when a function is traced: False inside a ``tf.function`` traced with
    no tape in it (an evaluation step), True in a training step that opens its
    tape inside. TensorFlow's own test of it (``tf.custom_gradient`` has none
    public); if the module moves, assume a gradient may be taken.
    """
    try:
        from tensorflow.python.eager import record
    except ImportError:  # pragma: no cover - a TensorFlow that moved it
        return True
    return bool(record.could_possibly_record())


@do_not_convert
def unroll(
    step: StepFn,
    projected: tf.Tensor,
    mask: tf.Tensor | None,
    initial_state: Any,
    initial_output: tf.Tensor,
    keep_outputs: bool,
    reverse: bool = False,
    time_major: bool = False,
) -> UnrollResult:
    """Runs ``step`` over time; autodiff differentiates through the loop.

    Args:
        step: ``(projected_t [batch, G], state) -> (output [batch, units], new_state)``.
        projected: Input projections ``[batch, time, G]`` (``[time, batch, G]`` when
            ``time_major``), hoisted out of the loop.
        mask: ``[batch, time]`` bool, True on real tokens; ``None`` means all real
            (and skips the per-step select entirely).
        initial_state: The cell's initial state (a tensor or nested structure).
        initial_output: ``[batch, units]`` output before the first step (zeros).
        keep_outputs: Whether to return every step's output.
        reverse: Run from the last step to the first (outputs stay in input order).
        time_major: ``projected`` is already time-major.

    Returns:
        An :class:`UnrollResult`; its outputs are batch-major ``[batch, time, units]``.
    """
    inputs_tm, mask_tm = to_time_major(projected, mask, reverse, time_major)
    # The static length when known (always under XLA), so the loop has a fixed trip count.
    steps = inputs_tm.shape[0] if inputs_tm.shape[0] is not None else tf.shape(inputs_tm)[0]
    # Without kept outputs no TensorArray is carried: XLA cannot differentiate an unwritten one.
    kept = (tf.TensorArray(initial_output.dtype, size=steps, element_shape=initial_output.shape),) \
        if keep_outputs else ()

    if gradient_possible():
        # Read steps through a TensorArray: the gradient of indexing a captured tensor
        # (inputs_tm[t]) would build a dense [time, batch, G] zeros tensor at every step.
        inputs_ta = tf.TensorArray(inputs_tm.dtype, size=steps, element_shape=inputs_tm.shape[1:]).unstack(inputs_tm)
        read = inputs_ta.read
    else:
        # No gradient can be asked for: index the tensor, sparing unstack's sequence-sized copy.
        def read(t):
            return inputs_tm[t]

    def body(t, state, output, *kept):
        new_output, new_state = step(read(t), state)
        if mask_tm is not None:
            # On a padded step keep the previous state and output unchanged.
            real = mask_tm[t]  # [batch, 1]
            new_state = tf.nest.map_structure(lambda new, old: tf.where(real, new, old), new_state, state)
            new_output = tf.where(real, new_output, output)
        return (t + 1, new_state, new_output) + tuple(outputs_ta.write(t, new_output) for outputs_ta in kept)

    _, final_state, last_output, *kept = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), initial_state, initial_output) + kept,
        maximum_iterations=steps,  # lets the gradient loop preallocate its stacks (XLA needs it)
    )
    outputs = from_time_major(kept[0].stack(), reverse) if keep_outputs else None
    return UnrollResult(outputs=outputs, last_output=last_output, final_state=final_state)
