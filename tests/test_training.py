"""The training loop on tiny hand-made data: learning, early stopping, NaN and Ctrl-C handling, evaluation."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_metrics import pairwise_auc
from zoo_core.config import DataConfig, ModelSpec, RunSpec, TrainConfig
from zoo_core.model import Classifier
from zoo_core.training import (TrainObserver, TrainResult, TrainStep, averaged_weights, cell_lr_scales,
                               deduplicate, evaluate, learning_rate, make_optimizer, predict, train)

VOCAB = 24
GOOD, BAD = 3, 4  # the tokens that decide the label; 5.. are filler


@pytest.fixture(scope="module")
def trap_registry():
    """The registry plus the test-only ``trap-sigmoid1`` head of :mod:`tests.trap_plugin`."""
    from tests.trap_plugin import TrapSigmoidHead
    from zoo_core.registry import build_registry

    registry = build_registry()
    registry.register("head", TrapSigmoidHead, plugin="tests.trap_plugin")
    return registry


class TinySplit:
    """A stand-in for ``zoo_core.data.Split``: pre-padded batches of a synthetic task.

    Positive reviews hold the token GOOD, negative ones BAD, among random filler.
    """

    def __init__(self, n: int, seed: int, maxlen: int = 10, flip: bool = False):
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, 2, n).astype(np.int32)
        self.lengths = rng.integers(3, maxlen + 1, n)
        self.maxlen = maxlen
        self.seqs = []
        for label, length in zip(self.labels, self.lengths):
            seq = rng.integers(5, VOCAB, length)
            seq[rng.integers(0, length)] = GOOD if label else BAD
            self.seqs.append(seq)
        if flip:  # the same reviews with the opposite labels
            self.labels = 1 - self.labels

    def __len__(self):
        return len(self.labels)

    def num_tokens(self):
        return int(self.lengths.sum())

    def batches(self, batch_size, shuffle=False, seed=0):
        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        for start in range(0, len(self), batch_size):
            rows = order[start:start + batch_size]
            ids = np.zeros((len(rows), self.maxlen), np.int32)
            mask = np.zeros((len(rows), self.maxlen), bool)
            for i, row in enumerate(rows):
                n = self.lengths[row]
                ids[i, -n:], mask[i, -n:] = self.seqs[row], True
            yield SimpleNamespace(ids=ids, mask=mask, labels=self.labels[rows])

    def scoring_batches(self, batch_size):
        """What evaluation reads: every review once, here in the split's order (padding is masked)."""
        for start, batch in zip(range(0, len(self), batch_size), self.batches(batch_size)):
            yield np.arange(start, start + len(batch.labels)), batch


class StopAfter:
    """A ``should_stop`` that turns true once ``split`` has served ``batches`` batches (stop requests, in-process)."""

    def __init__(self, split: TinySplit, batches: int):
        self.served, self.batches = 0, batches
        original = split.batches

        def counting(*args, **kwargs):
            for batch in original(*args, **kwargs):
                self.served += 1
                yield batch

        split.batches = counting

    def __call__(self) -> bool:
        return self.served >= self.batches


