"""Cells made of other cells, built by name through the registry: ``stacked``, ``bidirectional``, ``skip``.

:meth:`zoo_core.registry.Registry.create` hands a wrapper the registry
(``wants_registry``), so the inner cell may be any registered step cell, a
plugin's too.
"""

from __future__ import annotations

from zoo_core import hookimpl
from zoo_core.cells.base import INITIALIZERS, UNITS, Cell, StepCell
from zoo_core.cells.elman import IdentityCell
from zoo_core.encoders import DenseSequence
from zoo_core.errors import ZooError
from zoo_core.lazy import do_not_convert, np, tf
from zoo_core.params import HParam
from zoo_core.unroll import UnrollResult

DEFAULT_INIT = "default"
INNER_CELL = HParam("cell", str, "gru", "the inner cell's name (a step cell, e.g. tanh, gru, lstm)")
INNER_KERNEL_INIT = HParam("kernel_init", str, DEFAULT_INIT, "inner cells' input kernel initializer",
                           choices=(DEFAULT_INIT,) + INITIALIZERS)
INNER_RECURRENT_INIT = HParam("recurrent_init", str, DEFAULT_INIT, "inner cells' recurrent kernel initializer",
                              choices=(DEFAULT_INIT,) + INITIALIZERS)


class WrapperCell(Cell):
    """A cell made of inner step cells, built by name.

    Args:
        input_dim: Size of one input step.
        registry: Where to look up the inner cell (:meth:`Registry.create` passes it).
        dtype: Variable dtype.
        **params: ``cell``, ``units`` and optional initializers for the inner cells.

    Raises:
        UnknownNameError: no cell has that name (naming the closest).
        ZooError: the inner cell is a wrapper, or lacks an initializer given for it.
    """

    wants_registry = True

    def __init__(self, input_dim: int, *, registry, dtype: tf.DType | str = "float32", **params):
        super().__init__(input_dim, dtype=dtype, **params)
        name = self.params["cell"]
        self.inner_class = registry.get("cell", name).obj
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


