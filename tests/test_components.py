"""Encoders, aggregators and heads against their NumPy references, and registry-driven smoke tests.

Every registered encoder, cell, aggregator and head, and every named model,
gets a build + forward + backward test, eagerly and under ``tf.function``;
every registered cell x aggregator gets the masking-invariance test; every
registered encoder, aggregator (with every head) and head is checked against
the NumPy reference it carries. The lists come from the registry, so a newly
registered component, a plugin's too, is covered without touching this file.
Components are built at their hyperparameters' ``tiny`` sizes, which keeps the
whole registry x registry product fast on 2 cores.
"""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.registered import registered, tiny_params
from zoo_core.config import KINDS, ModelSpec
from zoo_core.encoders import DenseSequence, OneHotSequence
from zoo_core.heads import SigmoidHead
from zoo_core.model import Classifier
from zoo_core.unroll import UnrollResult

VOCAB = 17
BASE = {"encoder": "embedding", "cell": "tanh", "aggregator": "mean-states", "head": "sigmoid1"}


def adapted(encoder):
    """``encoder`` after :meth:`adapt` on random training reviews, as training adapts every new classifier's.

    The reviews use ids 3..VOCAB-1 as the tests' batches do, so an encoder
    learning from them (an n-gram vocabulary at its tiny size) knows some of
    the batches' n-grams and not others.
    """
    rng = np.random.default_rng(99)
    reviews = [rng.integers(3, encoder.vocab_size, n) for n in rng.integers(1, 9, 60)]
    encoder.adapt(SimpleNamespace(ids=np.concatenate(reviews).astype(np.int32),
                                  offsets=np.cumsum([0] + [len(r) for r in reviews])))
    return encoder


def create(registry, kind: str, name: str, *args, **params):
    """Component ``name`` of ``kind`` at its tiny sizes, ``params`` over them; encoders adapted."""
    component = registry.create(kind, name, *args, **{**tiny_params(registry.get(kind, name).obj), **params})
    return adapted(component) if kind == "encoder" else component


def adapted_classifier(spec: ModelSpec, registry, vocab_size: int = VOCAB) -> Classifier:
    """The classifier of ``spec``, its encoder adapted as training would."""
    model = Classifier(spec, registry, vocab_size)
    adapted(model.encoder)
    return model


def build_model(registry, vocab_size: int = VOCAB, **components) -> Classifier:
    """A tiny classifier: :data:`BASE` with ``components`` swapped in, its encoder adapted."""
    chosen = {**BASE, **components}
    params = {k: tiny_params(registry.get(k, chosen[k]).obj) for k in KINDS}
    spec = ModelSpec(**chosen, params={k: v for k, v in params.items() if v})
    return adapted_classifier(spec, registry, vocab_size)


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
@pytest.mark.parametrize("kind,name", [(k, n) for k in KINDS for n in registered(k)])
def test_every_component_builds_runs_and_backpropagates(registry, kind, name, compiled):
    model = build_model(registry, **{kind: name})
    assert_trains(model, compiled)


@pytest.mark.parametrize("head", registered("head"))
@pytest.mark.parametrize("aggregator", registered("aggregator"))
def test_every_aggregator_works_with_every_head(registry, aggregator, head):
    assert_trains(build_model(registry, aggregator=aggregator, head=head), compiled=False)


@pytest.mark.parametrize("model_name", registered("model"))
def test_every_named_model_builds_runs_and_backpropagates(registry, model_name):
    # Under tf.function only, as training runs it: each component runs eagerly in the test above.
    spec = registry.model(model_name)
    missing = [f"{k} {spec.component(k)!r}" for k in KINDS if spec.component(k) not in registry.list(k)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not registered")
    assert_trains(adapted_classifier(spec, registry), compiled=True)


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


def padding_cases() -> list[tuple[str, str]]:
    """Every cell with the aggregator of its last state and the one of all its outputs (mean and max), and
    every aggregator with a gated cell and with the bidirectional wrapper, whose backward pass must skip the
    padding at either end: each cell's masking and each aggregator's, without all 13 x 7 pairs."""
    cells, aggregators = registered("cell"), registered("aggregator")
    pairs = {(c, a) for c in cells for a in ("last", "mean-max-states") if a in aggregators}
    pairs |= {(c, a) for c in ("gru", "bidirectional") if c in cells for a in aggregators}
    return sorted(pairs)


@pytest.mark.parametrize("cell, aggregator", padding_cases())
def test_pre_post_and_no_padding_give_the_same_logits(registry, cell, aggregator):
    assert_padding_invariant(build_model(registry, cell=cell, aggregator=aggregator), f"{cell} x {aggregator}")


@pytest.mark.parametrize("encoder", registered("encoder"))
def test_every_encoder_gives_the_same_logits_pre_post_and_unpadded(registry, encoder):
    assert_padding_invariant(build_model(registry, encoder=encoder), encoder)


# -- encoders -------------------------------------------------------------


def test_one_hot_projection_matches_dense_one_hot_matmul():
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(size=(VOCAB, 4)), tf.float32)
    ids = tf.constant(rng.integers(0, VOCAB, (3, 5)), tf.int32)
    reference = tf.einsum("btv,vu->btu", tf.one_hot(ids, VOCAB), kernel)
    np.testing.assert_allclose(OneHotSequence(ids, VOCAB).project(kernel).numpy(), reference.numpy(), rtol=1e-6)