class InterruptingSplit(TinySplit):
    """Raises KeyboardInterrupt (as Ctrl-C would) at batch ``at_batch`` of epoch ``at_epoch``."""

    def __init__(self, *args, at_epoch: int, at_batch: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.at_epoch, self.at_batch, self.epoch = at_epoch, at_batch, 0

    def batches(self, batch_size, shuffle=False, seed=0):
        if shuffle:
            self.epoch += 1
        for i, batch in enumerate(super().batches(batch_size, shuffle, seed), start=1):
            if shuffle and self.epoch == self.at_epoch and i == self.at_batch:
                raise KeyboardInterrupt
            yield batch


@pytest.fixture
def made_optimizers(monkeypatch) -> list:
    """Every optimizer ``train`` makes in the test, in order (``make_optimizer`` itself, recorded)."""
    import zoo_core.training as training

    made = []
    monkeypatch.setattr(training, "make_optimizer", lambda *a, **k: made.append(make_optimizer(*a, **k)) or made[-1])
    return made


def tiny_dataset(train_split=None, val_split=None, test_split=None):
    return SimpleNamespace(
        vocab=[None] * VOCAB,  # only len() is used
        train=train_split or TinySplit(192, seed=0),
        val=val_split or TinySplit(64, seed=1),
        test=test_split or TinySplit(64, seed=2),
    )


def tiny_run(cell="tanh", aggregator="mean-states", head="sigmoid1", seed=0, data=None, head_params=None,
             **train_settings):
    params = {"encoder": {"dim": 8}, "cell": {"units": 8}, **({"head": head_params} if head_params else {})}
    spec = ModelSpec("embedding", cell, aggregator, head, params=params)
    settings = {"epochs": 4, "batch_size": 16, "lr": 0.03, **train_settings}
    return RunSpec(model=spec, data=data or DataConfig(), train=TrainConfig(**settings), seed=seed)


def weights_of(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def test_training_lowers_the_loss_and_beats_chance(registry):
    model, result = train(tiny_run(), registry, tiny_dataset())
    assert isinstance(result, TrainResult)
    assert result.status == "completed" and result.message == ""
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert set(result.history[0]) >= {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_auc",
                                      "seconds", "tokens_per_sec"}
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.7 * losses[0]
    assert result.val["accuracy"] > 0.8 and result.test["accuracy"] > 0.8
    assert result.test["auc"] > 0.85
    assert result.params == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert result.tokens_per_sec > 0 and result.wall_time > 0
    # The kept weights are the best epoch's, and result.val describes them.
    best = result.history[result.best_epoch - 1]
    assert best["val_loss"] == min(h["val_loss"] for h in result.history)
    assert evaluate(model, tiny_dataset().val, result.run)["loss"] == pytest.approx(result.val["loss"], rel=1e-5)


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_early_stopping_keeps_and_tests_the_best_epoch(registry, monitor):
    # Validation labels are flipped, so learning the training task makes validation worse.
    data = tiny_dataset(val_split=TinySplit(64, seed=1, flip=True))
    run = tiny_run(epochs=6, patience=1, monitor=monitor, lr=0.05)
    model, result = train(run, registry, data)
    assert result.status == "early-stopped"
    assert result.best_epoch == 1 and len(result.history) == 2
    assert monitor in result.message
    kept_val = evaluate(model, data.val, run)
    assert kept_val["loss"] == pytest.approx(result.history[0]["val_loss"], rel=1e-5)
    assert result.test == pytest.approx(evaluate(model, data.test, run), rel=1e-5)


class Recorder(TrainObserver):
    """An observer that keeps every report it is given."""

    def __init__(self, every_steps: int):
        self.every_steps = every_steps
        self.steps, self.epochs = [], []

    def on_step(self, step, logs):
        self.steps.append((step, logs))

    def on_epoch(self, epoch, logs):
        self.epochs.append((epoch, logs))


def test_an_observer_gets_each_epoch_and_means_over_every_n_steps(registry):
    # 192 reviews in batches of 16: 12 steps an epoch. Reports every 5 steps span two epochs; 60 steps in all.
    run = tiny_run(epochs=5, patience=0, lr_schedule="cosine")
    recorder = Recorder(every_steps=5)
    _, result = train(run, registry, tiny_dataset(), observer=recorder)
    assert result.status == "completed"
    assert [step for step, _ in recorder.steps] == list(range(5, 61, 5))
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2, 3, 4, 5]
    for (epoch, logs), row in zip(recorder.epochs, result.history):
        assert {k: logs[k] for k in row} == row and logs["step"] == 12 * epoch
    # Every review is counted once: the 80-review means recombine into the 192-review epoch means.
    window_correct = [round(logs["train_accuracy"] * 80) for _, logs in recorder.steps]
    assert [logs["train_accuracy"] for _, logs in recorder.steps] == pytest.approx([c / 80 for c in window_correct])
    assert sum(window_correct) == sum(round(h["train_accuracy"] * 192) for h in result.history)
    assert sum(logs["train_loss"] * 80 for _, logs in recorder.steps) == pytest.approx(
        sum(h["train_loss"] * 192 for h in result.history), rel=1e-9)
    assert all(math.isfinite(logs["grad_norm"]) and logs["grad_norm"] > 0 for _, logs in recorder.steps)

    def cosine(step):  # the rate of update step + 1
        return run.train.lr * 0.5 * (1 + math.cos(math.pi * step / 60))

    for step, logs in recorder.steps:
        assert logs["learning_rate"] == pytest.approx(cosine(step), rel=1e-5, abs=1e-9)
    for epoch, logs in recorder.epochs:
        assert logs["learning_rate"] == pytest.approx(cosine(12 * epoch), rel=1e-5, abs=1e-9)
    assert recorder.epochs[-1][1]["learning_rate"] == pytest.approx(0.0, abs=1e-9)


# The trap head adds NaN to the loss at step 3, so the run diverges there for certain whatever the
# model (a huge lr overflows or not depending on how the CPU rounds). The rows vary the gradient
# path the loop must stop and undo: fused BPTT kernels, autodiff through gates, ReLU and max.
DIVERGING = [("tanh", "mean-states"), ("lstm", "last"), ("irnn", "max-states"), ("mgu", "mean-logits")]


@pytest.mark.parametrize("cell, aggregator", DIVERGING)
def test_a_diverging_run_stops_with_status_nan_and_keeps_finite_weights(trap_registry, cell, aggregator):
    run = tiny_run(cell=cell, aggregator=aggregator, head="trap-sigmoid1", head_params={"nan_step": 3})
    initial = weights_of(Classifier(run.model, trap_registry, VOCAB))
    model, result = train(run, trap_registry, tiny_dataset())
    assert result.status == "nan"
    assert "non-finite loss (nan) at epoch 1, step 3;" in result.message
    assert result.history == []  # it never finished an epoch
    kept = weights_of(model)
    assert all(np.all(np.isfinite(w)) for w in kept)
    assert any(not np.allclose(a, b) for a, b in zip(kept, initial)), "step 1 was kept"
    assert math.isfinite(evaluate(model, tiny_dataset().train, run)["loss"])  # the kept weights still work


@pytest.mark.parametrize("optimizer", ["sgd", "lazy-adam"])
def test_an_update_that_overflows_the_weights_is_undone(registry, optimizer):
    # lr beyond float32's range: the first update turns the weights infinite. Lazy Adam saves and restores
    # only the embedding rows it updates.
    run = tiny_run(optimizer=optimizer, lr=1e39, clip_norm=0.0)
    keras.utils.set_random_seed(run.seed)
    initial = weights_of(Classifier(run.model, registry, VOCAB))
    model, result = train(run, registry, tiny_dataset())
    assert result.status == "nan"
    assert "non-finite weights after the update" in result.message and "epoch 1, step 1;" in result.message
    for kept, start in zip(weights_of(model), initial):
        np.testing.assert_array_equal(kept, start)


def test_ctrl_c_returns_the_last_good_weights_with_status_interrupted(registry):
    data = tiny_dataset(train_split=InterruptingSplit(192, seed=0, at_epoch=2, at_batch=3))
    run = tiny_run()
    initial = weights_of(Classifier(run.model, registry, VOCAB))
    model, result = train(run, registry, data)
    assert result.status == "interrupted" and "epoch 2" in result.message
    assert len(result.history) == 1 and result.best_epoch == 1
    kept = weights_of(model)
    assert all(np.all(np.isfinite(w)) for w in kept)
    assert any(not np.allclose(a, b) for a, b in zip(kept, initial)), "the kept weights were trained"
    assert result.test == pytest.approx(evaluate(model, data.test, run), rel=1e-5)


STOP_CASES = [
    # should_stop() turns true as this split's n-th batch is drawn (12 training batches an epoch,
    # one evaluation batch), so it is seen just before that batch is used.
    ("train", 3, 4, "during epoch 1"),  # mid-epoch
    ("train", 25, 4, "during epoch 3"),  # between epochs 2 and 3
    ("val", 1, 4, "during epoch 1"),  # in the validation after epoch 1
    ("test", 1, 1, "during the final evaluation"),  # in the test evaluation of a finished run
]


@pytest.mark.parametrize("split, nth, epochs, where", STOP_CASES)
def test_a_stop_request_ends_the_run_as_interrupted_keeping_trained_weights(registry, split, nth, epochs, where):
    data = tiny_dataset()
    should_stop = StopAfter(getattr(data, split), nth)
    run = tiny_run(epochs=epochs)
    initial = weights_of(Classifier(run.model, registry, VOCAB))
    model, result = train(run, registry, data, should_stop=should_stop)
    assert result.status == "interrupted" and where in result.message
    assert math.isnan(result.test["accuracy"])  # the evaluation left is skipped, not run
    kept = weights_of(model)
    assert all(np.all(np.isfinite(w)) for w in kept)
    assert any(not np.allclose(a, b) for a, b in zip(kept, initial)), "the kept weights were trained"
    if split == "test":
        assert len(result.history) == epochs and math.isfinite(result.val["accuracy"])


def test_same_seed_same_run_and_different_seed_different_run(registry):
    def losses(seed):
        _, result = train(tiny_run(epochs=1, seed=seed), registry, tiny_dataset())
        return [result.history[0]["train_loss"], result.val["loss"]]

    first = losses(3)
    assert losses(3) == pytest.approx(first, rel=1e-6)
    assert losses(4) != pytest.approx(first, rel=1e-6)


def test_evaluate_matches_a_numpy_computation(registry):
    run = tiny_run()
    model = Classifier(run.model, registry, VOCAB)
    split = TinySplit(300, seed=5)
    (batch,) = split.batches(len(split))  # the whole split as one batch
    logits = model(tf.constant(batch.ids), tf.constant(batch.mask)).numpy()[:, 0]
    probs = 1 / (1 + np.exp(-logits))
    labels = batch.labels
    losses = np.where(labels == 1, np.logaddexp(0, -logits), np.logaddexp(0, logits))
    got = evaluate(model, split, run)
    assert got["accuracy"] == pytest.approx(np.mean((probs > 0.5) == labels), abs=1e-6)
    assert got["loss"] == pytest.approx(losses.mean(), rel=1e-4)
    assert got["auc"] == pytest.approx(pairwise_auc(labels, probs), abs=1e-3)
    # Exact: the AUC of the very scores evaluate saw (Keras' binned AUC was only within 0.01).
    scores = predict(model, split, run)
    assert got["auc"] == pytest.approx(pairwise_auc(np.asarray(split.labels), scores), abs=1e-12)


def test_evaluate_on_an_empty_split_gives_nans(registry):
    run = tiny_run()
    model = Classifier(run.model, registry, VOCAB)
    assert all(math.isnan(v) for v in evaluate(model, TinySplit(0, seed=0), run).values())


def test_auc_is_undefined_when_one_class_is_missing(registry):
    run = tiny_run()
    model = Classifier(run.model, registry, VOCAB)
    split = TinySplit(10, seed=0)
    split.labels[:] = 1
    got = evaluate(model, split, run)
    assert math.isnan(got["auc"]) and math.isfinite(got["accuracy"]) and math.isfinite(got["loss"])


def one_step(registry, run, batch):
    """One compiled training step on a freshly built model (same seed, same initial weights)."""
    keras.utils.set_random_seed(0)
    model = Classifier(run.model, registry, VOCAB)
    optimizer = make_optimizer(run.train)
    optimizer.build(model.trainable_variables)
    step = TrainStep(model, optimizer, run)
    before = weights_of(model)
    out = step(batch.ids, batch.mask, batch.labels)
    return model, step, before, out


def test_gradients_are_clipped_by_global_norm(registry):
    run = tiny_run(optimizer="sgd", lr=1.0, clip_norm=1e-3)
    batch = next(TinySplit(16, seed=0).batches(16))
    model, _, before, (_, _, norm, applied) = one_step(registry, run, batch)
    assert bool(applied) and float(norm) > 1e-3  # the raw norm was larger than the clip
    change = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(weights_of(model), before)))
    assert change == pytest.approx(1e-3, rel=1e-3)  # SGD with lr 1 moves by exactly the clipped norm


