"""TensorBoard event files: the logger on its own, and every ranked run's curves read back by TensorBoard's reader."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import plugin_event_accumulator, plugin_event_multiplexer

from zoo_core import ranking
from zoo_core.data import load_dataset
from zoo_core.results import ResultsDB
from zoo_core.tensorboard import EPOCH_TAGS, STEP_TAGS, EventLogger, run_logdir

EVERY = 4  # step points every 4 optimizer steps
BATCH = 4
STEP_LOGS = {"train_loss": 0.5, "train_accuracy": 0.25, "grad_norm": 1.5, "learning_rate": 1e-3}


@pytest.fixture
def registry():
    """A registry of this test's own (its runs folder under tmp_path, unlike the shared one's), with the trap head."""
    from tests.trap_plugin import TrapSigmoidHead
    from zoo_core.registry import build_registry

    registry = build_registry()
    registry.register("head", TrapSigmoidHead, plugin="tests.trap_plugin")
    return registry


def read_scalars(logdir) -> dict[str, list[tuple[int, np.float32]]]:
    """``{tag: [(step, value), ...]}`` as TensorBoard's own reader loads the scalars in ``logdir``."""
    events = plugin_event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    events.Reload()
    out = {}
    for tag in events.Tags()["tensors"]:
        assert events.SummaryMetadata(tag).plugin_data.plugin_name == "scalars", tag  # on the Scalars dashboard
        out[tag] = [(e.step, tf.make_ndarray(e.tensor_proto)[()]) for e in events.Tensors(tag)]
    return out


def same_float32(written, recorded) -> bool:
    return bool(np.isnan(written) and math.isnan(recorded) or written == np.float32(recorded))


# -- the logger on its own ---------------------------------------------------------------------------
def test_the_logger_writes_scalars_that_tensorboard_reads_and_flushes_each_epoch(tmp_path):
    logger = EventLogger(tmp_path / "run", every_steps=2)
    logger.on_step(2, STEP_LOGS)
    epoch_logs = {"epoch": 1, "train_loss": 0.7, "train_accuracy": 0.5, "val_loss": 0.69, "val_accuracy": 0.625,
                  "val_auc": math.nan, "learning_rate": 1e-3, "seconds": 1.25, "tokens_per_sec": 3e4, "step": 3}
    logger.on_epoch(1, epoch_logs)
    # Flushed at the epoch's end: readable while the logger is still open.
    scalars = read_scalars(tmp_path / "run")
    assert set(scalars) == {f"epoch/{t}" for t in EPOCH_TAGS} | {f"step/{t}" for t in STEP_TAGS}
    assert all(scalars[f"step/{k}"] == [(2, np.float32(v))] for k, v in STEP_LOGS.items())
    for key in EPOCH_TAGS:
        [(step, value)] = scalars[f"epoch/{key}"]
        assert step == 1 and same_float32(value, epoch_logs[key])
    logger.close()
    logger.close()  # a second close does nothing


def test_an_exception_still_closes_the_file_with_every_point_in_it(tmp_path):
    with pytest.raises(RuntimeError), EventLogger(tmp_path / "run", every_steps=1) as logger:
        logger.on_step(1, STEP_LOGS)  # not flushed by an epoch: only closing writes it out for sure
        raise RuntimeError("training broke")
    assert read_scalars(tmp_path / "run")["step/train_loss"] == [(1, np.float32(0.5))]


def test_every_steps_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        EventLogger(tmp_path / "run", every_steps=0)


def test_run_folders_are_one_level_deep_and_named_for_the_run(tmp_path):
    named = run_logdir(tmp_path, "gru-mean", 3, "0123abcd4567")
    assert named == tmp_path / "tensorboard" / "gru-mean-seed3-0123abcd4567"
    combo = run_logdir(tmp_path, "embedding/gru/mean-states/sigmoid1", 0, "ab12")
    assert combo.name == "embedding_gru_mean-states_sigmoid1-seed0-ab12" and combo.parent == tmp_path / "tensorboard"
    assert run_logdir(tmp_path, "../we ird:name*", 1, "id").name == "we_ird_name-seed1-id"


# -- every ranked run --------------------------------------------------------------------------------
def _runs(registry, archive, epochs=2, extra=()):
    flags = {"limit": 40, "epochs": epochs, "maxlen": 20, "source": str(archive)}
    items = ["cell.units=4", "encoder.dim=4", f"train.batch_size={BATCH}", "train.patience=0", *extra]
    return ranking.plan_runs(registry, ["elman-last"], None, [0], items, flags)


def _train_size(registry, run) -> int:
    return len(load_dataset(run.data, registry.settings, seed=0, progress=False).train)


def _runs_dir(db):
    """Where rank saves runs by default: ``runs/`` beside the results database."""
    return Path(db.path).parent / "runs"


def _logdir_of(db, record):
    return run_logdir(_runs_dir(db), record.label, record.seed, record.id)


