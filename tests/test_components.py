"""Encoders, aggregators and heads against references, and registry-driven smoke tests.

Every registered encoder, cell, aggregator and head, and every named model,
gets a build + forward + backward test, eagerly and under ``tf.function``;
every registered cell x aggregator gets the masking-invariance test. The
lists come from the registry, so a newly registered component is covered
without touching this file.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo_core.config import KINDS, ModelSpec
from zoo_core.encoders import DenseSequence, OneHotSequence
from zoo_core.heads import SigmoidHead, SoftmaxHead
from zoo_core.model import Classifier
from zoo_core.registry import build_registry
from zoo_core.unroll import UnrollResult

VOCAB = 17
BASE = {"encoder": "embedding", "cell": "tanh", "aggregator": "mean-states", "head": "sigmoid1"}
# Tiny sizes keep the whole registry x registry product fast on 2 cores.
SMALL = {"units": 5, "dim": 6, "buckets": 31}


@functools.cache
def _collection_registry():
    return build_registry()


def names(kind: str) -> list[str]:
    """Registered names of ``kind``, read at collection time to parametrize tests."""
    return _collection_registry().list(kind)


def small_params(cls) -> dict:
    """The tiny sizes of :data:`SMALL` that ``cls`` declares."""
    declared = {p.name for p in cls.hparams}
    return {k: v for k, v in SMALL.items() if k in declared}


def build_model(registry, vocab_size: int = VOCAB, **components) -> Classifier:
    """A tiny classifier: :data:`BASE` with ``components`` swapped in."""
    chosen = {**BASE, **components}
    params = {k: small_params(registry.get(k, chosen[k]).obj) for k in KINDS}
    spec = ModelSpec(**chosen, params={k: v for k, v in params.items() if v})
    return Classifier(spec, registry, vocab_size)


def randomize(module: tf.Module, seed: int = 0, scale: float = 0.5) -> None:
    """Random weights everywhere, so zero-initialised parts (biases, the query) matter too."""
    rng = np.random.default_rng(seed)
    for v in module.trainable_variables:
        v.assign(rng.normal(0.0, scale, v.shape).astype(v.dtype.as_numpy_dtype))


def pad(seqs, steps: int, padding: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Pads id sequences to ``steps``: ids ``[batch, steps]`` int32 and mask ``[batch, steps]`` bool."""
    ids = np.zeros((len(seqs), steps), np.int32)
    mask = np.zeros((len(seqs), steps), bool)
    for row, seq in enumerate(seqs):
        span = slice(steps - len(seq), steps) if padding == "pre" else slice(0, len(seq))
        ids[row, span] = seq
        mask[row, span] = True
    return tf.constant(ids), tf.constant(mask)


def random_batch(batch: int = 3, steps: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, steps + 1, batch)
    lengths[0] = steps  # one full row, so the longest case is covered
    seqs = [rng.integers(3, VOCAB, n) for n in lengths]
    ids, mask = pad(seqs, steps, "pre")
    labels = tf.constant(rng.integers(0, 2, batch), tf.int32)
    return ids, mask, labels


def forward_backward(model: Classifier, ids, mask, labels, compiled: bool):
    """Logits, loss and gradients of every trainable variable, eagerly or under tf.function."""

    def step(ids, mask, labels):
        with tf.GradientTape() as tape:
            logits = model(ids, mask, training=True)
            loss = model.loss(labels, logits)
        return logits, loss, tape.gradient(loss, model.trainable_variables)

    return (tf.function(step) if compiled else step)(ids, mask, labels)


def assert_trains(model: Classifier, compiled: bool) -> None:
    ids, mask, labels = random_batch()
    logits, loss, grads = forward_backward(model, ids, mask, labels, compiled)
    assert logits.shape == (3, model.head.num_logits)
    assert np.isfinite(loss.numpy())
    assert model.trainable_variables, "a model without weights cannot learn"
    for var, grad in zip(model.trainable_variables, grads):
        assert grad is not None, f"no gradient reaches {var.name}"
        assert np.all(np.isfinite(tf.convert_to_tensor(grad).numpy())), f"non-finite gradient for {var.name}"