def test_the_mask_setting_decides_what_the_model_sees(registry):
    batch = next(TinySplit(16, seed=0).batches(16))
    for use_mask in (True, False):
        run = tiny_run(optimizer="sgd", lr=0.0, data=DataConfig(mask=use_mask))
        model, _, _, (loss, _, _, _) = one_step(registry, run, batch)
        mask = tf.constant(batch.mask) if use_mask else None
        expected = model.loss(tf.constant(batch.labels), model(tf.constant(batch.ids), mask))
        assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_batches_of_new_lengths_reuse_one_trace(registry):
    run = tiny_run()
    model, step, _, _ = one_step(registry, run, next(TinySplit(8, seed=0, maxlen=10).batches(8)))
    for maxlen, size in ((4, 3), (13, 5)):
        batch = next(TinySplit(size, seed=1, maxlen=maxlen).batches(size))
        step(batch.ids, batch.mask, batch.labels)
    assert step.function.experimental_get_tracing_count() == 1


def test_optimizers_and_weight_decay():
    assert isinstance(make_optimizer(TrainConfig(optimizer="adam")), keras.optimizers.Adam)
    adamw = make_optimizer(TrainConfig(optimizer="adam", weight_decay=0.01))
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == pytest.approx(0.01)
    sgd = make_optimizer(TrainConfig(optimizer="sgd", lr=0.5, weight_decay=0.1))
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.weight_decay == pytest.approx(0.1)
    assert float(sgd.learning_rate) == pytest.approx(0.5)
    assert isinstance(make_optimizer(TrainConfig(optimizer="rmsprop")), keras.optimizers.RMSprop)
    lazy = make_optimizer(TrainConfig(optimizer="lazy-adam"))
    assert isinstance(lazy, keras.optimizers.Adam) and lazy.lazy
    lazy_decayed = make_optimizer(TrainConfig(optimizer="lazy-adam", weight_decay=0.01))
    assert isinstance(lazy_decayed, keras.optimizers.AdamW) and lazy_decayed.lazy


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("config", [TrainConfig(lr=0.01), TrainConfig(lr=0.01, weight_decay=0.05),
                                    TrainConfig(lr=0.01, lr_schedule="cosine")], ids=["adam", "adamw", "cosine"])
