"""An example rnn-zoo plugin: registers the ``leaky`` cell and the ``leaky-mean`` model."""

import numpy as np

import zoo_core
from zoo_core.cells import KERNEL_INIT, RECURRENT_INIT, UNITS, StepCell, make_initializer
from zoo_core.config import ModelSpec
from zoo_core.lazy import tf  # TensorFlow on first use: `zoo --help` and `zoo components` stay fast
from zoo_core.params import HParam

__version__ = "0.2.0"


class LeakyCell(StepCell):
    """A leaky-integrator tanh RNN (Jaeger et al. 2007, "Optimization and
    applications of echo state networks with leaky-integrator neurons").

    ``h_t = (1 - a) h_{t-1} + a tanh(x_t W + h_{t-1} U + b)``, with leak ``a``.
    """

    name = "leaky"
    description = "leaky tanh RNN (leaky-integrator neurons)"
    hparams = (UNITS, KERNEL_INIT, RECURRENT_INIT, HParam("leak", float, 0.5, "leak a", low=0.0, high=1.0))

    def __init__(self, input_dim, **params):
        super().__init__(input_dim, **params)
        # The base created the fused input kernel [input_dim, units] and bias.
        self.recurrent_kernel = self.new_weight("recurrent_kernel", (self.units, self.units),
                                                make_initializer(self.params["recurrent_init"]))

    def step(self, projected_t, state):
        leak = self.params["leak"]
        h = (1.0 - leak) * state + leak * tf.tanh(projected_t + tf.matmul(state, self.recurrent_kernel))
        return h, h

    def numpy_step(self, weights, x_t, h):
        """NumPy reference of one step; the zoo's registry-driven tests compare against it."""
        leak = self.params["leak"]
        pre = x_t @ weights["kernel"] + weights["bias"] + h @ weights["recurrent_kernel"]
        new = (1.0 - leak) * h + leak * np.tanh(pre)
        return new, new


@zoo_core.hookimpl
def zoo_register_cells():
    return [LeakyCell]


@zoo_core.hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="leaky-mean",
            description="embedding 32 -> leaky tanh RNN 32 -> mean of states -> sigmoid",
            encoder="embedding", cell="leaky", aggregator="mean-states", head="sigmoid1",
            params={"encoder": {"dim": 32}, "cell": {"units": 32, "leak": 0.3}},
        )
    ]
