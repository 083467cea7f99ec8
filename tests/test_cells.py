"""Every registered cell against references, driven by the registry.

A newly registered cell gets the NumPy-reference, finite-difference gradient,
eager/``tf.function``/XLA and masking-invariance tests automatically. Sizes are
tiny (batch 3, time 6, input 4, units 3) so the whole module stays fast.
"""

from __future__ import annotations


import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.registered import collection_registry, registered
from zoo_core.cells import FusedBPTTCell, StackedCell, make_initializer
from zoo_core.encoders import DenseSequence, EncodedSequence, OneHotSequence
from zoo_core.errors import ZooError

BATCH, TIME, INPUT_DIM, UNITS = 3, 6, 4, 3
# Row 0 pre-padded, row 1 post-padded, row 2 full length.
MASK = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)


def fused_cell_names(registry) -> list[str]:
    """The registered cells with a hand-written BPTT kernel."""
    return [n for n in registry.list("cell") if issubclass(registry.get("cell", n).obj, FusedBPTTCell)]


def pytest_generate_tests(metafunc):
    """Every test taking ``cell_name`` runs once per registered cell."""
    if "cell_name" in metafunc.fixturenames:
        metafunc.parametrize("cell_name", registered("cell"))
    if "fused_cell_name" in metafunc.fixturenames:
        metafunc.parametrize("fused_cell_name", fused_cell_names(collection_registry()))


def make_cell(registry, name, dtype=tf.float64, seed=0, input_dim=INPUT_DIM, **params):
    """Builds cell ``name`` at tiny size with every variable randomised (biases and gains too)."""
    cls = registry.get("cell", name).obj
    if "units" in {p.name for p in cls.hparams}:
        params.setdefault("units", UNITS)
    cell = registry.create("cell", name, input_dim, dtype=dtype, **params)  # wrappers find inner cells through it
    rng = np.random.default_rng(seed)
    for variable in cell.trainable_variables:
        variable.assign(rng.normal(scale=0.5, size=variable.shape))
    return cell


def random_inputs(dtype=np.float64, seed=1, batch=BATCH, time=TIME):
    return np.random.default_rng(seed).normal(size=(batch, time, INPUT_DIM)).astype(dtype)


def flat(structure):
    return [np.asarray(x) for x in tf.nest.flatten(structure)]


def unroll_loss(cell, inputs, mask, probe=None, reverse=False):
    """A scalar touching every output and every part of the final state, with fixed random weights."""
    result = cell.unroll(DenseSequence(inputs), mask, keep_outputs=True, reverse=reverse, probe=probe)
    parts = [result.outputs, result.last_output] + tf.nest.flatten(result.final_state)
    return sum(tf.reduce_sum(part * fixed_weights(part, offset)) for offset, part in enumerate(parts))


def fixed_weights(like, offset):
    """Deterministic pseudo-random weights shaped like ``like`` (also under XLA, also for unknown shapes)."""
    index = tf.cast(tf.reshape(tf.range(tf.size(like)), tf.shape(like)), like.dtype)
    return tf.sin(index * 2.3 + float(offset))


# -- forward: NumPy reference -------------------------------------------------
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_matches_numpy_reference(registry, cell_name, reverse):
    cell = make_cell(registry, cell_name)
    inputs = random_inputs()
    try:
        want_outputs, want_state = cell.reference_unroll(inputs, MASK, reverse=reverse)
    except NotImplementedError as err:
        pytest.fail(f"cell {cell_name!r} has no NumPy reference: {err}")
    result = cell.unroll(DenseSequence(tf.constant(inputs)), tf.constant(MASK), keep_outputs=True, reverse=reverse)
    np.testing.assert_allclose(result.outputs, want_outputs, atol=1e-10, err_msg="per-step outputs")
    for got, want in zip(flat(result.final_state), flat(want_state), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-10, err_msg="final state")


