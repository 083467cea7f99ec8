"""The shared machinery of the hand-written BPTT kernels (``bptt="fused"``).

A cell with a fused kernel subclasses :class:`FusedBPTTCell` and writes, next
to its class, a ``tf.custom_gradient`` scan whose forward loop calls the same
step helper as :meth:`StepCell.step` and also saves how ``dh_t`` maps to each
gate's pre-activation gradient. Its backward loop then holds one small matmul
per step (the ``dh U^T`` recurrence), while ``dU`` is one large matmul over all
steps (:func:`over_steps`) and ``dW`` and the input gradient come from the
hoisted projection's two large matmuls. Autodiff through the generic loop
(``bptt="autodiff"``) does three small matmuls per step instead; the tests
check that both give the same gradients.

This module holds what the kernels share: the loop that collects per-step
values (:func:`loop`), the shifted states (:func:`previous`), the ``dU``
matmul, and the unroll around a kernel (:meth:`FusedBPTTCell.unroll`). The
cell-specific parts live with their cells (``elman.py``, ``gated.py``,
``lstm.py``), as Keras keeps its cuDNN path apart from its GRU layer.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from zoo_core.cells.base import StepCell
from zoo_core.lazy import do_not_convert, tf
from zoo_core.params import HParam
from zoo_core.unroll import UnrollResult, from_time_major, gradient_possible, to_time_major

BPTT = HParam("bptt", str, "fused", "gradient: hand-written fused BPTT or autodiff through the loop",
              choices=("fused", "autodiff"))


class FusedBPTTCell(StepCell):
    """A step cell that also has a hand-written BPTT kernel, chosen by its ``bptt`` hyperparameter.

    Subclasses declare :data:`BPTT` in their ``hparams`` and implement
    :meth:`fused_scan`. With ``bptt="fused"`` (the default) :meth:`unroll` runs
    the kernel; with ``"autodiff"``, or when a ``probe`` must enter each step
    (diagnostics), it runs the generic loop of :class:`StepCell`. So it does
    when no gradient can be taken (no ``GradientTape`` is recording, e.g.
    evaluation and prediction): the kernel's forward loop also prepares the
    backward pass at every step, work inference would throw away.
    """

    @abc.abstractmethod
    def fused_scan(self, inputs_tm: tf.Tensor, mask_tm: tf.Tensor | None, initial_state: Any) -> tuple[tf.Tensor, Any]:
        """The unroll through the hand-written BPTT kernel.

        Args:
            inputs_tm: Projected inputs ``[time, batch, gates * units]``, in loop order.
            mask_tm: Bool ``[time, batch, 1]`` or ``None``; a padded step copies the state.
            initial_state: As :meth:`initial_state` gives it.

        Returns:
            ``(outputs_tm, final_state)``: the output at every step, time-major
            ``[time, batch, H]``, and the state after the last step in the
            structure of the state. Only what leaves the kernel is stacked over
            time (e.g. not the LSTM's ``c``): each ``[time, batch, H]`` stack is
            a copy the size of the whole sequence.
        """

    @do_not_convert
    def unroll(self, inputs, mask, keep_outputs, *, reverse=False, probe=None):
        if probe is not None or self.params["bptt"] != "fused" or not gradient_possible():
            return super().unroll(inputs, mask, keep_outputs, reverse=reverse, probe=probe)
        projected_tm = self.project(inputs)
        inputs_tm, mask_tm = to_time_major(projected_tm, mask, reverse, time_major=True)
        outputs_tm, final_state = self.fused_scan(inputs_tm, mask_tm, self.initial_state(tf.shape(projected_tm)[1]))
        return UnrollResult(
            outputs=from_time_major(outputs_tm, reverse) if keep_outputs else None,
            last_output=outputs_tm[-1],
            final_state=final_state,
        )


def num_steps(inputs_tm: tf.Tensor):
    """The time dimension of ``[time, ...]``: static when known (always under XLA), else a tensor."""
    return inputs_tm.shape[0] if inputs_tm.shape[0] is not None else tf.shape(inputs_tm)[0]


def previous(states_tm: tf.Tensor, initial: tf.Tensor) -> tf.Tensor:
    """``[h_0, h_1, ..., h_{T-1}]`` from ``[h_1, ..., h_T]`` (time-major) and ``h_0``."""
    return tf.concat([initial[None], states_tm[:-1]], axis=0)


def over_steps(prev_tm: tf.Tensor, grad_tm: tf.Tensor) -> tf.Tensor:
    """``sum_t prev_t^T grad_t`` as one matmul: ``[T, B, H] x [T, B, G] -> [H, G]`` (e.g. ``dU``)."""
    return tf.matmul(tf.reshape(prev_tm, [-1, prev_tm.shape[-1]]), tf.reshape(grad_tm, [-1, grad_tm.shape[-1]]),
                     transpose_a=True)


def loop(step, steps, carry: tuple, widths: Sequence[int], like: tf.Tensor, backward: bool = False):
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
