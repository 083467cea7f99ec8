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


# -- reading event files back (no TensorFlow: `zoo report` draws what training recorded) ----------------
def find_logdirs(runs_dirs, run_id: str) -> list[Path]:
    """The event folders of run ``run_id`` under ``<runs_dir>/tensorboard/`` of each of ``runs_dirs``.

    A folder's name ends in ``-<run id>`` (:func:`run_logdir`); the model's
    label before it is not needed. Folders that do not exist are skipped.
    """
    found: list[Path] = []
    suffix = "-" + _UNSAFE.sub("_", run_id)
    for runs_dir in runs_dirs:
        parent = Path(runs_dir) / FOLDER
        try:
            children = sorted(parent.iterdir()) if parent.is_dir() else []
        except OSError:
            continue
        found += [c for c in children if c.name.endswith(suffix) and c.is_dir() and c not in found]
    return found


def read_scalars(logdir: str | Path, tags: tuple[str, ...] | None = None) -> dict[str, list[tuple[int, float]]]:
    """The scalars of every event file in ``logdir``: ``{tag: [(step, value), ...]}``, sorted by step.

    Reads the TFRecord framing by hand (``uint64 length``, ``uint32`` CRC,
    the record, ``uint32`` CRC) and parses each record with TensorBoard's
    ``Event`` protobuf, without TensorFlow. A record cut short (a run still
    writing, or killed mid-write) ends that file's reading; an unreadable
    file or record is skipped: the curves are a picture, not a measurement.

    Args:
        logdir: A run's event folder (:func:`run_logdir`).
        tags: Only these tags (default: every scalar tag).
    """
    import struct

    from tensorboard.compat.proto import event_pb2

    out: dict[str, dict[int, float]] = {}
    for file in sorted(Path(logdir).glob("events.out.tfevents.*")):
        try:
            data = file.read_bytes()
        except OSError:
            continue
        at = 0
        while at + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, at)
            start, end = at + 12, at + 12 + length
            if end + 4 > len(data):
                break
            at = end + 4
            event = event_pb2.Event()
            try:
                event.ParseFromString(data[start:end])
            except Exception:  # noqa: BLE001 - a garbled record: skip it
                continue
            for value in event.summary.value:
                if tags is not None and value.tag not in tags:
                    continue
                number = _scalar(value)
                if number is not None:
                    out.setdefault(value.tag, {})[int(event.step)] = number
    return {tag: sorted(points.items()) for tag, points in sorted(out.items())}


def _scalar(value) -> float | None:
    """A summary value's number: ``tf.summary.scalar`` writes a float32 tensor, TF1 a ``simple_value``."""
    import struct

    if value.HasField("tensor"):
        tensor = value.tensor
        if tensor.float_val:
            return float(tensor.float_val[0])
        if tensor.double_val:
            return float(tensor.double_val[0])
        content = tensor.tensor_content
        if len(content) == 4:
            return struct.unpack("<f", content)[0]
        if len(content) == 8:
            return struct.unpack("<d", content)[0]
        return None
    if value.HasField("simple_value"):
        return float(value.simple_value)
    return None