class SkipCell(WrapperCell):
    """The input beside the inner cell's outputs: ``o_t = [x_t ; h_t]`` (a skip connection, Graves 2013).

    ``x_t`` is the encoder's output at step ``t`` (it follows every cell's
    masking rule, through :class:`~zoo_core.cells.elman.IdentityCell`), ``h_t``
    the inner cell's; with ``directions=2`` a backward cell's ``h_t`` follows,
    as in ``bidirectional``. Outputs are ``[batch, time, D + directions * H]``.
    A pooling aggregator over them sees the bag of inputs too: with
    ``mean-max-states`` the mean of ``x_t`` is the fastText baseline's feature,
    so the classifier contains the baseline and the recurrence can only add.
    The final state is the tuple of the parts' states; the last output
    concatenates the parts' last outputs (the backward cell's is at the first
    real token). With ``stop_gradient=True`` the inner cells read
    ``stop_gradient(x_t)``: the outputs are the same, but the encoder learns
    only from the skip path, as fastText's embeddings do, while the cells learn
    on top of it. With ``inner_width=K`` the inner cells read only the first
    ``K`` features, ``x_t[:K]``: with ``ngram-vocab-embedding``'s
    ``ngrams_apart``, the words without the n-grams, which then reach the
    classifier through the skip path alone. With ``drop_path=p``, training
    zeroes the inner cells' outputs of a random fraction ``p`` of the examples
    and scales the others' by ``1 / (1 - p)`` (drop-path, Larsson et al. 2017;
    stochastic depth, Huang et al. 2016): for those examples the skip path must
    classify alone, so it keeps learning after the cells fit the training set.

    Raises:
        ZooError: an input wider than :attr:`IdentityCell.MAX_INPUT_DIM` (a one-hot encoder),
            or ``inner_width`` wider than the input.
    """

    name = "skip"
    description = "the input beside `cell`'s outputs, [x_t ; h_t] (skip connection); directions=2 adds a backward cell"
    hparams = (INNER_CELL, UNITS, HParam("directions", int, 1, "1: a forward cell; 2: forward and backward cells",
                                         low=1, high=2), INNER_KERNEL_INIT, INNER_RECURRENT_INIT,
               HParam("stop_gradient", bool, False, "the inner cells read x_t through a stop-gradient, so only the "
                                                    "skip path (the bag of inputs) trains the encoder"),
               HParam("inner_width", int, 0, "the inner cells read the first inner_width features of x_t (0: all of "
                                             "them)", low=0, high=IdentityCell.MAX_INPUT_DIM),
               HParam("drop_path", float, 0.0, "fraction of training examples whose inner-cell outputs are zeroed "
                                               "(drop-path), so the skip path alone must classify them",
                      low=0.0, high=0.95))

    def __init__(self, input_dim: int, **params):
        super().__init__(input_dim, **params)
        if input_dim > IdentityCell.MAX_INPUT_DIM:
            raise ZooError(f"cell 'skip' passes its {input_dim}-wide input through beside the cell's output, which "
                           f"would fill memory (e.g. one-hot over the vocabulary); use an embedding encoder "
                           f"(at most {IdentityCell.MAX_INPUT_DIM} wide)")
        if self.params["inner_width"] > input_dim:
            raise ZooError(f"cell 'skip': inner_width={self.params['inner_width']} is wider than its "
                           f"{input_dim}-wide input")
        self.inner_width = self.params["inner_width"] or input_dim
        self.identity = IdentityCell(input_dim, dtype=self.dtype)
        self.forward = self.make_inner(self.inner_width)
        self.backward = self.make_inner(self.inner_width) if self.params["directions"] == 2 else None

    @property
    def parts(self) -> list[tuple[Cell, bool]]:
        """Each part with whether it runs against the wrapper's direction: input, forward, [backward]."""
        return [(self.identity, False), (self.forward, False)] + ([(self.backward, True)] if self.backward else [])

    @property
    def output_size(self) -> int:
        return sum(part.output_size for part, _ in self.parts)

    @do_not_convert
    def unroll(self, inputs, mask, keep_outputs, *, reverse=False, probe=None):
        sizes = [part.output_size for part, _ in self.parts]
        probes = [None] * len(sizes) if probe is None else tf.split(probe, sizes, axis=-1)
        inner_inputs = inputs
        if self.inner_width < self.input_dim:
            inner_inputs = DenseSequence(inputs.features(self.inner_width, self.dtype))
        if self.params["stop_gradient"] and isinstance(inner_inputs, DenseSequence):  # one-hot ids carry none
            inner_inputs = DenseSequence(tf.stop_gradient(inner_inputs.values))
        results = [part.unroll(inputs if part is self.identity else inner_inputs, mask, keep_outputs,
                               reverse=reverse != backwards, probe=part_probe)
                   for (part, backwards), part_probe in zip(self.parts, probes)]
        outputs = tf.concat([r.outputs for r in results], axis=-1) if keep_outputs else None
        return UnrollResult(outputs, tf.concat([r.last_output for r in results], axis=-1),
                            tuple(r.final_state for r in results))

    def regularize(self, result):
        rate = self.params["drop_path"]
        if rate == 0:
            return result
        batch = tf.shape(result.last_output)[0]
        kept = tf.cast(tf.random.uniform([batch, 1]) >= rate, self.dtype) / (1.0 - rate)  # [batch, 1]
        scale = tf.concat([tf.ones([batch, self.input_dim], self.dtype),  # the skip path is never dropped
                           tf.tile(kept, [1, self.output_size - self.input_dim])], axis=1)  # [batch, output_size]
        outputs = None if result.outputs is None else result.outputs * scale[:, None, :]
        return UnrollResult(outputs, result.last_output * scale, result.final_state)

    def reference_unroll(self, inputs, mask, reverse=False):
        results = [part.reference_unroll(inputs if part is self.identity else inputs[..., : self.inner_width], mask,
                                         reverse != backwards) for part, backwards in self.parts]
        return np.concatenate([outputs for outputs, _ in results], axis=-1), tuple(state for _, state in results)


@hookimpl
def zoo_register_cells():
    return [StackedCell, BidirectionalCell, SkipCell]