def test_a_ranked_run_writes_its_recorded_curves_and_step_means(registry, tiny_imdb_archive, tmp_path):
    runs = _runs(registry, tiny_imdb_archive, extra=["train.lr_schedule=cosine"])
    db = ResultsDB(tmp_path / "results.sqlite")
    outcome = ranking.rank(runs, registry, db, echo=lambda line: None, tensorboard_every=EVERY)
    assert len(outcome.trained) == 1
    [record] = db.runs()
    runs_dir = _runs_dir(db)

    # `tensorboard --logdir <runs folder>` finds the run by its folder's name, and nothing else.
    multiplexer = plugin_event_multiplexer.EventMultiplexer().AddRunsFromDirectory(str(runs_dir)).Reload()
    assert list(multiplexer.Runs()) == [f"tensorboard/elman-last-seed0-{record.id}"]

    scalars = read_scalars(_logdir_of(db, record))
    assert len(record.curves) == 2
    for key in EPOCH_TAGS:
        if key == "learning_rate":
            continue
        points = scalars[f"epoch/{key}"]
        assert [step for step, _ in points] == [1, 2]
        assert all(same_float32(value, row[key]) for (_, value), row in zip(points, record.curves)), key

    size = _train_size(registry, runs[0])
    per_epoch = -(-size // BATCH)
    total = 2 * per_epoch
    assert size % BATCH and per_epoch % EVERY  # a short last batch, and step means that span two epochs
    expected_steps = list(range(EVERY, total + 1, EVERY))
    assert all([step for step, _ in scalars[f"step/{t}"]] == expected_steps for t in STEP_TAGS)
    # Each step point is a mean over the reviews of its steps: a whole number of them were right.
    batch_sizes = [BATCH] * (per_epoch - 1) + [size - BATCH * (per_epoch - 1)]
    batch_sizes *= 2
    for step, value in scalars["step/train_accuracy"]:
        reviews = sum(batch_sizes[step - EVERY:step])
        assert value * reviews == pytest.approx(round(value * reviews), abs=1e-4)

    # The cosine schedule decays the rate to 0 by the last step; each point is the rate of the next update.
    def cosine(step):
        return runs[0].train.lr * 0.5 * (1 + math.cos(math.pi * step / total))

    assert [value for _, value in scalars["epoch/learning_rate"]] == pytest.approx(
        [cosine(per_epoch), 0.0], rel=1e-5, abs=1e-9)
    assert [value for _, value in scalars["step/learning_rate"]] == pytest.approx(
        [cosine(step) for step in expected_steps], rel=1e-5, abs=1e-9)


def test_a_diverged_run_leaves_its_curves_up_to_the_nan(registry, tiny_imdb_archive, tmp_path):
    [run] = _runs(registry, tiny_imdb_archive)
    per_epoch = -(-_train_size(registry, run) // BATCH)
    # Loss calls: epoch 1's steps, one validation batch, then epoch 2: NaN at its step 4.
    spec = run.model.replace(head="trap-sigmoid1", name="").with_params("head", nan_step=per_epoch + 1 + 4)
    db = ResultsDB(tmp_path / "results.sqlite")
    ranking.rank([dataclasses.replace(run, model=spec)], registry, db, echo=lambda line: None,
                 tensorboard_every=EVERY)
    [record] = db.runs()
    assert record.status == "diverged" and "epoch 2, step 4" in record.message
    scalars = read_scalars(_logdir_of(db, record))
    assert [step for step, _ in scalars["epoch/val_loss"]] == [1]
    assert [step for step, _ in scalars["step/train_loss"]] == list(range(EVERY, per_epoch + 4, EVERY))


def test_an_interrupted_run_leaves_its_finished_epochs_and_steps(registry, tiny_imdb_archive, tmp_path):
    from zoo_core.training import train

    [run] = _runs(registry, tiny_imdb_archive)
    per_epoch = -(-_train_size(registry, run) // BATCH)
    calls = 0

    def stop_in_epoch_2() -> bool:
        nonlocal calls
        calls += 1  # once before each training and each evaluation batch
        return calls > per_epoch + 1 + 5  # epoch 1, its validation batch, 5 steps of epoch 2

    def train_until_stopped(run, *args, should_stop, **kwargs):
        return train(run, *args, should_stop=stop_in_epoch_2, **kwargs)

    db = ResultsDB(tmp_path / "results.sqlite")
    outcome = ranking.rank([run], registry, db, echo=lambda line: None,
                           train=train_until_stopped, tensorboard_every=EVERY)
    [record] = db.runs()
    assert outcome.interrupted and record.status == "interrupted"
    scalars = read_scalars(_logdir_of(db, record))
    assert [step for step, _ in scalars["epoch/train_accuracy"]] == [1]
    assert [step for step, _ in scalars["step/grad_norm"]] == list(range(EVERY, per_epoch + 6, EVERY))


def test_rank_can_write_no_events(registry, tiny_imdb_archive, tmp_path):
    runs = _runs(registry, tiny_imdb_archive, epochs=1)
    db = ResultsDB(tmp_path / "results.sqlite")
    ranking.rank(runs, registry, db, echo=lambda line: None, tensorboard_every=None)
    assert _runs_dir(db).is_dir() and not (_runs_dir(db) / "tensorboard").exists()
