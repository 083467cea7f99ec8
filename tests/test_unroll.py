"""The shared masked loop, checked with toy steps whose results are known in closed form."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from zoo_core.unroll import from_time_major, to_time_major, unroll

ROOT = Path(__file__).resolve().parent.parent


def running_sum(projected_t, state):
    """``s_t = s_{t-1} + x_t``: the final state is the sum over real steps."""
    new = state + projected_t
    return new, new


def test_to_and_from_time_major_round_trip():
    values = tf.reshape(tf.range(2 * 3 * 4, dtype=tf.float32), [2, 3, 4])
    mask = tf.constant([[True, False, True], [False, True, True]])
    for reverse in (False, True):
        tm, mask_tm = to_time_major(values, mask, reverse)
        assert tm.shape == (3, 2, 4) and mask_tm.shape == (3, 2, 1)
        np.testing.assert_array_equal(from_time_major(tm, reverse), values)
        expected_first = values[:, -1] if reverse else values[:, 0]
        np.testing.assert_array_equal(tm[0], expected_first)
        np.testing.assert_array_equal(mask_tm[0, :, 0], mask[:, -1] if reverse else mask[:, 0])
    assert to_time_major(values, None)[1] is None


@pytest.mark.parametrize("reverse", [False, True])
def test_masked_steps_carry_state_and_output(reverse):
    x = np.arange(1, 13, dtype=np.float32).reshape(2, 6, 1)
    mask = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], bool)
    result = unroll(running_sum, tf.constant(x), tf.constant(mask), tf.zeros([2, 1]), tf.zeros([2, 1]),
                    keep_outputs=True, reverse=reverse)
    want_final = (x[..., 0] * mask).sum(1, keepdims=True)
    np.testing.assert_array_equal(result.final_state, want_final)
    np.testing.assert_array_equal(result.last_output, want_final)
    # Outputs are in input order; a padded step repeats the previous output (zero before any real step).
    running = np.cumsum((x[..., 0] * mask)[:, ::-1] if reverse else x[..., 0] * mask, axis=1)
    running = running[:, ::-1] if reverse else running
    np.testing.assert_array_equal(result.outputs[..., 0], running)


def test_no_mask_and_all_true_mask_agree_and_outputs_can_be_dropped():
    x = tf.random.stateless_normal([3, 5, 2], seed=[1, 2])
    plain = unroll(running_sum, x, None, tf.zeros([3, 2]), tf.zeros([3, 2]), keep_outputs=False)
    masked = unroll(running_sum, x, tf.ones([3, 5], tf.bool), tf.zeros([3, 2]), tf.zeros([3, 2]), keep_outputs=True)
    assert plain.outputs is None
    np.testing.assert_allclose(plain.final_state, tf.reduce_sum(x, 1), rtol=1e-6)
    np.testing.assert_allclose(masked.final_state, plain.final_state)
    np.testing.assert_allclose(masked.outputs, tf.cumsum(x, axis=1), rtol=1e-6)


def test_nested_state_and_xla_gradient():
    """A tuple state works, and the loop and its gradient compile under XLA."""

    def two_part(projected_t, state):
        total, count = state
        return total * 0.5, (total * 0.5 + projected_t, count + 1.0)

    x = tf.random.stateless_normal([2, 4, 3], seed=[3, 4])
    mask = tf.constant([[True, True, False, False], [True, True, True, True]])

    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            result = unroll(two_part, x, mask, (tf.zeros([2, 3]), tf.zeros([2, 1])), tf.zeros([2, 3]), True)
            loss = tf.reduce_sum(result.final_state[0]) + tf.reduce_sum(result.outputs)
        return result.final_state[1], tape.gradient(loss, x)

    eager_count, eager_grad = run(x)
    xla_count, xla_grad = tf.function(run, jit_compile=True)(x)
    np.testing.assert_array_equal(eager_count[:, 0], [2.0, 4.0])
    np.testing.assert_array_equal(xla_count, eager_count)
    np.testing.assert_allclose(xla_grad, eager_grad, rtol=1e-6)
    assert np.all(eager_grad.numpy()[0, 2:] == 0)  # padded inputs get no gradient


KERAS_RECURRENT = {"SimpleRNN", "GRU", "LSTM", "RNN", "Bidirectional", "SimpleRNNCell", "GRUCell", "LSTMCell",
                   "StackedRNNCells", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "TimeDistributed"}


def dotted(node: ast.expr) -> str:
    """``keras.layers.GRU`` for the expression ``keras.layers.GRU``; ``""`` for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def keras_recurrent_uses(source: str) -> list[int]:
    """Lines that import or call a Keras recurrent layer (parsed, so docstrings and comments don't count)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and "keras" in (node.module or ""):
            lines += [node.lineno for alias in node.names if alias.name in KERAS_RECURRENT]
        elif isinstance(node, (ast.Call, ast.Attribute)):
            parts = dotted(node.func if isinstance(node, ast.Call) else node).split(".")
            if parts[-1] in KERAS_RECURRENT and "layers" in parts[:-1]:
                lines.append(node.lineno)
    return sorted(set(lines))


def test_the_product_check_catches_keras_layers():
    assert keras_recurrent_uses("import keras\nx = keras.layers.GRU(4)\n") == [2]
    assert keras_recurrent_uses("from keras.layers import LSTM\n") == [1]
    assert keras_recurrent_uses('"""Matches keras.layers.GRU."""\nname = "GRU"\n') == []


def test_product_code_uses_no_keras_recurrent_layers():
    """The hard rule: recurrences in zoo_core/ and plugins/ are low-level TF only."""
    offenders = []
    for path in sorted(list((ROOT / "zoo_core").rglob("*.py")) + list((ROOT / "plugins").rglob("*.py"))):
        for line in keras_recurrent_uses(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert not offenders, "Keras recurrent layers in product code: " + ", ".join(offenders)