@pytest.mark.parametrize("cell", registered("cell"))
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
    enc = create(registry, "encoder", encoder, VOCAB, word_dropout=0.5)
    ids = tf.constant(np.random.default_rng(0).integers(3, VOCAB, (50, 20)), tf.int32)
    clean = enc(ids).values.numpy()
    dropped = enc(ids, training=True).values.numpy()
    zeroed = ~dropped.any(axis=-1)  # [50, 20]: steps whose whole vector is zero
    assert 0.4 < zeroed.mean() < 0.6
    kept = ~zeroed
    np.testing.assert_allclose(dropped[kept], 2 * clean[kept], rtol=1e-6)  # scaled by 1 / (1 - rate)
    np.testing.assert_allclose(enc(ids).values.numpy(), clean)  # not in inference


# -- every component against its NumPy reference ---------------------------


def reference_of(method, *args):
    """``method(*args)``; a component without a NumPy reference fails with its own message."""
    try:
        return method(*args)
    except NotImplementedError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.mark.parametrize("encoder", registered("encoder"))
def test_every_encoder_matches_its_numpy_reference(registry, encoder):
    enc = create(registry, "encoder", encoder, VOCAB)
    randomize(enc, seed=10)
    rng = np.random.default_rng(11)
    ids = rng.integers(0, VOCAB, (3, 7)).astype(np.int32)
    kernel = rng.normal(size=(enc.output_dim, 4)).astype(np.float32)
    want = reference_of(enc.numpy_reference, ids)
    assert want.shape == (3, 7, enc.output_dim)
    # What a cell sees of the encoding is its projection, whatever EncodedSequence carries it.
    got = enc(tf.constant(ids)).project(tf.constant(kernel)).numpy()
    np.testing.assert_allclose(got, want @ kernel, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head", registered("head"))
def test_every_head_matches_its_numpy_reference(registry, head):
    h = create(registry, "head", head, 4)
    randomize(h, seed=12)
    rng = np.random.default_rng(13)
    features = rng.normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 1, 1, 0, 1, 0], np.int32)
    logits = h(tf.constant(features)).numpy()
    assert logits.shape == (6, h.num_logits)
    np.testing.assert_allclose(logits, reference_of(h.numpy_logits, features), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.loss(tf.constant(labels), tf.constant(logits)).numpy(),
                               reference_of(h.numpy_loss, labels, logits), rtol=1e-5)
    np.testing.assert_allclose(h.prob_positive(tf.constant(logits)).numpy(),
                               reference_of(h.numpy_prob_positive, logits), rtol=1e-5)
    probs = np.array([[0.01, 0.3, 0.5], [0.7, 0.9, 0.999]], np.float32)  # any leading dims
    np.testing.assert_allclose(h.logits_from_prob(tf.constant(probs)).numpy(),
                               reference_of(h.numpy_logits_from_prob, probs), rtol=1e-4, atol=1e-5)
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)  # any leading dims
    np.testing.assert_allclose(h(tf.constant(x)).numpy(), reference_of(h.numpy_logits, x), rtol=1e-5, atol=1e-6)


def test_a_component_without_a_numpy_reference_says_what_to_implement():
    from zoo_core.aggregators import Aggregator
    from zoo_core.encoders import Encoder
    from zoo_core.heads import Head

    class PlainLast(Aggregator):
        name = "plain-last"

        def __call__(self, result, mask, head, training=False):
            return head(result.last_output)

    class Ids(Encoder):
        name = "ids"
        output_dim = 1

        def __call__(self, ids, training=False):
            return DenseSequence(tf.cast(ids, tf.float32)[..., None])

    class Half(Head):
        name = "half"
        num_logits = 1
        loss = prob_positive = logits_from_prob = lambda self, *args: None

    x = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(NotImplementedError, match=r"^aggregator 'plain-last' \(.*PlainLast\) has no NumPy reference: "
                                                  r"implement numpy_reference\(outputs, last_output, mask, head\)$"):
        PlainLast(3).numpy_reference(x, x[:, -1], np.ones((1, 2), bool), Half(3))
    with pytest.raises(NotImplementedError, match=r"^encoder 'ids' .* implement numpy_reference\(ids\)$"):
        Ids(5).numpy_reference(np.zeros((1, 2), np.int32))
    head = Half(3)
    np.testing.assert_allclose(head.numpy_logits(x), x @ head.kernel.numpy() + head.bias.numpy())  # the base's
    for method, args, signature in [
        (head.numpy_loss, (np.zeros(1, np.int32), x[0, :, :1]), r"numpy_loss\(labels, logits\)"),
        (head.numpy_prob_positive, (x,), r"numpy_prob_positive\(logits\)"),
        (head.numpy_logits_from_prob, (x,), r"numpy_logits_from_prob\(prob\)"),
    ]:
        with pytest.raises(NotImplementedError, match=rf"^head 'half' .* no NumPy reference: implement {signature}$"):
            method(*args)


