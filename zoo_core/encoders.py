"""Encoders: token ids ``[batch, time]`` -> something a cell can project.

An encoder does not have to materialise ``[batch, time, dim]``: it returns an
:class:`EncodedSequence`, which the cell multiplies by its input kernel. The
one-hot encoder uses this to turn ``one_hot(ids) @ W`` into ``gather(W, ids)``
and never builds the ``[batch, time, vocab]`` tensor.
"""

from __future__ import annotations

import abc


from zoo_core.component import Component
from zoo_core.hookspecs import hookimpl
from zoo_core.lazy import keras, np, tf
from zoo_core.params import HParam


class EncodedSequence(abc.ABC):
    """An encoded batch of sequences, ``[batch, time, dim]`` at least in meaning."""

    dim: int

    @abc.abstractmethod
    def project(self, kernel: tf.Tensor) -> tf.Tensor:
        """Returns ``inputs @ kernel``.

        Args:
            kernel: ``[dim, units]``.

        Returns:
            ``[batch, time, units]``.
        """

    def features(self, width: int | None = None, dtype: tf.DType | str = "float32") -> tf.Tensor:
        """The first ``width`` features (None: all ``dim``) as a dense ``[batch, time, width]`` tensor.

        By default the projection on the identity's first columns, which any
        encoding supports; :class:`DenseSequence` slices its values instead.

        Args:
            width: How many leading features, at most ``dim``; None: all.
            dtype: The identity's dtype, for encodings that project (a
                :class:`DenseSequence` keeps its values' dtype).
        """
        return self.project(tf.eye(self.dim, width or self.dim, dtype=dtype))

    def project_time_major(self, kernel: tf.Tensor) -> tf.Tensor:
        """Returns ``inputs @ kernel`` time-major, ``[time, batch, units]``, as the cells' loops read it.

        This default transposes the projection; encodings that can transpose
        their narrower inputs first override it (the projection is ``gates``
        times wider than a dense input, and token ids are narrower still).
        """
        return tf.transpose(self.project(kernel), [1, 0, 2])


class DenseSequence(EncodedSequence):
    """Dense inputs ``[batch, time, dim]``, e.g. embeddings or a lower layer's outputs."""

    def __init__(self, values: tf.Tensor):
        self.values = values
        self.dim = int(values.shape[-1])

    def project(self, kernel: tf.Tensor) -> tf.Tensor:
        return tf.einsum("btd,du->btu", self.values, kernel)

    def features(self, width: int | None = None, dtype: tf.DType | str = "float32") -> tf.Tensor:
        return self.values if width is None else self.values[..., :width]  # the values' own dtype

    def project_time_major(self, kernel: tf.Tensor) -> tf.Tensor:
        values = tf.transpose(self.values, [1, 0, 2])  # [time, batch, dim]
        flat = tf.matmul(tf.reshape(values, [-1, self.dim]), kernel)  # one large matmul
        projected = tf.reshape(flat, tf.concat([tf.shape(values)[:2], [kernel.shape[-1]]], 0))
        projected.set_shape(values.shape[:2].concatenate([kernel.shape[-1]]))
        return projected


class OneHotSequence(EncodedSequence):
    """Token ids read as one-hot vectors ``e_id`` without materialising them."""

    def __init__(self, ids: tf.Tensor, vocab_size: int):
        self.ids = ids
        self.dim = vocab_size

    def project(self, kernel: tf.Tensor) -> tf.Tensor:
        # one_hot(ids) @ W selects row `id` of W: [batch, time, units].
        return tf.gather(kernel, self.ids)

    def project_time_major(self, kernel: tf.Tensor) -> tf.Tensor:
        return tf.gather(kernel, tf.transpose(self.ids))  # transposing the ids is cheapest