@pytest.mark.parametrize("wrapper", ["stacked", "bidirectional"])
@pytest.mark.parametrize("inner", ["tanh", "lstm", "indrnn"])
def test_wrappers_match_numpy_reference_for_other_inner_cells(registry, wrapper, inner):
    cell = make_cell(registry, wrapper, cell=inner)
    inputs = random_inputs()
    want_outputs, want_state = cell.reference_unroll(inputs, MASK)
    result = cell.unroll(DenseSequence(tf.constant(inputs)), tf.constant(MASK), keep_outputs=True)
    np.testing.assert_allclose(result.outputs, want_outputs, atol=1e-10)
    for got, want in zip(flat(result.final_state), flat(want_state), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-10)


def test_single_step_call_matches_numpy_step(registry):
    for name in ("tanh", "gru", "lstm", "janet"):
        cell = make_cell(registry, name)
        x_t = random_inputs()[:, 0]
        state = tf.nest.map_structure(lambda s: s + 0.3, cell.initial_state(BATCH))
        output, new_state = cell(tf.constant(x_t), state)
        np_state = tf.nest.map_structure(lambda s: s.numpy(), state)
        want_output, want_state = cell.numpy_step(cell.numpy_weights(), x_t, np_state)
        np.testing.assert_allclose(output, want_output, atol=1e-12, err_msg=name)
        for got, want in zip(flat(new_state), flat(want_state), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-12, err_msg=name)


# -- masking ------------------------------------------------------------------
def test_masking_invariance(registry, cell_name):
    """Pre-padding, post-padding and no padding give the same final state and last output.

    The padded steps hold random inputs, so the test fails if masking relied on zero inputs.
    """
    cell = make_cell(registry, cell_name)
    real, pad = 5, 3
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(BATCH, real, INPUT_DIM))
    filler = rng.normal(size=(BATCH, pad, INPUT_DIM))
    ones, zeros = np.ones((BATCH, real), bool), np.zeros((BATCH, pad), bool)
    variants = {
        "none": (inputs, None),
        "pre": (np.concatenate([filler, inputs], 1), np.concatenate([zeros, ones], 1)),
        "post": (np.concatenate([inputs, filler], 1), np.concatenate([ones, zeros], 1)),
    }
    results = {k: cell.unroll(DenseSequence(tf.constant(x)), None if m is None else tf.constant(m), True)
               for k, (x, m) in variants.items()}
    base = results["none"]
    for padding in ("pre", "post"):
        got = results[padding]
        for a, b in zip(flat(got.final_state), flat(base.final_state), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-12, err_msg=f"{padding}-padding final state")
        np.testing.assert_allclose(got.last_output, base.last_output, atol=1e-12, err_msg=f"{padding} last output")
        real_steps = got.outputs.numpy()[variants[padding][1]].reshape(BATCH, real, -1)
        np.testing.assert_allclose(real_steps, base.outputs, atol=1e-12, err_msg=f"{padding} outputs at real steps")