@pytest.mark.parametrize("head", registered("head"))
def test_logits_from_prob_inverts_prob_positive(registry, head):
    h = create(registry, "head", head, 3)
    probs = tf.constant([[0.01, 0.3, 0.5], [0.7, 0.9, 0.999]])  # any leading dims
    logits = h.logits_from_prob(probs)
    assert logits.shape == (2, 3, h.num_logits)
    np.testing.assert_allclose(h.prob_positive(logits).numpy(), probs.numpy(), rtol=1e-4)


@pytest.mark.parametrize("head, keras_loss", [
    ("sigmoid1", lambda labels, logits: keras.losses.binary_crossentropy(
        labels[:, None].astype(np.float32), logits, from_logits=True)),
    ("softmax2", lambda labels, logits: keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)),
])
def test_builtin_head_loss_references_agree_with_keras(registry, head, keras_loss):
    h = registry.create("head", head, 4)
    rng = np.random.default_rng(14)
    logits = rng.normal(size=(6, h.num_logits)).astype(np.float32)
    labels = np.array([0, 1, 1, 0, 1, 0], np.int32)
    np.testing.assert_allclose(h.numpy_loss(labels, logits), np.mean(keras_loss(labels, logits)), rtol=1e-5)


@pytest.mark.parametrize("head", registered("head"))
@pytest.mark.parametrize("aggregator", registered("aggregator"))
def test_every_aggregator_matches_its_numpy_reference(registry, aggregator, head):
    rng = np.random.default_rng(6)
    batch, steps, units = 4, 6, 5
    outputs = rng.normal(size=(batch, steps, units)).astype(np.float32)
    lengths = np.array([6, 3, 1, 4])
    mask = np.arange(steps)[None] >= steps - lengths[:, None]  # pre-padding
    last = outputs[:, -1]
    agg = create(registry, "aggregator", aggregator, units)
    h = create(registry, "head", head, agg.head_input_dim(units))
    randomize(h, seed=7)
    randomize(agg, seed=8)
    result = UnrollResult(outputs=tf.constant(outputs), last_output=tf.constant(last), final_state=tf.constant(last))
    for m in (mask, np.ones_like(mask)):
        want = reference_of(agg.numpy_reference, outputs, last, m, h)
        np.testing.assert_allclose(agg(result, tf.constant(m), h).numpy(), want, rtol=1e-4, atol=1e-5)
    got_unmasked = agg(result, None, h).numpy()
    np.testing.assert_allclose(got_unmasked, agg(result, tf.constant(np.ones_like(mask)), h).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("aggregator", ["mean-states", "max-states", "mean-max-states"])
def test_pooling_aggregators_drop_pooled_features_only_in_training(registry, aggregator):
    agg = create(registry, "aggregator", aggregator, 8, dropout=0.5)
    outputs = tf.constant(np.random.default_rng(3).uniform(0.5, 1.5, size=(60, 4, 8)), tf.float32)
    result, mask = UnrollResult(outputs, outputs[:, -1], outputs[:, -1]), tf.ones([60, 4], tf.bool)
    pooled_features = lambda features: features  # a "head" that hands back what it is given  # noqa: E731
    clean = agg(result, mask, pooled_features).numpy()
    dropped = agg(result, mask, pooled_features, training=True).numpy()
    kept = dropped != 0
    assert 0.4 < 1 - kept.mean() < 0.6
    np.testing.assert_allclose(dropped[kept], 2 * clean[kept], rtol=1e-6)  # scaled by 1 / (1 - rate)
    np.testing.assert_allclose(agg(result, mask, pooled_features).numpy(), clean)  # not in inference


@pytest.mark.parametrize("aggregator", ["max-states", "mean-max-states", "attention", "mean-states", "mean-probs"])
def test_pooling_aggregators_stay_finite_on_an_all_padding_row(registry, aggregator):
    agg = registry.create("aggregator", aggregator, 3)
    head = SigmoidHead(agg.head_input_dim(3))
    outputs = tf.constant(np.random.default_rng(9).normal(size=(2, 4, 3)), tf.float32)
    mask = tf.constant([[False] * 4, [True] * 4])
    logits = agg(UnrollResult(outputs, outputs[:, -1], outputs[:, -1]), mask, head)
    assert np.all(np.isfinite(logits.numpy()))