# -- registry-driven smoke tests ------------------------------------------


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("kind,name", [(k, n) for k in KINDS for n in names(k)])
def test_every_component_builds_runs_and_backpropagates(registry, kind, name, compiled):
    model = build_model(registry, **{kind: name})
    assert_trains(model, compiled)


@pytest.mark.parametrize("head", names("head"))
@pytest.mark.parametrize("aggregator", names("aggregator"))
def test_every_aggregator_works_with_every_head(registry, aggregator, head):
    assert_trains(build_model(registry, aggregator=aggregator, head=head), compiled=False)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("model_name", names("model"))
def test_every_named_model_builds_runs_and_backpropagates(registry, model_name, compiled):
    spec = registry.model(model_name)
    missing = [f"{k} {spec.component(k)!r}" for k in KINDS if spec.component(k) not in registry.list(k)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not registered")
    assert_trains(Classifier(spec, registry, VOCAB), compiled)


def assert_padding_invariant(model: Classifier, label: str) -> None:
    """Pre-, post- and no padding give the same logits, eagerly and under tf.function."""
    randomize(model)
    rng = np.random.default_rng(1)
    seqs = [rng.integers(3, VOCAB, n) for n in (5, 2, 7, 1)]
    # No padding: each review alone at its own length, no mask.
    alone = np.concatenate([model(tf.constant(s[None], tf.int32)).numpy() for s in seqs])
    compiled = tf.function(model.__call__)
    for padding in ("pre", "post"):
        ids, mask = pad(seqs, 9, padding)
        for call, how in ((model, "eager"), (compiled, "tf.function")):
            np.testing.assert_allclose(
                call(ids, mask).numpy(), alone, rtol=1e-5, atol=1e-5,
                err_msg=f"{label}, {padding}-padding, {how}",
            )


@pytest.mark.parametrize("aggregator", names("aggregator"))
@pytest.mark.parametrize("cell", names("cell"))
def test_pre_post_and_no_padding_give_the_same_logits(registry, cell, aggregator):
    assert_padding_invariant(build_model(registry, cell=cell, aggregator=aggregator), f"{cell} x {aggregator}")


@pytest.mark.parametrize("encoder", names("encoder"))
def test_every_encoder_gives_the_same_logits_pre_post_and_unpadded(registry, encoder):
    assert_padding_invariant(build_model(registry, encoder=encoder), encoder)


# -- encoders -------------------------------------------------------------


def test_one_hot_projection_matches_dense_one_hot_matmul():
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(size=(VOCAB, 4)), tf.float32)
    ids = tf.constant(rng.integers(0, VOCAB, (3, 5)), tf.int32)
    reference = tf.einsum("btv,vu->btu", tf.one_hot(ids, VOCAB), kernel)
    np.testing.assert_allclose(OneHotSequence(ids, VOCAB).project(kernel).numpy(), reference.numpy(), rtol=1e-6)


@pytest.mark.parametrize("cell", names("cell"))
def test_every_cell_sees_one_hot_inputs_as_dense_one_hot_vectors(registry, cell):
    model = build_model(registry, encoder="one-hot", cell=cell)
    randomize(model.cell)
    ids, mask, _ = random_batch(seed=2)
    sparse = model.cell.unroll(OneHotSequence(ids, VOCAB), mask, keep_outputs=True)
    dense = model.cell.unroll(DenseSequence(tf.one_hot(ids, VOCAB)), mask, keep_outputs=True)
    np.testing.assert_allclose(sparse.outputs.numpy(), dense.outputs.numpy(), rtol=1e-5, atol=1e-6)


def test_one_hot_model_never_materialises_batch_time_vocab(registry):
    vocab, batch, steps = 977, 3, 5
    model = build_model(registry, vocab_size=vocab, encoder="one-hot", cell="tanh", aggregator="last")
    graph = tf.function(model.__call__).get_concrete_function(
        tf.TensorSpec([batch, steps], tf.int32), tf.TensorSpec([batch, steps], tf.bool)
    ).graph
    sizes = [t.shape.num_elements() or 0 for op in graph.get_operations() for t in op.outputs]
    assert max(sizes) < batch * steps * vocab
    assert model.cell.kernel.shape[0] == vocab  # the cell's input weight is [V, H]


