"""rnn-zoo: a plugin-based zoo of recurrent IMDB sentiment classifiers in low-level TF 2."""

__version__ = "0.1.0"

from zoo_core.hookspecs import hookimpl  # noqa: E402  (plugins write @zoo_core.hookimpl)

__all__ = ["__version__", "hookimpl"]