def test_the_fused_adam_update_equals_keras_own(config, jit):
    """Five steps of zoo's Adam (one fused kernel) and of Keras' own, from the same weights and gradients:
    a dense kernel and an embedding's sparse gradient (rows unique, as the training step deduplicates them)."""
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(9, 3)).astype("float32")]
    keras_class = keras.optimizers.AdamW if config.weight_decay else keras.optimizers.Adam
    fused = make_optimizer(config, total_steps=5)
    reference = keras_class(learning_rate=learning_rate(config, 5),
                            **({"weight_decay": config.weight_decay} if config.weight_decay else {}))
    assert type(fused) is not keras_class and isinstance(fused, keras_class)
    weights = []
    for optimizer in (fused, reference):
        variables = [tf.Variable(w) for w in start]
        optimizer.build(variables)

        @tf.function(jit_compile=jit)
        def step(dense, rows, values):
            sparse = tf.IndexedSlices(values, rows, tf.constant([9, 3], tf.int64))
            optimizer.apply_gradients([(dense, variables[0]), (sparse, variables[1])])

        for t in range(5):
            grads = np.random.default_rng(t)
            step(grads.normal(size=(6, 4)).astype("float32"), tf.constant([2, 7, 4], tf.int64),
                 grads.normal(size=(3, 3)).astype("float32"))
        weights.append([v.numpy() for v in variables])
    for ours, theirs, before in zip(*weights, start):
        assert not np.allclose(ours, before)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "lazy-adam", "sgd", "rmsprop"])