def test_embedding_looks_up_rows_and_drops_out_only_in_training(registry):
    encoder = registry.create("encoder", "embedding", VOCAB, dim=8, dropout=0.5)
    ids = tf.constant(np.arange(VOCAB)[None].repeat(40, 0), tf.int32)  # [40, VOCAB]
    table = encoder.table.numpy()
    np.testing.assert_allclose(encoder(ids).values.numpy(), table[ids.numpy()])
    dropped = encoder(ids, training=True).values.numpy()
    kept = dropped != 0
    assert 0.4 < 1 - kept.mean() < 0.6
    # Inverted dropout: kept values are scaled by 1 / (1 - rate).
    np.testing.assert_allclose(dropped[kept], 2 * table[ids.numpy()][kept], rtol=1e-6)


@pytest.mark.parametrize("encoder", ["embedding", "ngram-embedding"])
def test_word_dropout_zeroes_whole_steps_and_only_in_training(registry, encoder):
    enc = registry.create("encoder", encoder, VOCAB, **small_params(registry.get("encoder", encoder).obj),
                          word_dropout=0.5)
    ids = tf.constant(np.random.default_rng(0).integers(3, VOCAB, (50, 20)), tf.int32)
    clean = enc(ids).values.numpy()
    dropped = enc(ids, training=True).values.numpy()
    zeroed = ~dropped.any(axis=-1)  # [50, 20]: steps whose whole vector is zero
    assert 0.4 < zeroed.mean() < 0.6
    kept = ~zeroed
    np.testing.assert_allclose(dropped[kept], 2 * clean[kept], rtol=1e-6)  # scaled by 1 / (1 - rate)
    np.testing.assert_allclose(enc(ids).values.numpy(), clean)  # not in inference


# -- heads ----------------------------------------------------------------


def softplus(x):
    return np.logaddexp(0.0, x)


def test_sigmoid_head_loss_probability_and_inverse():
    head = SigmoidHead(4)
    randomize(head)
    features = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 1, 1, 0, 1, 0], np.int32)
    logits = head(tf.constant(features)).numpy()
    np.testing.assert_allclose(logits, features @ head.kernel.numpy() + head.bias.numpy(), rtol=1e-5)
    z = logits[:, 0]
    expected = np.mean(np.where(labels == 1, softplus(-z), softplus(z)))  # -log sigmoid(z) / -log(1 - sigmoid(z))
    np.testing.assert_allclose(head.loss(tf.constant(labels), tf.constant(logits)).numpy(), expected, rtol=1e-5)
    keras_loss = keras.losses.binary_crossentropy(labels[:, None].astype(np.float32), logits, from_logits=True)
    np.testing.assert_allclose(head.loss(labels, logits).numpy(), np.mean(keras_loss), rtol=1e-5)
    np.testing.assert_allclose(head.prob_positive(logits).numpy(), 1 / (1 + np.exp(-z)), rtol=1e-5)


