"""Where runs train: in this process (:class:`LocalExecutor`) or as Ray tasks (:class:`RayExecutor`).

An executor trains :class:`Job` s and hands each one back as an
:class:`Outcome`; it records nothing. The driver (:func:`zoo_core.ranking.rank`)
claims each run in the results database, submits it, and records every
outcome as it comes back, through the one recording path
(:func:`zoo_core.ranking.record_trained`), so the database and the runs folder
stay in the driver's process whatever trains the runs::

    executor.submit(job, dataset)           # while executor.free_slots() > 0
    for outcome in executor.wait(should_stop):
        ...                                 # record outcome.trained, or outcome.error as failed
    executor.cancel()                       # on Ctrl-C: the jobs not handed back, to mark interrupted
    executor.close()

:class:`LocalExecutor` trains one job at a time, in :meth:`~Executor.wait`,
with progress bars and per-epoch lines; :class:`RayExecutor`
(:mod:`zoo_core.executors.ray_executor`, which imports Ray when it is made)
runs as many as the cluster's resources allow at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo_core.config import RunSpec
from zoo_core.progress import Echo, Progress

#: The executors ``zoo rank --executor`` offers.
EXECUTORS = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class Job:
    """One claimed run to train.

    Attributes:
        index: Its 1-based place in the plan (for the progress lines).
        run: What to train.
        run_id: Its id in the results database (claimed by the driver).
        logdir: Where its TensorBoard event files go on the driver
            (:func:`zoo_core.tensorboard.run_logdir`); None: none are written.
        every_steps: Optimizer steps between two ``step/*`` points.
        score_test: Score the kept weights on the test split; False for a
            tuning trial (recorded ``trial`` or ``pruned``, never ``finished``).
    """

    index: int
    run: RunSpec
    run_id: str
    logdir: Path | None = None
    every_steps: int = 100
    score_test: bool = True  # False for a tuning trial: the test split is never scored


@dataclasses.dataclass
class Trained:
    """What training one job produced, in the driver's process.

    Attributes:
        model: The trained :class:`zoo_core.model.Classifier` (the weights it kept).
        result: Its :class:`zoo_core.training.TrainResult`.
        seconds: Wall time of its training.
        provenance: Where it trained (:func:`zoo_core.results.provenance` of
            that process), or None for this process.
    """

    model: Any
    result: Any
    seconds: float
    provenance: dict[str, str] | None = None


@dataclasses.dataclass
class Outcome:
    """A job handed back: trained, or failed with ``error``.

    Attributes:
        job: The job.
        trained: What it produced, or None when training raised.
        error: What training raised (after the executor's retries), or None.
        message: ``error`` in one line (``"TypeName: text"``), recorded with the failed run.
        detail: Its traceback, for the terminal (empty for a :class:`zoo_core.errors.ZooError`).
    """

    job: Job
    trained: Trained | None = None
    error: BaseException | None = None
    message: str = ""
    detail: str = ""


def failure(job: Job, error: BaseException, detail: str = "") -> Outcome:
    """The :class:`Outcome` of a job whose training raised ``error``."""
    from zoo_core.errors import ZooError

    message = f"{type(error).__name__}: {error}".replace("\n", " ")
    return Outcome(job, error=error, message=message, detail="" if isinstance(error, ZooError) else detail)


class Executor:
    """Trains jobs and hands them back; the interface :func:`zoo_core.ranking.rank` drives.

    Use it as a context manager (:meth:`close` on exit).
    """

    #: Whether several jobs train at once (the driver then names the run on each outcome's line).
    parallel = False

    def slots(self) -> int:
        """How many jobs can train at once now (at least 1)."""
        return 1

    def free_slots(self) -> int:
        """How many more jobs to submit now: :meth:`slots` less those submitted and not handed back."""
        return self.slots() - self.busy()

    def busy(self) -> int:
        """Jobs submitted and not handed back yet."""
        raise NotImplementedError

    def submit(self, job: Job, dataset: Any) -> None:
        """Queues ``job`` to train on ``dataset`` (a :class:`zoo_core.data.Dataset`)."""
        raise NotImplementedError

    def wait(self, should_stop: Callable[[], bool]) -> list[Outcome]:
        """Blocks until at least one job is done, and hands back every job done by then.

        Returns an empty list when ``should_stop()`` became true first, or
        when nothing was submitted.
        """
        raise NotImplementedError

    def cancel(self) -> list[Job]:
        """Stops the jobs not handed back yet (their work is lost) and returns them."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases what the executor started."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def event_logger(logdir: str | Path | None, every_steps: int):
    """A :class:`zoo_core.tensorboard.EventLogger` writing to ``logdir`` (a context manager), or a stand-in
    giving None when ``logdir`` is None."""
    if logdir is None:
        return contextlib.nullcontext()
    from zoo_core.tensorboard import EventLogger

    return EventLogger(logdir, every_steps)


def train_job(job: Job, registry, dataset, *, train: Callable | None = None, logdir: str | Path | None = None,
              progress: Progress | None = None, echo: Echo | None = None,
              should_stop: Callable[[], bool] = lambda: False,
              on_epoch: Callable[[int, dict], None] | None = None) -> Trained:
    """Trains ``job.run`` on ``dataset`` in this process, writing its TensorBoard events to ``logdir``.

    The one training step of every executor: :class:`LocalExecutor` calls it
    with ``logdir=job.logdir``, a Ray worker with a folder of its own whose
    files it sends back.

    Args:
        train: A stand-in for :func:`zoo_core.training.train` (tests), or a wrapper of it.
        logdir: The event folder; None: no events.
        progress, echo, should_stop: As :func:`zoo_core.training.train` takes them.
        on_epoch: Called after each finished epoch with training's
            :meth:`zoo_core.training.TrainObserver.on_epoch` arguments; it may
            raise :class:`zoo_core.training.EndRun` to end the run there (a
            tuner pruning it).

    Raises:
        Exception: whatever training raised.
    """
    if train is None:
        from zoo_core.training import train
    started = time.monotonic()
    with event_logger(logdir, job.every_steps) as observer:
        if on_epoch is not None:
            observer = EpochHook(observer, on_epoch)
        # Only a trial passes score_test, so stand-ins for train() need not know it.
        model, result = train(job.run, registry, dataset, progress=progress, echo=echo, should_stop=should_stop,
                              observer=observer, **({} if job.score_test else {"score_test": False}))
    return Trained(model, result, time.monotonic() - started)


class EpochHook:
    """A :class:`zoo_core.training.TrainObserver` that adds ``on_epoch`` to another observer (or to none).

    The inner observer keeps its own step reports; without one, step reports
    never fall due, so they cost nothing.
    """

    def __init__(self, inner, on_epoch: Callable[[int, dict], None]):
        self.inner, self.hook = inner, on_epoch
        self.every_steps = inner.every_steps if inner is not None else 2**62

    def on_step(self, step: int, logs: dict) -> None:
        if self.inner is not None:
            self.inner.on_step(step, logs)

    def on_epoch(self, epoch: int, logs: dict) -> None:
        if self.inner is not None:
            self.inner.on_epoch(epoch, logs)  # the epoch's curves are written before a hook may end the run
        self.hook(epoch, logs)


class LocalExecutor(Executor):
    """Trains one job at a time in this process, when the driver waits for it.

    Training shows its per-epoch bars (``progress``) and lines (``echo``),
    stops between batches on ``should_stop()`` (the run then comes back
    ``interrupted`` with the weights it had), and writes its TensorBoard
    events straight into ``job.logdir``, so TensorBoard follows a run as it trains.

    Args:
        registry: Builds the models.
        train: A stand-in for :func:`zoo_core.training.train` (tests), or a wrapper of it.
        progress, echo: Training's bars and lines; None: none.
    """

    def __init__(self, registry, *, train: Callable | None = None, progress: Progress | None = None,
                 echo: Echo | None = None):
        self.registry, self.train, self.progress, self.echo = registry, train, progress, echo
        self._queue: list[tuple[Job, Any]] = []

    def busy(self) -> int:
        return len(self._queue)

    def submit(self, job: Job, dataset: Any) -> None:
        self._queue.append((job, dataset))

    def wait(self, should_stop: Callable[[], bool]) -> list[Outcome]:
        """Trains the oldest queued job now; a ``KeyboardInterrupt`` in training propagates (the job stays queued).

        An exception in training comes back as a failed :class:`Outcome`.
        """
        if not self._queue or should_stop():
            return []
        job, dataset = self._queue[0]
        try:
            trained = train_job(job, self.registry, dataset, train=self.train, logdir=job.logdir,
                                progress=self.progress, echo=self.echo, should_stop=should_stop)
        except Exception as err:  # noqa: BLE001 - handed back, recorded failed by the driver
            import traceback

            self._queue.pop(0)
            return [failure(job, err, "".join(traceback.format_exception(err)).rstrip("\n"))]
        self._queue.pop(0)
        return [Outcome(job, trained)]

    def cancel(self) -> list[Job]:
        jobs = [job for job, _ in self._queue]
        self._queue.clear()
        return jobs


def make_executor(name: str, registry, **options) -> Executor:
    """The executor ``zoo rank --executor NAME`` stands for.

    Args:
        name: One of :data:`EXECUTORS`.
        registry: Builds the models (for Ray: made by :func:`zoo_core.registry.build_registry`).
        **options: The executor's own keyword arguments (see :class:`LocalExecutor`,
            :class:`zoo_core.executors.ray_executor.RayExecutor`).

    Raises:
        ZooError: an unknown name; for Ray, see ``RayExecutor``.
    """
    from zoo_core.errors import ZooError

    if name == "local":
        return LocalExecutor(registry, **options)
    if name == "ray":
        from zoo_core.executors.ray_executor import RayExecutor

        return RayExecutor(registry, **options)
    raise ZooError(f"unknown executor {name!r} (executors: {', '.join(EXECUTORS)})")