def test_cell_lr_scale_updates_the_cell_at_the_scaled_rate_and_the_rest_at_lr(registry, optimizer):
    """Three steps with the cell's rate scaled by 0.25 equal two optimizers of the same kind on the same
    gradients: one at 0.25 * lr on the cell's variables, one at lr on the encoder's and the head's."""
    spec = ModelSpec("embedding", "gru", "mean-states", "sigmoid1", params={"encoder": {"dim": 4}, "cell": {"units": 3}})
    tf.random.set_seed(0)
    model = Classifier(spec, registry, VOCAB)
    variables = model.trainable_variables
    ids = tf.constant(np.random.default_rng(0).integers(3, VOCAB, (4, 6)), tf.int32)
    with tf.GradientTape() as tape:
        loss = model.loss(tf.constant([0, 1, 1, 0]), model(ids))
    grads = [deduplicate(g) for g in tape.gradient(loss, variables)]
    start = [v.numpy() for v in variables]
    cell = {id(v) for v in model.cell.trainable_variables}
    assert 0 < len(cell) < len(variables)

    scaled = make_optimizer(TrainConfig(optimizer=optimizer, lr=0.01))
    scaled.build(variables)
    scaled.lr_scales = cell_lr_scales(model, variables, 0.25)
    assert sorted(set(scaled.lr_scales)) == [0.25, 1.0]
    for _ in range(3):
        scaled.apply_gradients(zip(grads, variables))
    got = [v.numpy() for v in variables]

    expected = [None] * len(variables)
    for in_cell, lr in ((True, 0.0025), (False, 0.01)):
        chosen = [i for i, v in enumerate(variables) if (id(v) in cell) == in_cell]
        copies = [tf.Variable(start[i]) for i in chosen]
        reference = make_optimizer(TrainConfig(optimizer=optimizer, lr=lr))
        reference.build(copies)
        for _ in range(3):
            reference.apply_gradients(zip([grads[i] for i in chosen], copies))
        for i, copy in zip(chosen, copies):
            expected[i] = copy.numpy()
    for v, ours, theirs, before in zip(variables, got, expected, start):
        assert not np.allclose(ours, before), v.name
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7, err_msg=v.name)


