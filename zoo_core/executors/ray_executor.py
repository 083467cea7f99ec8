"""Runs trained as Ray tasks, on this machine or on a cluster (``zoo rank --executor ray``; docs/CLUSTER.md).

What travels where:

- the driver prepares each dataset once and puts it in Ray's object store
  (:func:`ray.put`); a task receives it from there, so workers never read the
  data files (they need rnn-zoo and the plugins installed, not the data);
- a task receives its :class:`~zoo_core.executors.Job` and the
  :class:`~zoo_core.registry.RegistrySource` it builds its registry from
  (once per worker process), trains with :func:`~zoo_core.executors.train_job`,
  and sends back the :class:`~zoo_core.training.TrainResult`, the kept weights
  (NumPy arrays, in the order of ``model.variables``), its TensorBoard event
  files (bytes) and where it trained (:func:`zoo_core.results.provenance`);
- the driver rebuilds the classifier from those weights and records the run
  in its own results database and runs folder, as a local run is recorded.

A task that raises, or whose worker or node dies, is retried (``retries``
times, by Ray) and then handed back as failed with its error. Ray is imported
when a :class:`RayExecutor` is made, never by ``zoo --help``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import signal
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo_core.errors import ZooError
from zoo_core.executors import Executor, Job, Outcome, Trained, failure, train_job

#: Times Ray runs a task again after it raised or its worker died (so 1 + RETRIES tries in all).
RETRIES = 2
#: Seconds between two looks at a stop request while waiting for tasks.
POLL_S = 0.25
INSTALL_HINT = ('--executor ray needs Ray, which is not installed: pip install -e ".[ray]" in the rnn-zoo checkout '
                '(or pip install "ray>=2.9")')


def ray_installed() -> bool:
    """Whether Ray can be imported here, found without importing it (which takes a second)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def require_ray():
    """The ``ray`` module.

    Raises:
        ZooError: Ray is not installed (one line saying how to install it).
    """
    if not ray_installed():
        raise ZooError(INSTALL_HINT)
    try:
        import ray
    except ImportError:
        raise ZooError(INSTALL_HINT) from None
    return ray