class Encoder(Component):
    """Base encoder.

    Args:
        vocab_size: Number of token ids, including the reserved ids 0-2.
        **params: The encoder's declared hyperparameters.
    """

    kind = "encoder"

    def __init__(self, vocab_size: int, **params):
        super().__init__(**params)
        self.vocab_size = int(vocab_size)

    @property
    @abc.abstractmethod
    def output_dim(self) -> int:
        """Size of one encoded step, the cell's input dimension."""

    @abc.abstractmethod
    def __call__(self, ids: tf.Tensor, training: bool = False) -> EncodedSequence:
        """Encodes ``ids`` ``[batch, time]`` (int32)."""

    def adapt(self, train) -> str | None:
        """Learns what the encoder needs from the training split, once, before training (Keras' ``adapt``).

        Training calls it on every new classifier; a loaded run skips it, so
        whatever it learns must live in variables, which checkpoints carry.
        The default learns nothing.

        Args:
            train: The training split (:class:`zoo_core.data.batching.Split`):
                ``ids``, flat int32 ``[tokens]``, and ``offsets``, int64
                ``[reviews + 1]`` (review ``i`` is ``ids[offsets[i]:offsets[i + 1]]``).

        Returns:
            One line for the run's log saying what it learned, or None.
        """
        return None

    def numpy_reference(self, ids: np.ndarray) -> np.ndarray:
        """NumPy reference of :meth:`__call__` at inference (no dropout), from this instance's weights.

        The registry-driven tests check ``self(ids).project(W)`` against
        ``numpy_reference(ids) @ W`` for every registered encoder.

        Args:
            ids: ``[batch, time]`` integer token ids.

        Returns:
            The dense encoded steps ``[batch, time, output_dim]``.

        Raises:
            NotImplementedError: the encoder has none (the tests then fail, naming it).
        """
        raise NotImplementedError(f"encoder {self.name!r} ({type(self).__qualname__}) has no NumPy reference: "
                                  "implement numpy_reference(ids)")


class OneHotEncoder(Encoder):
    """Exact one-hot inputs: ``x_t = e_id``, so the cell's input kernel is ``[vocab, units]``."""

    name = "one-hot"
    description = "exact one-hot tokens, x_t = e_id; the cell's input weight is [V, H] (gathered, never materialised)"

    @property
    def output_dim(self) -> int:
        return self.vocab_size

    def __call__(self, ids, training=False):
        return OneHotSequence(ids, self.vocab_size)

    def numpy_reference(self, ids):
        return np.eye(self.vocab_size, dtype=np.float32)[ids]


def embedding_dropout(values: tf.Tensor, rate: float, word_rate: float) -> tf.Tensor:
    """Training-time dropout of embedded steps ``[batch, time, dim]``.

    Args:
        values: The embedded steps.
        rate: Each value is zeroed with this probability (inverted dropout).
        word_rate: Each step's whole vector is zeroed with this probability, so
            the model cannot lean on any one word (Iyyer et al. 2015's word dropout).
    """
    if word_rate > 0:
        shape = tf.shape(values)
        values = tf.nn.dropout(values, rate=word_rate, noise_shape=[shape[0], shape[1], 1])
    if rate > 0:
        values = tf.nn.dropout(values, rate=rate)
    return values


class EmbeddingEncoder(Encoder):
    """A learned ``[vocab, dim]`` embedding table with optional dropout.

    Subclasses may change what a step's vector is by overriding :meth:`embed`;
    they keep the table, the size and the dropout.
    """

    name = "embedding"
    description = "learned [V, D] embedding table, optional dropout of values and of whole words"
    hparams = (
        HParam("dim", int, 64, "embedding size D", low=1, high=4096, tiny=6),
        HParam("dropout", float, 0.0, "dropout rate on embedded values (training only)", low=0.0, high=0.95),
        HParam("word_dropout", float, 0.0, "rate at which whole embedded words are zeroed (training only)",
               low=0.0, high=0.95),
    )

    def __init__(self, vocab_size: int, **params):
        super().__init__(vocab_size, **params)
        self.table = tf.Variable(
            keras.initializers.RandomUniform(-0.05, 0.05)((self.vocab_size, self.params["dim"])),
            name="embeddings",
        )

    @property
    def output_dim(self) -> int:
        return self.params["dim"]

    def embed(self, ids: tf.Tensor) -> tf.Tensor:
        """Step vectors ``[batch, time, dim]`` for ``ids`` ``[batch, time]``, before dropout."""
        return tf.gather(self.table, ids)

    def __call__(self, ids, training=False):
        values = self.embed(ids)
        if training:
            values = embedding_dropout(values, self.params["dropout"], self.params["word_dropout"])
        return DenseSequence(values)

    def numpy_reference(self, ids):
        return self.table.numpy()[ids]


@hookimpl
def zoo_register_encoders():
    return [OneHotEncoder, EmbeddingEncoder]