def test_dropping_outputs_keeps_last_output_and_state(registry, cell_name):
    cell = make_cell(registry, cell_name)
    inputs, mask = DenseSequence(tf.constant(random_inputs())), tf.constant(MASK)
    kept = cell.unroll(inputs, mask, keep_outputs=True)
    dropped = cell.unroll(inputs, mask, keep_outputs=False)
    assert dropped.outputs is None
    np.testing.assert_allclose(dropped.last_output, kept.last_output, atol=1e-12)
    for a, b in zip(flat(dropped.final_state), flat(kept.final_state), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("name", ["tanh", "gru", "mgu"])
def test_one_hot_and_custom_encodings_match_dense(registry, name):
    """The time-major projection's shortcuts (one-hot gather, dense matmul) and its generic fallback agree."""
    vocab = 7
    ids = tf.constant(np.random.default_rng(4).integers(0, vocab, size=(BATCH, TIME)), tf.int32)
    cell = make_cell(registry, name, input_dim=vocab)
    dense = cell.unroll(DenseSequence(tf.one_hot(ids, vocab, dtype=tf.float64)), tf.constant(MASK), True)
    one_hot = cell.unroll(OneHotSequence(ids, vocab), tf.constant(MASK), True)

    class PlainOneHot(EncodedSequence):  # only the abstract interface
        dim = vocab

        def project(self, kernel):
            return tf.gather(kernel, ids)

    generic = cell.unroll(PlainOneHot(), tf.constant(MASK), True)
    for result in (one_hot, generic):
        np.testing.assert_allclose(result.outputs, dense.outputs, atol=1e-12)


# -- gradients ----------------------------------------------------------------
def test_gradients_match_finite_differences(registry, cell_name):
    """Eager and tf.function gradients against central differences along a random direction (float64).

    Checked for the inputs and every variable (through the cell's default path, e.g. its
    hand-written BPTT) and for the probe, under a mask with pre- and post-padded rows.
    """
    cell = make_cell(registry, cell_name)
    inputs = tf.Variable(random_inputs())
    probe = tf.Variable(tf.zeros([BATCH, TIME, cell.output_size], tf.float64))
    mask = tf.constant(MASK)
    checks = [(inputs, False), (probe, True)] + [(v, False) for v in cell.trainable_variables]

    def loss_and_grads():
        with tf.GradientTape(persistent=True) as tape:
            plain = unroll_loss(cell, inputs, mask)
            probed = unroll_loss(cell, inputs, mask, probe=probe)
        # Two backward passes in all; the second also checks a persistent tape can reuse the forward.
        grads = tape.gradient(plain, [target for target, use_probe in checks if not use_probe])
        grads.insert(1, tape.gradient(probed, probe))
        return plain, probed, grads

    losses = tf.function(lambda: (unroll_loss(cell, inputs, mask), unroll_loss(cell, inputs, mask, probe=probe)))
    rng = np.random.default_rng(11)
    eps = 1e-6
    for mode, (_, _, grads) in {"eager": loss_and_grads(), "tf.function": tf.function(loss_and_grads)()}.items():
        for (target, use_probe), grad in zip(checks, grads, strict=True):
            assert grad is not None, f"{mode}: no gradient for {target.name}"
            direction = rng.normal(size=target.shape)
            start = target.numpy()
            target.assign(start + eps * direction)
            up = float(losses()[1 if use_probe else 0])
            target.assign(start - eps * direction)
            down = float(losses()[1 if use_probe else 0])
            target.assign(start)
            numeric = (up - down) / (2 * eps)
            analytic = float(tf.reduce_sum(tf.convert_to_tensor(grad) * direction))
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-7), f"{mode}: {target.name}"