def test_softmax_head_loss_probability_and_inverse():
    head = SoftmaxHead(4)
    randomize(head)
    features = np.random.default_rng(4).normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 1, 1, 0, 1, 0], np.int32)
    logits = head(tf.constant(features)).numpy()
    assert logits.shape == (6, 2)
    log_probs = logits - np.logaddexp(logits[:, :1], logits[:, 1:])
    expected = -np.mean(log_probs[np.arange(6), labels])
    np.testing.assert_allclose(head.loss(tf.constant(labels), tf.constant(logits)).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(head.prob_positive(logits).numpy(), np.exp(log_probs[:, 1]), rtol=1e-5)


@pytest.mark.parametrize("head_cls", [SigmoidHead, SoftmaxHead])
def test_logits_from_prob_inverts_prob_positive(head_cls):
    head = head_cls(3)
    probs = tf.constant([[0.01, 0.3, 0.5], [0.7, 0.9, 0.999]])  # any leading dims
    logits = head.logits_from_prob(probs)
    assert logits.shape == (2, 3, head.num_logits)
    np.testing.assert_allclose(head.prob_positive(logits).numpy(), probs.numpy(), rtol=1e-4)


def test_every_head_maps_any_leading_dims(registry):
    for name in names("head"):
        head = registry.create("head", name, 4)
        x = np.random.default_rng(5).normal(size=(2, 3, 4)).astype(np.float32)
        np.testing.assert_allclose(
            head(tf.constant(x)).numpy(), x @ head.kernel.numpy() + head.bias.numpy(), rtol=1e-5, atol=1e-6
        )


# -- aggregators against NumPy --------------------------------------------


def np_head(head, features):
    return features @ head.kernel.numpy() + head.bias.numpy()


def np_prob_positive(head, logits):
    if isinstance(head, SigmoidHead):
        return 1 / (1 + np.exp(-logits[..., 0]))
    return np.exp(logits[..., 1] - np.logaddexp(logits[..., 0], logits[..., 1]))


def np_logits_from_prob(head, prob):
    if isinstance(head, SigmoidHead):
        return np.log(prob / (1 - prob))[..., None]
    return np.stack([np.log(1 - prob), np.log(prob)], axis=-1)


def np_aggregate(name: str, aggregator, outputs, mask, last, head):
    """NumPy reference of each built-in aggregator."""
    weights = mask.astype(np.float64)[..., None]  # [batch, time, 1]
    count = weights.sum(1)
    if name == "last":
        return np_head(head, last)
    if name == "mean-states":
        return np_head(head, (outputs * weights).sum(1) / count)
    if name == "mean-logits":
        return (np_head(head, outputs) * weights).sum(1) / count
    if name == "max-states":
        return np_head(head, np.where(mask[..., None], outputs, -np.inf).max(1))
    if name == "mean-probs":
        probs = np_prob_positive(head, np_head(head, outputs))
        return np_logits_from_prob(head, (probs * mask).sum(1) / mask.sum(1))
    if name == "attention":
        scores = outputs @ aggregator.query.numpy() / np.sqrt(outputs.shape[-1])
        scores = np.where(mask, scores, -np.inf)
        attn = np.exp(scores - scores.max(1, keepdims=True))
        attn /= attn.sum(1, keepdims=True)
        return np_head(head, (attn[..., None] * outputs).sum(1))
    raise AssertionError(f"no reference for {name}")


@pytest.mark.parametrize("head_cls", [SigmoidHead, SoftmaxHead])
@pytest.mark.parametrize("aggregator_cls", [_collection_registry().get("aggregator", n).obj for n in names("aggregator")],
                         ids=lambda c: c.name)
def test_builtin_aggregators_match_numpy(aggregator_cls, head_cls):
    rng = np.random.default_rng(6)
    batch, steps, units = 4, 6, 5
    outputs = rng.normal(size=(batch, steps, units)).astype(np.float32)
    lengths = np.array([6, 3, 1, 4])
    mask = np.arange(steps)[None] >= steps - lengths[:, None]  # pre-padding
    last = outputs[:, -1]
    head = head_cls(units)
    aggregator = aggregator_cls(units)
    randomize(head, seed=7)
    randomize(aggregator, seed=8)
    result = UnrollResult(outputs=tf.constant(outputs), last_output=tf.constant(last), final_state=tf.constant(last))
    for m in (mask, np.ones_like(mask)):
        got = aggregator(result, tf.constant(m), head).numpy()
        np.testing.assert_allclose(got, np_aggregate(aggregator_cls.name, aggregator, outputs, m, last, head),
                                   rtol=1e-4, atol=1e-5)
    got_unmasked = aggregator(result, None, head).numpy()
    np.testing.assert_allclose(got_unmasked, aggregator(result, tf.constant(np.ones_like(mask)), head).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("aggregator", ["max-states", "attention", "mean-states", "mean-probs"])
def test_pooling_aggregators_stay_finite_on_an_all_padding_row(registry, aggregator):
    agg = registry.create("aggregator", aggregator, 3)
    head = SigmoidHead(3)
    outputs = tf.constant(np.random.default_rng(9).normal(size=(2, 4, 3)), tf.float32)
    mask = tf.constant([[False] * 4, [True] * 4])
    logits = agg(UnrollResult(outputs, outputs[:, -1], outputs[:, -1]), mask, head)
    assert np.all(np.isfinite(logits.numpy()))