def test_training_with_a_tiny_cell_lr_scale_leaves_the_cell_almost_untouched(registry):
    run = tiny_run(cell="gru", epochs=1, lr=0.03, cell_lr_scale=1e-6)
    tf.random.set_seed(0)
    keras.utils.set_random_seed(run.seed)
    start = Classifier(run.model, registry, VOCAB)  # the weights train() starts from, at the same seed
    model, result = train(run, registry, tiny_dataset())
    assert result.status == "completed"
    for before, after in zip(start.trainable_variables, model.trainable_variables):
        moved = np.abs(after.numpy() - before.numpy()).max()
        if any(after is v for v in model.cell.trainable_variables):
            assert moved < 1e-5, after.name  # 12 steps of at most lr * 1e-6 each (Adam's step is about lr)
        else:
            assert moved > 1e-3, after.name


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_lazy_adam_updates_a_sparse_gradients_rows_as_adam_and_leaves_the_others(jit):
    """Five steps of lazy Adam against a NumPy reference of Kingma & Ba's Algorithm 1 applied row by row:
    a row is updated (with the global step t) only at the steps whose sparse gradient holds it; a dense
    kernel is updated at every step, as by Keras' own Adam."""
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(9, 3)).astype("float32")]
    lazy = make_optimizer(TrainConfig(optimizer="lazy-adam", lr=0.01))
    assert lazy.updates_only_gradient_rows
    assert not make_optimizer(TrainConfig(optimizer="lazy-adam", weight_decay=0.1)).updates_only_gradient_rows
    variables = [tf.Variable(w) for w in start]
    lazy.build(variables)
    dense_reference = keras.optimizers.Adam(learning_rate=0.01)
    dense_copy = tf.Variable(start[0])
    dense_reference.build([dense_copy])

    @tf.function(jit_compile=jit)
    def step(dense, rows, values):
        lazy.apply_gradients([(dense, variables[0]), (tf.IndexedSlices(values, rows, tf.constant([9, 3], tf.int64)),
                                                      variables[1])])

    table, m, v = start[1].astype(np.float64), np.zeros((9, 3)), np.zeros((9, 3))
    beta_1, beta_2, epsilon = 0.9, 0.999, 1e-7  # Keras' defaults
    row_sets = [[2, 7, 4], [7, 0], [2, 7, 4], [5], [0, 2]]  # rows 1, 3, 6 and 8 are never touched
    for t, rows in enumerate(row_sets, start=1):
        grads = np.random.default_rng(t)
        dense, values = grads.normal(size=(6, 4)).astype("float32"), grads.normal(size=(len(rows), 3)).astype("float32")
        step(dense, tf.constant(rows, tf.int64), values)
        dense_reference.apply_gradients([(dense, dense_copy)])
        m[rows] = beta_1 * m[rows] + (1 - beta_1) * values
        v[rows] = beta_2 * v[rows] + (1 - beta_2) * values.astype(np.float64) ** 2
        step_size = 0.01 * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        table[rows] -= step_size * m[rows] / (np.sqrt(v[rows]) + epsilon)
    np.testing.assert_allclose(variables[1].numpy(), table, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(variables[1].numpy()[[1, 3, 6, 8]], start[1][[1, 3, 6, 8]])
    np.testing.assert_allclose(variables[0].numpy(), dense_copy.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_decaying_schedules_start_at_lr_and_reach_zero_at_the_last_step(schedule):
    optimizer = make_optimizer(TrainConfig(lr=0.01, lr_schedule=schedule), total_steps=100)
    schedule_fn = optimizer._learning_rate  # the Keras schedule itself
    assert float(schedule_fn(0)) == pytest.approx(0.01)
    middle = float(schedule_fn(50))
    assert middle == pytest.approx(0.005, rel=1e-6)  # cosine and linear both pass half-way at the middle
    assert float(schedule_fn(100)) == pytest.approx(0.0, abs=1e-9)
    assert float(schedule_fn(25)) == pytest.approx(0.01 * (0.75 if schedule == "linear" else (1 + math.cos(math.pi / 4)) / 2))
    with pytest.raises(ValueError, match="number of steps"):
        make_optimizer(TrainConfig(lr_schedule=schedule))


def test_a_decaying_schedule_spans_exactly_the_runs_updates(registry, made_optimizers):
    run = tiny_run(epochs=3, batch_size=8, lr=0.05, lr_schedule="linear", patience=0)
    dataset = tiny_dataset(TinySplit(42, seed=0))  # 6 batches a epoch, the last one of 2 reviews
    _, result = train(run, registry, dataset)
    optimizer, = made_optimizers
    assert len(result.history) == 3 and int(optimizer.iterations) == 3 * 6
    assert float(optimizer.learning_rate) == 0.0  # decayed to nothing by the last update
    assert float(optimizer._learning_rate(3 * 6 - 1)) > 0.0


def test_short_epochs_train_on_the_same_batches(registry):
    """12 batches a pass: 2 one-pass epochs and 6 epochs of 4 steps make the same 24 updates in the same
    order (the stream crosses from pass 1 into pass 2 mid-epoch), so they end at the same weights.
    Without validation data each run keeps its last weights."""
    runs = []
    for settings in ({"epochs": 2}, {"epochs": 6, "steps_per_epoch": 4}):
        dataset = tiny_dataset()
        dataset.val = TinySplit(0, seed=1)
        runs.append(train(tiny_run(patience=0, **settings), registry, dataset))
    (one_pass_model, one_pass), (short_model, short) = runs
    assert [h["epoch"] for h in short.history] == [1, 2, 3, 4, 5, 6] and short.best_epoch == 6
    assert sum(h["train_loss"] for h in short.history[:3]) / 3 == pytest.approx(one_pass.history[0]["train_loss"])
    for ours, theirs in zip(weights_of(short_model), weights_of(one_pass_model)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_short_epochs_are_each_validated_and_the_best_kept(registry):
    model, result = train(tiny_run(epochs=6, steps_per_epoch=3, patience=0, monitor="val_accuracy"),
                          registry, tiny_dataset())
    assert len({h["val_loss"] for h in result.history}) == 6
    best = max(range(6), key=lambda i: (result.history[i]["val_accuracy"], -i))
    assert result.best_epoch == best + 1
    assert evaluate(model, tiny_dataset().val, tiny_run())["accuracy"] == result.history[best]["val_accuracy"]


@pytest.mark.parametrize("optimizer, jit, decay", [("adam", False, 0.0), ("lazy-adam", False, 0.0), ("lazy-adam", True, 0.0),
                                                   ("lazy-adam", False, 0.1), ("sgd", False, 0.0)])
def test_the_moving_average_of_the_weights_follows_its_recurrence(registry, optimizer, jit, decay):
    """average_1 = w_1, then average_k = m * average_{k-1} + (1 - m) * w_k, read into the model only
    inside averaged_weights; lazy-adam keeps its embedding's average row by row, caught up when read."""
    spec = ModelSpec("embedding", "gru", "mean-states", "sigmoid1", params={"encoder": {"dim": 4}, "cell": {"units": 3}})
    tf.random.set_seed(0)
    model = Classifier(spec, registry, VOCAB)
    variables = model.trainable_variables
    opt = make_optimizer(TrainConfig(optimizer=optimizer, lr=0.05, ema_momentum=0.75, weight_decay=decay))
    opt.build(variables)
    rng = np.random.default_rng(0)
    expected = None
    for _ in range(4):
        ids = tf.constant(rng.integers(3, VOCAB, (4, 6)), tf.int32)
        with tf.GradientTape() as tape:
            loss = model.loss(tf.constant([0, 1, 1, 0]), model(ids))
        grads = [deduplicate(g) for g in tape.gradient(loss, variables)]
        if jit:
            tf.function(lambda: opt.apply_gradients(zip(grads, variables)), jit_compile=True)()
        else:
            opt.apply_gradients(zip(grads, variables))
        weights = weights_of(model)
        expected = weights if expected is None else [0.75 * a + 0.25 * w for a, w in zip(expected, weights)]
    embedding = [i for i, v in enumerate(variables) if v is model.encoder.trainable_variables[0]]
    # Weight decay moves every row: the whole-table average then.
    lazily = optimizer == "lazy-adam" and not decay
    assert getattr(opt, "_lazily_averaged", set()) == (set(embedding) if lazily else set())
    with averaged_weights(opt, variables):
        for v, average, w in zip(variables, expected, weights):
            assert not np.allclose(average, w), v.name
            np.testing.assert_allclose(v.numpy(), average, rtol=1e-5, atol=1e-7, err_msg=v.name)
    for v, w in zip(variables, weights):
        np.testing.assert_array_equal(v.numpy(), w)


def test_with_a_moving_average_training_goes_on_from_the_weights_and_keeps_the_average(registry, made_optimizers):
    """The same run with and without ema_momentum trains alike (the same training losses), while its
    validation and its kept weights are the average's."""
    dataset = tiny_dataset()
    dataset.val = TinySplit(0, seed=1)  # the last epoch is kept
    _, plain = train(tiny_run(epochs=3, patience=0), registry, dataset)
    model, averaged = train(tiny_run(epochs=3, patience=0, ema_momentum=0.9), registry, dataset)
    assert [h["train_loss"] for h in averaged.history] == pytest.approx([h["train_loss"] for h in plain.history],
                                                                       rel=1e-6)
    optimizer = made_optimizers[-1]
    for v, average in zip(model.trainable_variables, optimizer._model_variables_moving_average):
        np.testing.assert_array_equal(v.numpy(), average.numpy())

    data = tiny_dataset()
    model, result = train(tiny_run(epochs=3, patience=0, ema_momentum=0.9), registry, data)
    assert evaluate(model, data.val, tiny_run())["loss"] == pytest.approx(
        result.history[result.best_epoch - 1]["val_loss"], rel=1e-5)


def test_an_interrupted_run_with_a_moving_average_keeps_the_average(registry, made_optimizers):
    dataset = tiny_dataset()
    stop = StopAfter(dataset.train, 17)  # in epoch 2
    model, result = train(tiny_run(epochs=4, ema_momentum=0.9, optimizer="lazy-adam"), registry, dataset,
                          should_stop=stop)
    assert result.status == "interrupted"
    optimizer, = made_optimizers
    optimizer.sync_averages()
    for v, average in zip(model.trainable_variables, optimizer._model_variables_moving_average):
        np.testing.assert_array_equal(v.numpy(), average.numpy())


def test_epochs_longer_than_a_pass_are_said_so(registry):
    lines = []
    train(tiny_run(epochs=1, steps_per_epoch=30, patience=0), registry, tiny_dataset(), echo=lines.append)
    assert "note: train.steps_per_epoch=30 is 2.5 passes over the 192 training reviews" in "\n".join(lines)


def test_a_decaying_schedule_spans_the_short_epochs_updates(registry, made_optimizers):
    run = tiny_run(epochs=5, steps_per_epoch=7, lr=0.05, lr_schedule="linear", patience=0)
    _, result = train(run, registry, tiny_dataset())
    optimizer, = made_optimizers
    assert len(result.history) == 5 and int(optimizer.iterations) == 5 * 7
    assert float(optimizer.learning_rate) == 0.0


def test_without_validation_data_every_epoch_runs_and_the_last_is_kept(registry):
    dataset = tiny_dataset()
    dataset.val = TinySplit(0, seed=1)  # val_fraction=0: all of train is trained on
    model, result = train(tiny_run(epochs=4, patience=1), registry, dataset)
    assert result.status == "completed" and len(result.history) == 4 and result.best_epoch == 4
    assert math.isnan(result.val["accuracy"]) and result.test["accuracy"] > 0.5


def test_weight_decay_is_decoupled(registry):
    # Same init and batch with and without decay: SGD's decoupled decay subtracts lr * wd * w.
    batch = next(TinySplit(16, seed=0).batches(16))
    after = {}
    for decay in (0.0, 0.5):
        model, _, before, _ = one_step(registry, tiny_run(optimizer="sgd", lr=0.1, weight_decay=decay), batch)
        after[decay] = weights_of(model)
    for plain, decayed, initial in zip(after[0.0], after[0.5], before):
        np.testing.assert_allclose(plain - decayed, 0.1 * 0.5 * initial, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("optimizer", ["adam", "lazy-adam"])
def test_xla_compiled_training_runs(registry, optimizer):
    run = tiny_run(epochs=1, jit=True, optimizer=optimizer)
    _, result = train(run, registry, tiny_dataset())
    assert result.status == "completed" and math.isfinite(result.history[0]["train_loss"])


def test_progress_and_lines_reach_the_callbacks_and_nothing_else(registry, capsys):
    bars, lines = [], []

    @contextlib.contextmanager
    def progress(length, label):
        bars.append([label, length, 0, ""])

        class Bar:
            def update(self, n, text=""):
                bars[-1][2] += n
                bars[-1][3] = text

        yield Bar()

    train(tiny_run(epochs=1), registry, tiny_dataset(), progress=progress, echo=lines.append)
    assert capsys.readouterr() == ("", "")  # the library prints nothing itself
    [(label, length, done, text)] = bars
    assert label == "epoch 1/1" and done == length > 0 and "loss" in text and "tok/s" in text
    assert len(lines) == 1 and lines[0].startswith("epoch 1: loss") and "val_acc" in lines[0]


def test_the_terminal_progress_goes_to_stderr_only(registry, capsys):
    from zoo_core.cli.progress import TerminalProgress, echo_err

    train(tiny_run(epochs=1), registry, tiny_dataset(), progress=TerminalProgress(24), echo=echo_err)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "epoch 1" in captured.err and "val_acc" in captured.err
    train(tiny_run(epochs=1), registry, tiny_dataset())
    assert capsys.readouterr().err == ""


def test_progress_true_is_refused_with_what_to_pass(registry):
    with pytest.raises(TypeError, match="Progress factory"):
        train(tiny_run(epochs=1), registry, tiny_dataset(), progress=True)


def test_result_serialises_to_plain_data(registry):
    _, result = train(tiny_run(epochs=1), registry, tiny_dataset())
    data = result.to_dict()
    assert RunSpec.from_dict(data["run"]) == dataclasses.replace(result.run)
    assert data["history"][0]["epoch"] == 1 and data["status"] == "completed"


@pytest.mark.parametrize("batching", ["padded", "bucket"])
def test_trains_on_the_data_pipeline(registry, tiny_imdb_archive, batching):
    from zoo_core.data import load_dataset

    data = DataConfig(source=str(tiny_imdb_archive), maxlen=30, batching=batching)
    dataset = load_dataset(data, registry.settings, progress=False)
    run = tiny_run(epochs=2, batch_size=8, data=data, patience=0)
    model, result = train(run, registry, dataset)
    assert result.status == "completed" and len(result.history) == 2
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.test == pytest.approx(evaluate(model, dataset.test, run), rel=1e-5)
    assert result.tokens_per_sec > 0


def test_a_deterministic_run_needs_determinism_turned_on_by_the_program(registry):
    from zoo_core.errors import ZooError
    from zoo_core.training import determinism_enabled

    if determinism_enabled():
        pytest.skip("determinism is on in this process already")
    with pytest.raises(ZooError, match=r"call zoo_core\.training\.enable_determinism\(\) once"):
        train(tiny_run(epochs=1, deterministic=True), registry, tiny_dataset())
