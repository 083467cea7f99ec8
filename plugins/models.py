"""Registers named models: well-known combinations with tuned hyperparameters."""

from zoo_core import hookimpl
from zoo_core.config import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="gru-mean",
            description="embedding 64 -> GRU 64 -> mean of states -> sigmoid",
            encoder="embedding", cell="gru", aggregator="mean-states", head="sigmoid1",
        ),
        ModelSpec(
            name="lstm-last",
            description="embedding 64 -> LSTM 64 -> last step -> softmax",
            encoder="embedding", cell="lstm", aggregator="last", head="softmax2",
        ),
        ModelSpec(
            name="elman-last",
            description="embedding 64 -> tanh RNN 64 -> last step -> sigmoid (the classic baseline)",
            encoder="embedding", cell="tanh", aggregator="last", head="sigmoid1",
        ),
    ]
