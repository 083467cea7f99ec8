"""Recording runs, and the rank loop: train many (spec, seed) runs under identical settings.

:func:`record_run` is the one path by which a run is trained and recorded
(``zoo train`` and ``zoo rank`` alike): claim it in the results database,
train it (:func:`zoo_core.executors.train_job`), save its weights under
``<runs folder>/<run id>`` and record its result (:func:`record_trained`).
:func:`plan_runs` turns patterns and presets into RunSpecs; :func:`rank`
records the ones the results database has not seen finish, claiming each
atomically so two ``zoo rank`` processes can share the work, and trains them
through an executor (:mod:`zoo_core.executors`: here, or as Ray tasks) whose
results it records with the same :func:`record_trained`.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo_core.config import KINDS, ModelSpec, RunSpec
from zoo_core.errors import ZooError
from zoo_core.executors import Executor, Job, LocalExecutor, Trained, train_job
from zoo_core.progress import Echo, Progress, echo_or_silent
from zoo_core.results import DIVERGED, FAILED, INTERRUPTED, RUNNING, ResultsDB
from zoo_core.specs import build_run_spec, parse_set_values
from zoo_core.tensorboard import EVERY_STEPS, run_logdir

DEFAULT_PRESET = "quick"
# Every run reads the data prepared with this seed (the --limit subset and the validation split), whatever
# its own seed: runs of every seed, ranked or trained alone, then see the same reviews and compare fairly.
DATA_SEED = 0


# -- planning -------------------------------------------------------------------
def _preset_set_values(section: str, values: Mapping[str, Any]) -> list[str]:
    """A preset's ``[presets.X.data]`` table as ``--set data.key=value`` items."""
    return [f"{section}.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]


def _applies(registry, spec: ModelSpec, item: str) -> bool:
    """Whether ``--set kind.name=value`` names a hyperparameter of ``spec``'s component of that kind."""
    section, _, rest = item.partition(".")
    if section not in KINDS:
        return True  # data.* and train.* apply to every run
    name = rest.partition("=")[0].strip()
    cls = registry.get(section, spec.component(section)).obj
    return any(p.name == name for p in cls.hparams)


def _models(registry, patterns: Sequence[str], preset: str | None) -> tuple[list[ModelSpec], list[str]]:
    """The model specs to rank and the preset's ``--set`` items."""
    specs: list[ModelSpec] = []
    preset_sets: list[str] = []
    if preset is not None or not patterns:  # an empty --preset is an error, not the default
        chosen = registry.preset(DEFAULT_PRESET if preset is None else preset)
        specs.extend(registry.expand_preset(chosen))
        preset_sets = _preset_set_values("data", chosen.data) + _preset_set_values("train", chosen.train)
    for pattern in patterns:
        specs.extend(registry.models_matching(pattern))
    return specs, preset_sets


def plan_runs(registry, patterns: Sequence[str], preset: str | None, seeds: Iterable[int],
              set_values: Sequence[str], overrides: Mapping[str, Any]) -> list[RunSpec]:
    """Every (spec, seed) to rank, seed-major (all models with the first seed first), without duplicates.

    A preset's data and train overrides apply under ``--set`` and ``overrides``
    (``{field: value}`` of data and training settings: the CLI's flags). A
    component ``--set`` (e.g. ``encoder.dim=32``) applies to the models whose
    component has that hyperparameter, and is an error if none has it.

    Raises:
        ZooError: unknown model, preset, or a ``--set`` that fits no model.
    """
    parse_set_values(set_values)  # reject malformed items before anything else
    specs, preset_sets = _models(registry, patterns, preset)
    if not specs:
        raise ZooError("nothing to rank: the preset lists no models")
    for item in set_values:
        if not any(_applies(registry, s, item) for s in specs):
            raise ZooError(f"--set {item}: none of the {len(specs)} models to rank has that hyperparameter")
    per_spec = []
    for spec in specs:
        items = preset_sets + [i for i in set_values if _applies(registry, spec, i)]
        per_spec.append((spec, items))
    runs: list[RunSpec] = []
    seen: set[str] = set()
    for seed in seeds:
        for spec, items in per_spec:
            run = build_run_spec(registry, None, {}, items, overrides, seed=seed, base_model=spec)
            if run.key() not in seen:
                seen.add(run.key())
                runs.append(run)
    return runs


# -- the loop -------------------------------------------------------------------
@dataclasses.dataclass
class RankOutcome:
    """What one ``zoo rank`` did."""

    planned: int = 0
    trained: list[str] = dataclasses.field(default_factory=list)  # run ids finished now
    skipped: int = 0  # finished before, or being trained by another process
    failed: list[str] = dataclasses.field(default_factory=list)
    interrupted: bool = False
    # Planned runs that neither finished nor failed here, each "label seed N: why" (diverged, running elsewhere).
    missing: list[str] = dataclasses.field(default_factory=list)

    def summary(self, path) -> str:
        text = (f"{len(self.trained)} trained, {self.skipped} skipped (finished before or running elsewhere), "
                f"{len(self.failed)} failed, of {self.planned} runs; results in {path}")
        if self.interrupted:
            text = "interrupted: " + text + "; run the same command again to resume"
        elif self.missing:
            text += (f"\nnot on the leaderboard: {len(self.missing)} run(s): " + "; ".join(self.missing))
        return text


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class RankMeter:
    """Overall progress: run i of n, elapsed, and the time left estimated from this session's runs.

    With ``parallel`` (several runs train at once), the time left divides the
    runs left among the ``slots`` that train them, and each outcome's line
    names its run, since outcomes no longer follow their starting lines.
    """

    def __init__(self, total: int, to_train: int, echo: Echo, parallel: bool = False):
        self.total, self.to_train, self.echo, self.parallel = total, to_train, echo, parallel
        self.start = time.monotonic()
        self.durations: list[float] = []
        self.slots = 1  # runs training at once

    def eta(self) -> str:
        if not self.durations:
            return "time left: estimated after the first run"
        left = max(self.to_train - len(self.durations), 0)
        return f"about {format_duration(left * statistics.fmean(self.durations) / max(1, min(self.slots, left)))} left"

    def starting(self, index: int, run: RunSpec) -> None:
        elapsed = format_duration(time.monotonic() - self.start)
        self.echo(f"[{index}/{self.total}] {run.model.label} seed {run.seed}: training "
                  f"(elapsed {elapsed}, {self.eta()})")

    def skipped(self, index: int, run: RunSpec) -> None:
        self.echo(f"[{index}/{self.total}] {run.model.label} seed {run.seed}: skipped, finished before "
                  "or running elsewhere")

    def _which(self, job: Job | None) -> str:
        if not self.parallel or job is None:
            return "    "
        return f"[{job.index}/{self.total}] {job.run.model.label} seed {job.run.seed}: "

    def finished(self, run_id: str, result: Any, seconds: float, job: Job | None = None) -> None:
        self.durations.append(seconds)
        test = result.test or {}
        self.echo(f"{self._which(job)}{result.status}: test accuracy {test.get('accuracy', float('nan')):.4f}, "
                  f"{result.params:,} params, {format_duration(seconds)}, run {run_id}")

    def failed(self, message: str, detail: str = "", job: Job | None = None) -> None:
        self.echo(f"{self._which(job)}failed: {message}")
        if detail:
            self.echo(detail)


@dataclasses.dataclass
class Recorded:
    """A run that :func:`record_run` trained and recorded.

    Attributes:
        run_id: Its id in the results database.
        run_dir: The folder its weights were saved in (``<runs folder>/<run id>``).
        model: The trained classifier (the weights it kept).
        result: Its ``TrainResult``; ``result.status`` tells how it ended:
            recorded ``finished`` (completed, early-stopped), ``diverged``
            (nan) or ``interrupted``.
        seconds: Wall time from the start of training to the run recorded.
    """

    run_id: str
    run_dir: Path
    model: Any
    result: Any
    seconds: float


class RunFailed(Exception):
    """Training run ``run_id`` raised ``error``; the run is recorded ``failed`` with ``message``."""

    def __init__(self, run_id: str, error: Exception):
        self.run_id, self.error = run_id, error
        self.message = f"{type(error).__name__}: {error}".replace("\n", " ")
        super().__init__(self.message)


INTERRUPTED_MESSAGE = "interrupted (Ctrl-C or SIGTERM) before it finished"


def new_job(index: int, run: RunSpec, run_id: str, runs_dir: str | Path, tensorboard_every: int | None,
            score_test: bool = True) -> Job:
    """The :class:`zoo_core.executors.Job` of claimed run ``run_id``; its events go to its
    :func:`zoo_core.tensorboard.run_logdir` under ``runs_dir`` (none when ``tensorboard_every`` is None);
    ``score_test=False`` for a tuning trial."""
    if tensorboard_every is None:
        return Job(index, run, run_id, score_test=score_test)
    return Job(index, run, run_id, run_logdir(runs_dir, run.model.label, run.seed, run_id), int(tensorboard_every),
               score_test=score_test)


def record_trained(job: Job, trained: Trained, db: ResultsDB, runs_dir: str | Path, dataset: Any) -> Recorded:
    """Saves a trained job's weights to ``runs_dir / <run id>`` and records its result: the one recording path.

    Every executor's runs end here, in the driver's process: the status follows
    ``trained.result.status`` (``finished``, ``diverged`` for a NaN loss,
    ``interrupted``), the provenance is where it trained.

    Args:
        job: The claimed run.
        trained: What training produced (:class:`zoo_core.executors.Trained`).
        db: The results database the run was claimed in.
        runs_dir: The runs folder.
        dataset: The data it trained on (its vocabulary is saved with the weights).

    Raises:
        ZooError: the weights could not be saved (recorded ``failed``).
    """
    from zoo_core.runs import save_run

    started = time.monotonic()
    run_dir = Path(runs_dir) / job.run_id
    try:
        save_run(run_dir, trained.model, dataset.vocab, job.run, trained.result, provenance=trained.provenance)
    except (OSError, ZooError) as err:  # e.g. a full disk: later runs could not be saved either
        message = f"could not save it to {run_dir}: {getattr(err, 'strerror', None) or err}"
        db.mark(job.run_id, FAILED, message)
        raise ZooError(f"run {job.run_id} {message}") from None
    db.finish(job.run_id, trained.result, run_dir=run_dir, data_checksum=getattr(dataset, "checksum", ""),
              provenance=trained.provenance, scored_test=job.score_test)
    return Recorded(job.run_id, run_dir, trained.model, trained.result,
                    trained.seconds + time.monotonic() - started)


def record_run(run: RunSpec, registry, db: ResultsDB, runs_dir: str | Path, dataset: Callable[[], Any], *,
               fresh: bool = False, train: Callable | None = None, progress: Progress | None = None,
               echo: Echo | None = None, should_stop: Callable[[], bool] = lambda: False,
               on_claimed: Callable[[str], None] | None = None,
               tensorboard_every: int | None = EVERY_STEPS, score_test: bool = True,
               on_epoch: Callable[[int, dict], None] | None = None) -> Recorded | None:
    """Claims ``run`` in ``db``, trains it, saves its weights and records its result: one run, recorded.

    Every outcome is recorded. A run that trained to its end is saved to
    ``runs_dir / <run id>`` and recorded ``finished``; one whose loss became
    NaN is saved (its last good weights) and recorded ``diverged``; one that
    training stopped early on ``should_stop()`` is saved and recorded
    ``interrupted``, so nothing trained is lost. A stop before training gave
    a model (or a second Ctrl-C) marks it ``interrupted``; an error marks it
    ``failed``. The pieces are those :func:`rank` drives through an executor:
    the claim, :func:`zoo_core.executors.train_job`, :func:`record_trained`.

    Args:
        run: What to train.
        registry: Builds the model.
        db: The results database.
        runs_dir: The runs folder (:func:`zoo_core.runs.resolve_runs_dir`),
            checked beforehand (:func:`zoo_core.runs.check_runs_dir`).
        dataset: Returns the data (a :class:`zoo_core.data.Dataset`); called
            once the run is claimed, so a failure to load is recorded.
        fresh: Always record a new run, even of a (spec, seed) that finished
            before (``zoo train``); otherwise (``zoo rank``) skip a run that
            finished or diverged, or that a live process is training.
        train: A stand-in for :func:`zoo_core.training.train` (tests), or a wrapper of it.
        progress: Training's per-epoch bars (:data:`zoo_core.progress.Progress`); None: none.
        echo: Training's per-epoch lines and notes; None: silent.
        should_stop: Whether to stop (the CLI: SIGINT or SIGTERM arrived).
        on_claimed: Called with the run id once the run is claimed.
        tensorboard_every: The run writes TensorBoard event files to
            :func:`zoo_core.tensorboard.run_logdir` under ``runs_dir``, with
            ``step/*`` points every this many optimizer steps; None: none.
        score_test: Score the kept weights on the test split. False for a
            tuning trial: the test split is never evaluated, and the run is
            recorded ``trial`` (or ``pruned``) rather than ``finished``.
        on_epoch: Called after each finished epoch with training's
            :meth:`zoo_core.training.TrainObserver.on_epoch` arguments; it may
            raise :class:`zoo_core.training.EndRun` to end the run there (a
            tuner pruning it).

    Returns:
        The :class:`Recorded` run, or None when it was skipped.

    Raises:
        RunFailed: training raised (recorded ``failed``).
        KeyboardInterrupt: a stop before training gave a model, or a second
            Ctrl-C (recorded ``interrupted``).
        ZooError: the weights could not be saved (recorded ``failed``).
        Exception: whatever loading the data raised (recorded ``failed``).
    """
    run_id = db.start(run) if fresh else db.claim(run)
    if run_id is None:
        return None
    job = new_job(1, run, run_id, runs_dir, tensorboard_every, score_test=score_test)
    try:
        if on_claimed is not None:
            on_claimed(run_id)
        data = _load(dataset, db, run_id)
        if should_stop():
            raise KeyboardInterrupt
        try:
            trained = train_job(job, registry, data, train=train, logdir=job.logdir, progress=progress, echo=echo,
                                should_stop=should_stop, on_epoch=on_epoch)
        except Exception as err:  # noqa: BLE001 - recorded, then the caller decides
            failure = RunFailed(run_id, err)
            db.mark(run_id, FAILED, failure.message)
            raise failure from err
        return record_trained(job, trained, db, runs_dir, data)
    except KeyboardInterrupt:
        db.mark(run_id, INTERRUPTED, INTERRUPTED_MESSAGE)  # only if still running
        raise


def _load(dataset: Callable[[], Any], db: ResultsDB, run_id: str) -> Any:
    """``dataset()``; a failure marks run ``run_id`` failed and propagates (a Ctrl-C goes on to mark it interrupted)."""
    try:
        return dataset()
    except Exception:
        db.mark(run_id, FAILED, "its data could not be loaded")
        raise


def rank(runs: Sequence[RunSpec], registry, db: ResultsDB, *, runs_dir: str | Path | None = None,
         progress: Progress | None = None, echo: Echo | None = None, load_dataset: Callable | None = None,
         train: Callable | None = None, should_stop: Callable[[], bool] = lambda: False,
         tensorboard_every: int | None = EVERY_STEPS, executor: Executor | None = None) -> RankOutcome:
    """Trains each run that has not finished in ``db``, through ``executor``, and records it.

    The driver's loop: while the executor has free slots it claims the next
    run (skipping one that finished, diverged or runs elsewhere), loads its
    data (once per distinct DataConfig, with :data:`DATA_SEED`, so every run
    of every seed sees the same split) and submits it; each run the executor
    hands back is recorded here with :func:`record_trained` as it comes, so
    the results database and the runs folder stay in this process. A run that
    raised (after the executor's retries) is marked ``failed`` and the loop
    goes on. A stop request (``should_stop()``, checked between runs, while
    waiting, after loading data and by local training between batches) or
    ``KeyboardInterrupt`` stops the loop: a run training locally is recorded
    ``interrupted`` (with the weights it had, if training got that far); runs
    submitted and not handed back are cancelled and marked ``interrupted``
    (a rerun trains them again); everything that finished is kept.

    Args:
        runs: From :func:`plan_runs`.
        registry: Builds the models.
        db: Where runs are claimed and recorded.
        runs_dir: The runs folder (default: :func:`zoo_core.runs.resolve_runs_dir`
            without ``--runs``: ``$ZOO_RUNS``, registry.toml, or beside ``db``).
        progress: Progress bars for training and data loading
            (:data:`zoo_core.progress.Progress`); None: none.
        echo: Receives the progress lines (run i of n, each run's outcome,
            training's per-epoch lines, a failed run's traceback); None: silent.
        load_dataset, train: Stand-ins for :func:`zoo_core.data.load_dataset`
            and :func:`zoo_core.training.train` (tests), or wrappers of them
            (``train`` is for the default executor).
        should_stop: Whether to stop (the CLI: SIGINT or SIGTERM arrived).
        tensorboard_every: See :func:`record_run`.
        executor: Trains the runs (:mod:`zoo_core.executors`); default: a
            :class:`~zoo_core.executors.LocalExecutor`, one run at a time here.
            The caller closes it.

    Raises:
        ZooError: the runs folder cannot be written (before any training), or a run could not be saved.
    """
    from zoo_core.runs import check_runs_dir, resolve_runs_dir

    if load_dataset is None:
        from zoo_core.data import load_dataset

    echo = echo_or_silent(echo)
    settings = registry.settings
    if runs_dir is None:
        runs_dir = check_runs_dir(*resolve_runs_dir(None, settings, db.path))
    else:
        runs_dir = check_runs_dir(runs_dir)  # before any training
    if executor is None:
        executor = LocalExecutor(registry, train=train, progress=progress, echo=echo)
    finished_before = db.done_keys()
    outcome = RankOutcome(planned=len(runs))
    meter = RankMeter(len(runs), sum(r.key() not in finished_before for r in runs), echo, executor.parallel)
    datasets: dict[Any, Any] = {}
    plan = list(enumerate(runs, start=1))
    claimed: dict[str, Job] = {}  # submitted, not recorded yet
    stopped_by = "an error"
    try:
        while True:
            while plan and not should_stop() and executor.free_slots() > 0:
                index, run = plan.pop(0)
                run_id = db.claim(run)
                if run_id is None:
                    outcome.skipped += 1
                    meter.skipped(index, run)
                    continue
                job = claimed[run_id] = new_job(index, run, run_id, runs_dir, tensorboard_every)
                meter.slots = executor.slots()
                meter.starting(index, run)
                if run.data not in datasets:
                    datasets[run.data] = _load(
                        lambda: load_dataset(run.data, settings, seed=DATA_SEED, progress=progress), db, run_id)
                executor.submit(job, datasets[run.data])
            if should_stop():
                raise KeyboardInterrupt  # handled below, like Ctrl-C at this point
            if not executor.busy():
                break
            for done in executor.wait(should_stop):
                job = done.job
                if done.trained is None:  # one broken model must not end the ranking
                    db.mark(job.run_id, FAILED, done.message)
                    del claimed[job.run_id]
                    outcome.failed.append(job.run_id)
                    meter.failed(done.message, done.detail, job)
                    continue
                recorded = record_trained(job, done.trained, db, runs_dir, datasets[job.run.data])
                del claimed[job.run_id]
                if recorded.result.status == "interrupted":  # recorded, with the weights it had
                    raise KeyboardInterrupt
                outcome.trained.append(recorded.run_id)
                meter.finished(recorded.run_id, recorded.result, recorded.seconds, job)
    except KeyboardInterrupt:
        stopped_by = "Ctrl-C or SIGTERM"
        outcome.interrupted = True
        echo("interrupted")
    finally:
        executor.cancel()
        for job in claimed.values():  # only runs still `running` change
            db.mark(job.run_id, INTERRUPTED, INTERRUPTED_MESSAGE if stopped_by != "an error" else
                    "stopped before it finished: the rank ended on an error")
    if not outcome.interrupted:
        outcome.missing = _missing(runs, db, outcome.failed)
    return outcome


def _missing(runs: Sequence[RunSpec], db: ResultsDB, failed: Sequence[str]) -> list[str]:
    """Each planned run that has not finished and did not fail here: ``"label seed N: why"``."""
    finished = db.finished_keys()
    latest: dict[str, Any] = {}
    for record in db.runs():
        latest[record.key] = record  # oldest first: the last one wins
    out = []
    for run in runs:
        record = latest.get(run.key())
        if run.key() in finished or (record is not None and record.id in failed):
            continue
        if record is None:
            why = "not recorded"
        elif record.status == DIVERGED:
            why = f"diverged (run {record.id}: {record.message or 'NaN loss'}; try a lower --lr)"
        elif record.status == RUNNING:
            why = f"still running in process {record.pid} on {record.host} (run {record.id}); rerun when it ends"
        else:
            why = f"{record.status} (run {record.id})"
        out.append(f"{run.model.label} seed {run.seed}: {why}")
    return out


def leaderboard_of(db: ResultsDB, runs: Sequence[RunSpec], fmt: str, defaults: RunSpec):
    """The leaderboard of the specs in ``runs`` (other results in ``db`` left out), or None if none finished."""
    from zoo_core import leaderboard as lb
    from zoo_core.results import group_key

    wanted = {group_key(r) for r in runs}
    records = [r for r in db.finished() if r.group_key in wanted]
    if not records:
        return None
    return lb.leaderboard(lb.group_runs(records), "test_accuracy", fmt, defaults)