class RayExecutor(Executor):
    """Trains each job as a Ray task with ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs.

    Without ``address`` it starts a local Ray instance with this machine's
    CPUs (quietly: no dashboard, workers' output kept in Ray's log files) and
    stops it on :meth:`close`; with one it connects to that cluster
    (``ray.init(address=...)``, e.g. ``auto`` or ``HEAD:6379``) and leaves it
    running. If Ray is already initialised in this process (a notebook, the
    tests), that instance is used and left running. As many jobs run at once
    as the cluster's CPUs (and GPUs) hold, re-read at each submission, so
    nodes that join are used.

    Args:
        registry: Built by :func:`zoo_core.registry.build_registry`; workers
            build the same one from its :attr:`~zoo_core.registry.Registry.source`.
        address: The cluster's address; None: a local instance.
        cpus_per_run: CPUs each task holds (> 0; fractions allowed).
        gpus_per_run: GPUs each task holds (>= 0).
        retries: Times a task that raised, or whose worker died, is run again.

    Raises:
        ZooError: Ray is not installed, the cluster cannot be reached, the
            registry was built by hand, or a value is out of range.
    """

    parallel = True

    def __init__(self, registry, *, address: str | None = None, cpus_per_run: float = 1.0,
                 gpus_per_run: float = 0.0, retries: int = RETRIES):
        if getattr(registry, "source", None) is None:
            raise ZooError("the Ray executor needs a registry made by zoo_core.registry.build_registry "
                           "(workers build the same one)")
        if not cpus_per_run > 0 or gpus_per_run < 0:
            raise ZooError(f"each run needs more than 0 CPUs and at least 0 GPUs, not {cpus_per_run:g} "
                           f"and {gpus_per_run:g}")
        ray = require_ray()
        self.registry, self.cpus, self.gpus = registry, float(cpus_per_run), float(gpus_per_run)
        self._ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            self._init(address)
        self._task = ray.remote(_run_task).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=int(retries),
                                                   retry_exceptions=True)
        self._running: dict[Any, tuple[Job, Any]] = {}  # ObjectRef -> (job, dataset)
        self._datasets: dict[int, tuple[Any, Any]] = {}  # id(dataset) -> (dataset, its ObjectRef)
        try:
            self.slots()  # a cluster too small for one run: one line now, before any claim
        except ZooError:
            self.close()
            raise

    def _init(self, address: str | None) -> None:
        ray = self._ray
        handlers = _signal_handlers()
        try:
            ray.init(address=address or "local", num_cpus=None if address else os.cpu_count(),
                     include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise ZooError(f"cannot start or reach {where}: {str(err).strip().splitlines()[0]}") from None
        finally:
            _restore(handlers)  # ray.init sets its own SIGTERM handler; Ctrl-C and SIGTERM stay zoo's
        self._owns_ray = True

    # -- Executor -------------------------------------------------------------------------------------
    def slots(self) -> int:
        """Runs that fit the cluster at once: its CPUs over ``cpus_per_run`` (and GPUs over ``gpus_per_run``).

        Raises:
            ZooError: not even one run fits.
        """
        resources = self._ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        fits = math.floor(cpus / self.cpus + 1e-9)
        if self.gpus:
            fits = min(fits, math.floor(gpus / self.gpus + 1e-9))
        if fits < 1:
            raise ZooError(f"each run asks for {self.cpus:g} CPU(s) and {self.gpus:g} GPU(s) (--cpus-per-run, "
                           f"--gpus-per-run), but the Ray cluster has {cpus:g} CPU(s) and {gpus:g} GPU(s) in all")
        return fits

    def busy(self) -> int:
        return len(self._running)

    def submit(self, job: Job, dataset: Any) -> None:
        """Starts ``job`` as a task; the dataset goes into the object store once, on its first job."""
        if id(dataset) not in self._datasets:
            self._datasets[id(dataset)] = (dataset, self._ray.put(dataset))
        ref = self._task.remote(job, self._datasets[id(dataset)][1], self.registry.source)
        self._running[ref] = (job, dataset)

    def wait(self, should_stop: Callable[[], bool]) -> list[Outcome]:
        """Waits for tasks (looking at ``should_stop`` every :data:`POLL_S` s); hands back all that ended."""
        ray = self._ray
        while self._running and not should_stop():
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=POLL_S)
            if ready:
                ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
                return [self._outcome(ref) for ref in ready]
        return []

    def cancel(self) -> list[Job]:
        """Cancels every task not handed back (a running one's worker is killed); returns their jobs."""
        jobs = []
        for ref, (job, _) in list(self._running.items()):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - it ended meanwhile, or the cluster is gone: nothing left to stop
                pass
            jobs.append(job)
        self._running.clear()
        return jobs

    def close(self) -> None:
        """Drops the datasets from the object store and stops the local Ray instance this executor started."""
        self._datasets.clear()
        if self._owns_ray and self._ray.is_initialized():
            handlers = _signal_handlers()
            try:
                self._ray.shutdown()
            finally:
                _restore(handlers)
        self._owns_ray = False

    # -- a task's result, on the driver ---------------------------------------------------------------
    def _outcome(self, ref) -> Outcome:
        job, dataset = self._running.pop(ref)
        ray = self._ray
        try:
            sent = ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # the task raised, every try
            cause = getattr(err, "cause", None) or err
            return failure(job, cause, str(err).strip())
        except ray.exceptions.RayError as err:  # its worker or node died every try, or it was cancelled
            return failure(job, err, str(err).strip())
        try:
            model = rebuild_model(job.run, self.registry, len(dataset.vocab), sent["weights"])
            if job.logdir is not None:
                write_files(job.logdir, sent["events"])
        except Exception as err:  # noqa: BLE001 - e.g. another rnn-zoo on the worker: this run fails, not the rank
            return failure(job, err, traceback.format_exc().rstrip("\n"))
        return Outcome(job, Trained(model, sent["result"], sent["seconds"], sent["provenance"]))


def rebuild_model(run, registry, vocab_size: int, weights: list) -> Any:
    """The classifier of ``run`` holding ``weights`` (arrays in the order of its ``variables``).

    Raises:
        ZooError: the weights do not fit the model built here.
    """
    from zoo_core.model import Classifier

    model = Classifier(run.model, registry, vocab_size)
    variables = model.variables
    shapes = [tuple(v.shape) for v in variables]
    if shapes != [tuple(w.shape) for w in weights]:
        raise ZooError(f"the weights sent back for {run.model.label} do not fit the model built here "
                       f"({len(weights)} arrays for {len(variables)} variables): is the same rnn-zoo installed "
                       "on the workers?")
    for variable, value in zip(variables, weights):
        variable.assign(value)
    return model


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Writes ``{relative path: bytes}`` under ``folder`` (made if missing); paths leaving it are refused."""
    folder = Path(folder)
    for relative, data in files.items():
        path = folder / relative
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise ZooError(f"refused to write {relative!r} outside {folder}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# -- on the worker -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _registry(source):
    """The registry ``source`` describes, built once per worker process (plugins import once)."""
    return source.build()


def _run_task(job: Job, dataset, source) -> dict[str, Any]:
    """The Ray task: trains ``job`` here and returns what the driver records.

    Turns on TensorFlow's op determinism first when the run asks for it, as
    ``zoo rank`` does in its own process (:func:`zoo_core.training.enable_determinism`),
    so a Ray rank gives the figures a local one gives.
    """
    from zoo_core import training
    from zoo_core.results import provenance

    if job.run.train.deterministic:
        training.enable_determinism()  # process-wide in this worker; a mixed plan is refused by the driver
    registry = _registry(source)
    with tempfile.TemporaryDirectory(prefix="zoo-events-") as tmp:
        trained = train_job(job, registry, dataset, logdir=tmp if job.logdir is not None else None)
        events = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    return {"result": trained.result, "weights": [v.numpy() for v in trained.model.variables], "events": events,
            "seconds": trained.seconds, "provenance": provenance()}


def _signal_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        if handler is not None and signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)