def test_probe_gradient_is_zero_at_padded_steps(registry, cell_name):
    cell = make_cell(registry, cell_name)
    probe = tf.zeros([BATCH, TIME, cell.output_size], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(probe)
        loss = unroll_loss(cell, tf.constant(random_inputs()), tf.constant(MASK), probe=probe)
    grad = tape.gradient(loss, probe).numpy()
    assert np.all(grad[~MASK] == 0)
    assert np.all(np.abs(grad[MASK]).sum(-1) > 0)


def test_the_built_in_fused_kernels_are_registered(registry):
    assert {"tanh", "irnn", "gru", "lstm"} <= set(fused_cell_names(registry))
    for name in fused_cell_names(registry):
        assert "bptt" in {p.name for p in registry.get("cell", name).obj.hparams}, name


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_fused_bptt_equals_autodiff(registry, fused_cell_name, masked, reverse):
    name = fused_cell_name
    inputs = tf.constant(random_inputs())
    mask = tf.constant(MASK) if masked else None
    grads = {}
    for bptt in ("fused", "autodiff"):
        cell = make_cell(registry, name, bptt=bptt)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = unroll_loss(cell, inputs, mask, reverse=reverse)
        grads[bptt] = tape.gradient(loss, [inputs] + list(cell.trainable_variables))
    for fused, auto in zip(grads["fused"], grads["autodiff"], strict=True):
        np.testing.assert_allclose(fused, auto, rtol=1e-10, atol=1e-12)


def test_fused_forward_serves_two_gradients(registry, fused_cell_name):
    """A persistent tape runs the hand-written backward twice over one forward (the saved steps survive)."""
    cell = make_cell(registry, fused_cell_name)
    inputs = tf.constant(random_inputs())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        loss = unroll_loss(cell, inputs, tf.constant(MASK))
    first = tape.gradient(loss, inputs)
    np.testing.assert_array_equal(tape.gradient(loss, inputs), first)


def test_eager_matches_xla(registry, cell_name):
    """Outputs and gradients agree eagerly and compiled with XLA (float32); tf.function is checked above."""
    cell = make_cell(registry, cell_name, dtype=tf.float32)
    inputs = tf.constant(random_inputs(np.float32))
    mask = tf.constant(MASK)

    def forward_backward(inputs, mask):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = unroll_loss(cell, inputs, mask)
        return [loss] + tape.gradient(loss, [inputs] + list(cell.trainable_variables))

    eager = forward_backward(inputs, mask)
    # As the training step compiles it: batch and time unknown until called.
    signature = [tf.TensorSpec([None, None, INPUT_DIM], tf.float32), tf.TensorSpec([None, None], tf.bool)]
    for got, want in zip(tf.function(forward_backward, jit_compile=True, input_signature=signature)(inputs, mask),
                         eager, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, params", [("identity", {}), ("mgu", {}), ("tanh", {"bptt": "autodiff"}),
                                           ("skip", {"cell": "gru"})])
