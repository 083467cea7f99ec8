"""The one unroll loop every cell shares: masking and BPTT come for free.

A cell only defines how one step maps ``(projected_t, state)`` to
``(output, new_state)``. :func:`unroll` runs that step over time with a
``tf.while_loop`` over time-major inputs, carries the state (and output)
unchanged through padded steps, and lets ``tf.GradientTape`` differentiate
through the loop (backpropagation through time).

Because padded steps are no-ops, pre-padding, post-padding and no padding give
the same final state, and reversing time (for a backward direction) needs no
per-sequence bookkeeping.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import tensorflow as tf


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


StepFn = Callable[[tf.Tensor, Any], tuple[tf.Tensor, Any]]


def unroll(
    step: StepFn,
    projected: tf.Tensor,
    mask: tf.Tensor | None,
    initial_state: Any,
    initial_output: tf.Tensor,
    keep_outputs: bool,
    reverse: bool = False,
) -> UnrollResult:
    """Runs ``step`` over time.

    Args:
        step: ``(projected_t [batch, G], state) -> (output [batch, units], new_state)``.
        projected: Input projections ``[batch, time, G]``, hoisted out of the loop.
        mask: ``[batch, time]`` bool, True on real tokens; ``None`` means all real.
        initial_state: The cell's initial state (a tensor or nested structure).
        initial_output: ``[batch, units]`` output before the first step (zeros).
        keep_outputs: Whether to return every step's output.
        reverse: Run from the last step to the first (outputs stay in input order).

    Returns:
        An :class:`UnrollResult`.
    """
    inputs_tm = tf.transpose(projected, [1, 0, 2])  # [time, batch, G]
    steps = tf.shape(inputs_tm)[0]
    batch = tf.shape(inputs_tm)[1]
    if mask is None:
        mask_tm = tf.ones([steps, batch], tf.bool)
    else:
        mask_tm = tf.transpose(tf.cast(mask, tf.bool), [1, 0])
    if reverse:
        inputs_tm = tf.reverse(inputs_tm, [0])
        mask_tm = tf.reverse(mask_tm, [0])

    outputs_ta = tf.TensorArray(
        initial_output.dtype, size=steps if keep_outputs else 0, element_shape=initial_output.shape
    )

    def body(t, state, output, outputs_ta):
        new_output, new_state = step(inputs_tm[t], state)
        real = mask_tm[t][:, None]  # [batch, 1]
        # On a padded step keep the previous state and output unchanged.
        state = tf.nest.map_structure(lambda new, old: tf.where(real, new, old), new_state, state)
        output = tf.where(real, new_output, output)
        if keep_outputs:
            outputs_ta = outputs_ta.write(t, output)
        return t + 1, state, output, outputs_ta

    _, final_state, last_output, outputs_ta = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), initial_state, initial_output, outputs_ta),
    )
    outputs = None
    if keep_outputs:
        outputs = outputs_ta.stack()  # [time, batch, units]
        if reverse:
            outputs = tf.reverse(outputs, [0])
        outputs = tf.transpose(outputs, [1, 0, 2])
    return UnrollResult(outputs=outputs, last_output=last_output, final_state=final_state)
