"""Recurrent cells, written with low-level TF ops only; one module per family.

==============  ===============================================================
``base``        :class:`Cell`, :class:`StepCell`, initializers, the shared
                hyperparameters ``UNITS``, ``KERNEL_INIT``, ``RECURRENT_INIT``
``bptt``        :class:`FusedBPTTCell` and the loop helpers of the
                hand-written BPTT kernels (``BPTT``)
``elman``       ``tanh``, ``irnn``, ``ln-tanh``, ``indrnn``, ``identity``
``gated``       ``gru``, ``mgu``, ``ugrnn``
``lstm``        ``lstm``, ``janet``
``wrappers``    ``stacked``, ``bidirectional``
==============  ===============================================================

Each cell is one contiguous block in its family's module: the class, whose
docstring states the maths once (with its paper), whose ``step`` mirrors it
with named gates and whose ``numpy_step`` is the NumPy reference the
registry-driven tests compare against; then the helpers only it uses. ``tanh``,
``irnn``, ``gru`` and ``lstm`` also have a hand-written BPTT
(``bptt="fused"``, the default), whose forward loop calls the same step helper
as ``step``. ``tanh``, ``gru`` and ``lstm`` use Keras' weight layout (gate
order, biases), so Keras' ``SimpleRNN``/``GRU``/``LSTM`` layers' weights load
directly (``load_keras_weights``).

Each family module registers its own cells with ``@hookimpl
zoo_register_cells`` at its bottom; this package's hook gathers them, so the
plugin module for the built-in cells is ``zoo_core.cells``. A new cell in an
existing family is one class and one entry in that module's list.

Importing this package does not import TensorFlow or NumPy (``zoo --help``
stays fast): the modules use the stand-ins of :mod:`zoo_core.lazy`.
"""

from zoo_core import hookimpl
from zoo_core.cells import elman, gated, lstm, wrappers
from zoo_core.cells.base import (INITIALIZERS, KERNEL_INIT, RECURRENT_INIT, UNITS, Cell, KerasWeightLayout, StepCell,
                                 make_initializer, numpy_sigmoid)
from zoo_core.cells.bptt import BPTT, FusedBPTTCell
from zoo_core.cells.elman import (IdentityCell, IndRNNCell, IRNNCell, LayerNormTanhCell, TanhCell, elman_bptt,
                                  elman_step, layer_norm)
from zoo_core.cells.gated import GatedRecurrentUnitCell, MGUCell, UGRNNCell, gru_bptt, gru_step
from zoo_core.cells.lstm import JANETCell, LongShortTermMemoryCell, lstm_bptt, lstm_step
from zoo_core.cells.wrappers import BidirectionalCell, StackedCell, WrapperCell

__all__ = [
    "BPTT", "INITIALIZERS", "KERNEL_INIT", "RECURRENT_INIT", "UNITS",
    "BidirectionalCell", "Cell", "FusedBPTTCell", "GatedRecurrentUnitCell", "IRNNCell", "IdentityCell", "IndRNNCell",
    "JANETCell", "KerasWeightLayout", "LayerNormTanhCell", "LongShortTermMemoryCell", "MGUCell", "StackedCell",
    "StepCell", "TanhCell",
    "UGRNNCell", "WrapperCell",
    "elman_bptt", "elman_step", "gru_bptt", "gru_step", "layer_norm", "lstm_bptt", "lstm_step", "make_initializer",
    "numpy_sigmoid", "zoo_register_cells",
]

FAMILIES = (elman, gated, lstm, wrappers)


@hookimpl
def zoo_register_cells():
    """Every built-in cell, as each family module registers it."""
    return [cls for family in FAMILIES for cls in family.zoo_register_cells()]