def test_xla_differentiates_an_unroll_that_keeps_no_outputs(registry, name, params):
    """The ``last`` aggregator's unroll (no per-step outputs) under XLA: the same gradients as eagerly."""
    cell = make_cell(registry, name, dtype=tf.float32, **params)
    inputs = tf.constant(random_inputs(np.float32))

    def forward_backward(inputs, mask):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            last = cell.unroll(DenseSequence(inputs), mask, keep_outputs=False).last_output
            loss = tf.reduce_sum(last * fixed_weights(last, 0))
        return tape.gradient(loss, [inputs] + list(cell.trainable_variables))

    eager = forward_backward(inputs, tf.constant(MASK))
    # As the training step compiles it: batch and time unknown until called.
    signature = [tf.TensorSpec([None, None, INPUT_DIM], tf.float32), tf.TensorSpec([None, None], tf.bool)]
    compiled = tf.function(forward_backward, jit_compile=True, input_signature=signature)(inputs,
                                                                                         tf.constant(MASK))
    for got, want in zip(compiled, eager, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# -- Keras references ----------------------------------------------------------
KERAS_LAYERS = {"tanh": keras.layers.SimpleRNN, "gru": keras.layers.GRU, "lstm": keras.layers.LSTM}


@pytest.mark.parametrize("name", sorted(KERAS_LAYERS))
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_matches_keras_layer(registry, name, padding):
    """Same weights as keras.layers.SimpleRNN/GRU/LSTM: same states, outputs and gradients (float32)."""
    units, batch, time = 5, 4, 7
    lengths = np.array([7, 5, 3, 1])
    steps = np.arange(time)[None, :]
    mask = steps >= time - lengths[:, None] if padding == "pre" else steps < lengths[:, None]
    inputs = tf.constant(np.random.default_rng(5).normal(size=(batch, time, INPUT_DIM)).astype(np.float32))
    layer = KERAS_LAYERS[name](units, return_sequences=True, return_state=True)
    layer(inputs)  # builds random weights
    cell = registry.create("cell", name, INPUT_DIM, units=units)
    cell.load_keras_weights(layer.get_weights())
    np.testing.assert_array_equal(cell.keras_weights()[-1], layer.get_weights()[-1])
    weights = tf.constant(np.random.default_rng(6).normal(size=(batch, time, units)).astype(np.float32) * mask[..., None])

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        keras_outputs, *keras_state = layer(inputs, mask=tf.constant(mask))
        result = cell.unroll(DenseSequence(inputs), tf.constant(mask), keep_outputs=True)
        # Only real steps count: Keras leaves its own values at padded steps.
        keras_loss = tf.reduce_sum(keras_outputs * weights) + tf.reduce_sum(keras_state[-1])
        zoo_loss = tf.reduce_sum(result.outputs * weights) + tf.reduce_sum(tf.nest.flatten(result.final_state)[-1])
    np.testing.assert_allclose(result.outputs.numpy()[mask], keras_outputs.numpy()[mask], atol=1e-5)
    for got, want in zip(flat(result.final_state), keras_state, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    keras_grads = tape.gradient(keras_loss, [inputs] + layer.trainable_variables)
    zoo_grads = tape.gradient(zoo_loss, [inputs, cell.kernel, cell.recurrent_kernel])
    np.testing.assert_allclose(zoo_grads[0].numpy()[mask], keras_grads[0].numpy()[mask], atol=1e-4)
    np.testing.assert_allclose(zoo_grads[1], keras_grads[1], atol=1e-4)
    np.testing.assert_allclose(zoo_grads[2], keras_grads[2], atol=1e-4)


# -- construction ---------------------------------------------------------------
def test_initializers():
    np.testing.assert_array_equal(make_initializer("identity")((3, 6)), np.tile(np.eye(3), [1, 2]))
    orthogonal = make_initializer("orthogonal", seed=1)((4, 4)).numpy()
    np.testing.assert_allclose(orthogonal @ orthogonal.T, np.eye(4), atol=1e-5)
    with pytest.raises(ValueError, match="unknown initializer"):
        make_initializer("zeros")


def test_cell_specific_initial_values(registry):
    assert np.array_equal(registry.create("cell", "irnn", 4, units=3).recurrent_kernel.numpy(), np.eye(3))
    lstm_bias = registry.create("cell", "lstm", 4, units=3).bias.numpy()
    np.testing.assert_array_equal(lstm_bias, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    tanh = registry.create("cell", "tanh", 4, units=3, recurrent_init="identity")
    np.testing.assert_array_equal(tanh.recurrent_kernel.numpy(), np.eye(3))
    janet_forget = registry.create("cell", "janet", 4, units=50, t_max=20.0).bias.numpy()[:50]
    assert np.all((janet_forget >= 0) & (janet_forget <= np.log(19.0))) and janet_forget.std() > 0


def test_every_named_cell_class_of_the_package_is_registered(registry):
    """A cell left out of its module's ``zoo_register_cells`` fails here instead of silently not existing."""
    import importlib
    import inspect
    import pkgutil

    import zoo_core.cells as package

    defined = set()
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        defined |= {cls for _, cls in inspect.getmembers(module, inspect.isclass)
                    if issubclass(cls, package.Cell) and cls.__module__ == module.__name__ and cls.name}
    registered = {registry.get("cell", name).obj for name in registry.list("cell")}
    assert len(defined) >= 12
    assert not defined - registered, f"not registered: {sorted(c.__name__ for c in defined - registered)}"


def test_wrappers_build_their_inner_cells(registry):
    stacked = registry.create("cell", "stacked", 4, layers=3, cell="lstm", units=5, recurrent_init="identity")
    assert [layer.name for layer in stacked.layers] == ["lstm"] * 3
    assert [layer.input_dim for layer in stacked.layers] == [4, 5, 5]
    np.testing.assert_array_equal(stacked.layers[1].recurrent_kernel.numpy()[:, :5], np.eye(5))
    bidirectional = registry.create("cell", "bidirectional", 4, cell="gru", units=5)
    assert bidirectional.output_size == 10
    assert len(bidirectional.trainable_variables) == 2 * len(registry.create("cell", "gru", 4).trainable_variables)
    # With a registry the inner cell may come from any plugin.
    assert StackedCell(4, registry=registry, cell="ugrnn", units=2).layers[0].name == "ugrnn"


@pytest.mark.parametrize("params, message", [
    ({"cell": "grux"}, "unknown cell 'grux'; did you mean 'gru'"),
    ({"cell": "stacked"}, "must be a step cell"),
    ({"cell": "indrnn", "recurrent_init": "identity"}, "has no parameter 'recurrent_init'"),
])
def test_wrapper_errors_are_one_line(registry, params, message):
    with pytest.raises(ZooError, match=message):
        registry.create("cell", "bidirectional", 4, **params)


def test_bidirectional_last_output_is_forward_final_and_backward_first(registry):
    cell = make_cell(registry, "bidirectional", cell="tanh")
    inputs = tf.constant(random_inputs())
    result = cell.unroll(DenseSequence(inputs), tf.constant(MASK), keep_outputs=True)
    forward = cell.forward.unroll(DenseSequence(inputs), tf.constant(MASK), True)
    backward = cell.backward.unroll(DenseSequence(inputs), tf.constant(MASK), True, reverse=True)
    first_real = MASK.argmax(axis=1)
    np.testing.assert_allclose(result.last_output[:, :UNITS], forward.last_output)
    np.testing.assert_allclose(result.last_output[:, UNITS:], backward.outputs.numpy()[np.arange(BATCH), first_real])


@pytest.mark.parametrize("inner", ["gru", "tanh"])
def test_skip_with_stop_gradient_trains_the_encoder_through_the_skip_path_only(registry, inner):
    """The same outputs; the input's gradient no longer depends on the inner cells' weights, which still learn."""
    inputs, mask = tf.constant(random_inputs()), tf.constant(MASK)

    def outputs_and_gradients(stop_gradient, seed):
        cell = make_cell(registry, "skip", cell=inner, directions=2, stop_gradient=stop_gradient, seed=seed)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = unroll_loss(cell, inputs, mask)
        input_grad, *weight_grads = tape.gradient(loss, [inputs, *cell.trainable_variables])
        outputs = cell.unroll(DenseSequence(inputs), mask, keep_outputs=True).outputs
        assert all(np.any(g.numpy() != 0) for g in weight_grads)  # the inner cells still learn
        return outputs.numpy(), input_grad.numpy()

    got = {(stop, seed): outputs_and_gradients(stop, seed) for stop in (True, False) for seed in (0, 1)}
    for seed in (0, 1):
        np.testing.assert_array_equal(got[True, seed][0], got[False, seed][0])
    np.testing.assert_allclose(got[True, 0][1], got[True, 1][1], atol=1e-12)
    assert not np.allclose(got[False, 0][1], got[False, 1][1])


def test_skip_inner_width_feeds_the_inner_cells_the_first_features_only(registry):
    """The inner cells read ``x_t[:K]``; the skip path still carries every feature; NumPy agrees."""
    width = INPUT_DIM - 1
    cell = make_cell(registry, "skip", cell="gru", directions=2, inner_width=width)
    assert cell.forward.input_dim == cell.backward.input_dim == width
    inputs = random_inputs()
    changed = inputs.copy()
    changed[..., width:] += 1.0  # features the inner cells must not see
    runs = [cell.unroll(DenseSequence(tf.constant(x)), tf.constant(MASK), keep_outputs=True).outputs.numpy()
            for x in (inputs, changed)]
    np.testing.assert_array_equal(runs[0][..., INPUT_DIM:], runs[1][..., INPUT_DIM:])
    assert not np.array_equal(runs[0][..., :INPUT_DIM], runs[1][..., :INPUT_DIM])
    np.testing.assert_allclose(runs[0], cell.reference_unroll(inputs, MASK)[0], atol=1e-10)
    with pytest.raises(ZooError, match=f"inner_width={INPUT_DIM + 1} is wider than its {INPUT_DIM}-wide input"):
        registry.create("cell", "skip", INPUT_DIM, inner_width=INPUT_DIM + 1)


def test_skip_drop_path_zeroes_whole_examples_of_the_inner_outputs_only(registry):
    """Each example's inner-cell outputs are all dropped (a fraction p of them) or all scaled by 1 / (1 - p);
    x_t always passes."""
    rate, batch = 0.25, 2000
    cell = make_cell(registry, "skip", cell="gru", directions=2, drop_path=rate)
    inputs = tf.constant(random_inputs(batch=batch))
    mask = tf.ones([batch, TIME], tf.bool)
    result = cell.unroll(DenseSequence(inputs), mask, keep_outputs=True)
    tf.random.set_seed(0)
    dropped = cell.regularize(result)
    np.testing.assert_array_equal(dropped.outputs[..., :INPUT_DIM], result.outputs[..., :INPUT_DIM])
    ratio = dropped.outputs.numpy()[..., INPUT_DIM:] / result.outputs.numpy()[..., INPUT_DIM:]
    per_example = ratio.reshape(batch, -1)
    # One decision per example, over all steps and features: a ratio of 0 or 1 / (1 - p) throughout.
    np.testing.assert_allclose(per_example, np.broadcast_to(per_example[:, :1], per_example.shape), rtol=1e-12)
    kept = per_example[:, 0] != 0
    np.testing.assert_allclose(per_example[kept], 1 / (1 - rate), rtol=1e-12)
    # 2000 draws: the dropped share is within 5 standard deviations (0.048) of p.
    assert abs(np.mean(~kept) - rate) < 0.05
    last_ratio = dropped.last_output.numpy()[:, INPUT_DIM:] / result.last_output.numpy()[:, INPUT_DIM:]
    np.testing.assert_allclose(last_ratio, per_example[:, :2 * UNITS], rtol=1e-12)
    assert make_cell(registry, "skip", cell="gru").regularize(result) is result  # off by default


def test_the_classifier_drops_paths_only_when_training(registry):
    """Inference is deterministic and equals the same model without drop-path; training draws."""
    from zoo_core.config import ModelSpec
    from zoo_core.model import Classifier

    def classifier(drop_path):
        params = {"encoder": {"dim": 4}, "cell": {"cell": "gru", "units": 3, "drop_path": drop_path}}
        return Classifier(ModelSpec("embedding", "skip", "mean-max-states", "sigmoid1", params=params), registry, 20)

    with_drop, without = classifier(0.5), classifier(0.0)
    for mine, theirs in zip(with_drop.trainable_variables, without.trainable_variables, strict=True):
        mine.assign(theirs)
    ids = tf.constant(np.random.default_rng(0).integers(1, 20, (64, 7)), tf.int32)
    np.testing.assert_array_equal(with_drop(ids), without(ids))
    np.testing.assert_array_equal(without(ids, training=True), without(ids))  # no dropout anywhere else
    assert not np.allclose(with_drop(ids, training=True), without(ids))


def test_skip_inner_width_reads_the_first_features_of_one_hot_inputs_too(registry):
    from zoo_core.encoders import OneHotSequence

    cell = make_cell(registry, "skip", cell="tanh", inner_width=3)
    ids = np.random.default_rng(0).integers(0, INPUT_DIM, (BATCH, TIME))
    got = cell.unroll(OneHotSequence(tf.constant(ids, tf.int32), INPUT_DIM), tf.constant(MASK), True).outputs
    dense = np.eye(INPUT_DIM)[ids]
    np.testing.assert_allclose(got, cell.reference_unroll(dense, MASK)[0], atol=1e-10)


# -- the throughput benchmark compares like with like ----------------------------
def load_benchmark():
    """``benchmarks/throughput.py`` as a module (benchmarks/ is not a package)."""
    import importlib.util
    import sys
    from pathlib import Path

    name = "throughput_benchmark"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "benchmarks" / "throughput.py"
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


@pytest.mark.parametrize("name", sorted(KERAS_LAYERS))
def test_benchmark_trains_the_same_model_as_keras(registry, name):
    """Same weights in: same logits, and the same losses over two Adam steps of the shared training step."""
    bench = load_benchmark()
    args = dict(batch=4, length=7, vocab=50, embed=6, mask=True, bptt="fused", jit=False, keras_jit=False, floor=True,
                optimizer="keras")  # Keras' Adam on both sides: the layers alone
    ids, mask, labels, _ = bench.random_batches(args, count=1)[0]
    zoo, reference = bench.build_zoo_model(registry, name, 5, args), bench.build_keras_model(name, 5, args)
    bench.copy_keras_weights(reference, zoo)
    np.testing.assert_allclose(zoo(ids, mask), reference(ids), atol=1e-5)
    assert zoo.count_params() == reference.count_params()

    zoo_step, keras_step, floor_step = (contender.train_step for contender in bench.contenders(registry, name, 5, args))
    for _ in range(2):
        assert float(zoo_step(ids, mask, labels)) == pytest.approx(float(keras_step(ids, mask, labels)), abs=1e-5)

    # The floor trains every variable of the same model, without the loop.
    floor = bench.NoRecurrence(bench.build_zoo_model(registry, name, 5, args))
    with tf.GradientTape() as tape:
        loss = floor.zoo.loss(labels, floor(ids, mask))
    grads = tape.gradient(loss, floor.zoo.trainable_variables)
    assert len(grads) == len(zoo.trainable_variables) and all(g is not None for g in grads)
    assert np.isfinite(float(floor_step(ids, mask, labels)))
    assert bench.matmul_chain_seconds(name, 5, args, repeats=1) > 0


def test_benchmark_imdb_lengths_and_buckets(registry):
    """IMDB-like lengths: the drawn distribution's median and 90th percentile, and bucketed batches
    padded (pre) to their own longest review, which both models accept with the same logits."""
    bench = load_benchmark()
    drawn = bench.imdb_lengths(20000, 10**6, np.random.default_rng(0))
    assert np.median(drawn) == pytest.approx(bench.IMDB_MEDIAN, rel=0.05)
    assert np.percentile(drawn, 90) == pytest.approx(bench.IMDB_P90, rel=0.05)
    assert bench.imdb_lengths(1000, 200, np.random.default_rng(0)).max() == 200

    args = dict(batch=4, length=300, vocab=50, embed=6, mask=True, lengths="imdb", batching="bucket", bptt="fused",
                jit=False, keras_jit=False, floor=False)
    batches = bench.random_batches(args, count=3)
    widths = [int(ids.shape[1]) for ids, *_ in batches]
    assert widths == sorted(widths) and len(set(widths)) > 1
    zoo, reference = bench.build_zoo_model(registry, "gru", 5, args), bench.build_keras_model("gru", 5, args)
    bench.copy_keras_weights(reference, zoo)
    for ids, mask, labels, real in batches:
        mask = mask.numpy()
        assert mask[:, -1].all() and mask.any(axis=0)[0]  # pre-padded, to the batch's longest review
        assert np.all((ids.numpy() == 0) == ~mask) and real == mask.sum()
        np.testing.assert_allclose(zoo(ids, tf.constant(mask)), reference(ids), atol=1e-5)

    args["batching"] = "padded"
    assert all(ids.shape[1] == 300 for ids, *_ in bench.random_batches(args, count=2))


def test_inference_skips_the_backward_preparation_and_agrees(registry, fused_cell_name):
    """With no tape recording (evaluation, prediction) a fused cell runs the lean generic loop: same outputs."""
    from zoo_core.unroll import gradient_possible

    assert not gradient_possible()
    with tf.GradientTape():
        assert gradient_possible()
    assert not tf.function(gradient_possible)()

    cell = make_cell(registry, fused_cell_name)
    inputs, mask = tf.constant(random_inputs()), tf.constant(MASK)

    def outputs():
        result = cell.unroll(DenseSequence(inputs), mask, keep_outputs=True)
        return [result.outputs, result.last_output] + tf.nest.flatten(result.final_state)

    def recorded_outputs():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            return outputs()

    for lean, fused in zip(tf.function(outputs)(), tf.function(recorded_outputs)(), strict=True):
        np.testing.assert_allclose(lean, fused, rtol=1e-12, atol=1e-12)
