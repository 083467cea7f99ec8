"""TensorBoard event files of a training run, written with TensorFlow's own ``tf.summary``.

:class:`EventLogger` is a :class:`zoo_core.training.TrainObserver`: given to
:func:`zoo_core.training.train`, it writes the run's learning curves as
scalars that ``tensorboard --logdir`` shows, in one folder per run
(:func:`run_logdir`), so that pointing TensorBoard at the runs folder shows
every ranked run:

- ``epoch/train_loss``, ``epoch/train_accuracy``, ``epoch/val_loss``,
  ``epoch/val_accuracy``, ``epoch/val_auc``, ``epoch/learning_rate``,
  ``epoch/seconds``, ``epoch/tokens_per_sec``: after each epoch, at step =
  the epoch number (the values of the run's recorded history);
- ``step/train_loss``, ``step/train_accuracy``, ``step/grad_norm``,
  ``step/learning_rate``: every ``every_steps`` optimizer steps, at step = the
  global optimizer step, each the mean over those steps.

TensorFlow is imported when a logger is made, not with this module.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: Optimizer steps between two ``step/*`` points, unless the caller says otherwise.
EVERY_STEPS = 100
#: The folder under the runs folder that holds one event folder per run.
FOLDER = "tensorboard"
#: History keys written as ``epoch/<key>``, in this order.
EPOCH_TAGS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_auc", "learning_rate", "seconds",
              "tokens_per_sec")
#: ``on_step`` keys written as ``step/<key>``, in this order.
STEP_TAGS = ("train_loss", "train_accuracy", "grad_norm", "learning_rate")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")
_MAX_LABEL = 80  # characters of the model label kept in a folder name


def run_logdir(runs_dir: str | Path, label: str, seed: int, run_id: str) -> Path:
    """Where a run's event files go: ``<runs_dir>/tensorboard/<label>-seed<seed>-<run id>``.

    TensorBoard lists a run by this folder's name. A combination label's
    slashes (``embedding/gru/last/sigmoid1``) become underscores and any other
    character unsafe in a file name an underscore, so the folder is one level
    deep on every system; the run id keeps names of reruns apart.

    Args:
        runs_dir: The runs folder (``Settings.runs_dir``).
        label: The model's label (``ModelSpec.label``).
        seed: The run's seed.
        run_id: The results database's id of the run.
    """
    name = _UNSAFE.sub("_", label)[:_MAX_LABEL].strip("._") or "model"
    return Path(runs_dir) / FOLDER / f"{name}-seed{seed}-{_UNSAFE.sub('_', run_id)}"


def for_run(runs_dir: str | Path, run, run_id: str, every_steps: int = EVERY_STEPS) -> "EventLogger":
    """The :class:`EventLogger` of run ``run_id`` of ``run`` (a RunSpec), in its :func:`run_logdir`."""
    return EventLogger(run_logdir(runs_dir, run.model.label, run.seed, run_id), every_steps)


class EventLogger:
    """Writes a training run's curves as TensorBoard scalars (see the module's docstring for the tags).

    Use it as a context manager, so that the events are flushed and the file
    closed however training ends (finished, diverged, interrupted, raised).
    Each epoch's points are flushed to disk at once, so an interrupted run, or
    one still training, leaves a readable file.

    Args:
        logdir: The run's event folder (made if missing), e.g. from :func:`run_logdir`.
        every_steps: Optimizer steps between two ``step/*`` points (>= 1).

    Raises:
        ValueError: ``every_steps`` below 1.
        tf.errors.OpError: the folder cannot be made.
    """

    def __init__(self, logdir: str | Path, every_steps: int = EVERY_STEPS):
        if int(every_steps) < 1:
            raise ValueError(f"every_steps must be at least 1, not {every_steps}")
        import tensorflow as tf

        self.logdir = Path(logdir)
        self.every_steps = int(every_steps)
        self._tf = tf
        self._writer = tf.summary.create_file_writer(str(self.logdir))

    def _write(self, prefix: str, keys: tuple[str, ...], step: int, logs: dict[str, Any]) -> None:
        tf = self._tf
        with self._writer.as_default(step=int(step)):
            for key in keys:
                if key in logs:
                    tf.summary.scalar(f"{prefix}/{key}", float(logs[key]))

    def on_step(self, step: int, logs: dict[str, float]) -> None:
        """Writes ``step/*`` at ``step`` (flushed with the epoch, or by TensorFlow's own timer)."""
        self._write("step", STEP_TAGS, step, logs)

    def on_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """Writes ``epoch/*`` at ``epoch`` and flushes everything written so far."""
        self._write("epoch", EPOCH_TAGS, epoch, logs)
        self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the event file; later calls do nothing."""
        self._writer.close()

    def __enter__(self) -> "EventLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
