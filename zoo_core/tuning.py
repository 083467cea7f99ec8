"""Tuning a model's settings with Optuna: the search space, the study, its trials, and the tuned settings.

``zoo tune MODEL --param lr=1e-4:1e-2:log --param encoder.dim=32,64,128``
searches the space the ``--param`` items span with an Optuna study. Each
trial is one run, trained and recorded by :func:`zoo_core.ranking.record_run`
like any other, but scored on the validation split only: it gets the data
without its test split and is recorded ``trial`` (or ``pruned``), never
``finished``, so no leaderboard shows it and ``zoo rank`` trains its (spec,
seed) afresh. A pruner sees each trial's validation metric after every epoch
and may end it there (:class:`zoo_core.training.EndRun`).

The study lives in Optuna's own storage, an SQLite file beside the results
database (:func:`storage_path`), under a name derived from the model, its
setup and seed, the space and the metric (:func:`study_name`), so the same
command resumes it: finished trials are kept and counted, and a trial whose
process died is marked failed and replaced. :func:`tuned_runs` turns planned
rank runs into runs at their model's best tuned settings (``zoo rank --tuned``).

The loop asks Optuna for one trial at a time and tells it the result
(:func:`tune`); one trial's work is :func:`run_trial`. Through an executor
that runs trials elsewhere (Ray: :func:`tune_parallel`) it asks for as many as
there are free slots, trains them remotely, and records and tells each result
here as it comes back; the workers' per-epoch reports reach the study through
a hook each job carries (:class:`zoo_core.executors.ray_executor.RayPruning`).

Optuna (which imports NumPy) is imported only by the functions that need it
(:func:`import_optuna`), so parsing and checking a space costs nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo_core.config import KINDS, DataConfig, RunSpec, TrainConfig, settings_hparams
from zoo_core.errors import ZooError
from zoo_core.params import HParam
from zoo_core.progress import Echo, Progress, echo_or_silent
from zoo_core.specs import DATA_FIELDS, TRAIN_FIELDS, build_run_spec, parse_set_values
from zoo_core.tensorboard import EVERY_STEPS

INSTALL_HINT = 'zoo tune needs Optuna, an optional extra: pip install -e ".[tune]" (or pip install "optuna>=3")'
#: The file, beside the results database, that holds every study (Optuna's RDB storage).
STORAGE_NAME = "optuna.sqlite"
#: What a study optimises: ``--metric`` -> (key in a run's validation scores, direction).
METRICS = {"val_accuracy": ("accuracy", "maximize"), "val_auc": ("auc", "maximize"),
           "val_loss": ("loss", "minimize")}
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
# Settings no study may vary: every trial must be scored on the same validation reviews (source, limit and
# split choose them), and deterministic ops are process-wide (zoo_core.training.enable_determinism).
UNTUNABLE = {
    "data.source": "every trial must read the same data",
    "data.limit": "every trial must be scored on the same validation reviews",
    "data.split": "every trial must be scored on the same validation reviews",
    "data.val_fraction": "every trial must be scored on the same validation reviews",
    "train.deterministic": "deterministic ops hold for the whole process; set it with --set",
}
# A trial's outcome as zoo records it on the Optuna trial (user attribute "zoo_status"). Failed trials of
# these kinds count towards --trials (trying again would fail again); interrupted and abandoned ones do not.
COUNTED_FAILURES = ("failed", "diverged")
EXAMPLE = "e.g. lr=1e-4:1e-2:log, encoder.dim=32,64,128 or encoder.dropout=0:0.5"


def import_optuna():
    """The ``optuna`` module, quietened to warnings.

    Raises:
        ZooError: Optuna is not installed (how to install it, in one line).
    """
    try:
        import optuna
    except ImportError:
        raise ZooError(INSTALL_HINT) from None
    return optuna


# -- the search space ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Param:
    """One setting a study searches: a numeric range or a list of choices.

    Attributes:
        key: ``SECTION.NAME`` as ``--set`` spells it: ``train.lr``, ``encoder.dim``.
        type: The setting's declared type (``int``, ``float``, ``bool`` or ``str``).
        low, high: The inclusive range searched (numbers; None for choices).
        log: Search the range on a log scale.
        choices: The values searched, typed (empty for a range).
    """

    key: str
    type: type
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple = ()

    def describe(self) -> str:
        """As ``--param`` spells it: ``train.lr=0.0001:0.01:log``, ``encoder.dim=32,64``."""
        if self.choices:
            return f"{self.key}={','.join(_text(c) for c in self.choices)}"
        return f"{self.key}={_text(self.low)}:{_text(self.high)}" + (":log" if self.log else "")

    def distribution(self, optuna):
        """The Optuna distribution this parameter samples from."""
        if self.choices:
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.type is int:
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def identity(self) -> dict[str, Any]:
        """What names the parameter in a study's name: key, kind and bounds or choices."""
        if self.choices:
            return {"key": self.key, "choices": list(self.choices)}
        return {"key": self.key, "low": self.low, "high": self.high, "log": self.log}


def _text(value: Any) -> str:
    """A value as ``--set`` parses it back: ``true``, ``0.001``, ``64``, ``gru``."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def _setting_key(text: str, label: str) -> str:
    """``SECTION.NAME`` of a ``--param`` key; a bare data or training setting (``lr``) is short for it."""
    key = text.strip()
    if "." in key:
        return key
    if key in TRAIN_FIELDS:
        return f"train.{key}"
    if key in DATA_FIELDS:
        return f"data.{key}"
    raise ZooError(f"{label}: {key!r} is no setting; expected SECTION.NAME (sections: "
                   f"{', '.join(KINDS + ('data', 'train'))}) or a data or training setting such as lr; {EXAMPLE}")


def _declaration(registry, base: RunSpec, key: str, label: str) -> HParam:
    """The declaration (type, bounds) of the setting ``key`` of ``base``'s model or settings."""
    section, _, name = key.partition(".")
    if section in ("data", "train"):
        declared = {p.name: p for p in settings_hparams(DataConfig if section == "data" else TrainConfig)}
        where = f"{section} has no setting {name!r} (its settings: {', '.join(declared)})"
    elif section in KINDS:
        component = base.model.component(section)
        declared = {p.name: p for p in registry.get(section, component).obj.hparams}
        where = (f"the {component} {section} has no parameter {name!r} "
                 f"(its parameters: {', '.join(declared) or 'none'})")
    else:
        raise ZooError(f"{label}: unknown section {section!r} (sections: {', '.join(KINDS + ('data', 'train'))})")
    if name not in declared:
        raise ZooError(f"{label}: {where}")
    return declared[name]


def parse_param(text: str, registry, base: RunSpec) -> Param:
    """One ``--param`` item, checked against the declared type and bounds of the setting it names.

    ``KEY=LOW:HIGH`` is a range (of integers for an int setting), ``KEY=LOW:HIGH:log``
    the same on a log scale, ``KEY=A,B,C`` a list of choices. KEY is spelled as for
    ``--set`` (``train.lr``, ``encoder.dim``); a data or training setting may go
    without its section (``lr``).

    Args:
        text: The item, e.g. ``lr=1e-4:1e-2:log``.
        registry: Supplies the declarations of ``base``'s components.
        base: The run the trials vary (its components decide what ``encoder.*`` means).

    Raises:
        ZooError: naming the item and what is wrong (one line).
    """
    label = f"--param {text}"
    key_text, sep, value = text.partition("=")
    if not sep or not key_text.strip() or not value.strip():
        raise ZooError(f"{label}: expected KEY=LOW:HIGH[:log] or KEY=A,B,...; {EXAMPLE}")
    key = _setting_key(key_text, label)
    hparam = _declaration(registry, base, key, label)
    if key in UNTUNABLE:
        raise ZooError(f"{label}: {key} cannot be tuned: {UNTUNABLE[key]}")
    value = value.strip()
    if ":" in value:
        parts = [p.strip() for p in value.split(":")]
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].lower() != "log"):
            raise ZooError(f"{label}: a range is LOW:HIGH or LOW:HIGH:log; {EXAMPLE}")
        if hparam.type not in (int, float) or hparam.choices:
            raise ZooError(f"{label}: {key} is {hparam.valid_range()}, not a number: give its choices as A,B,...")
        low, high = (hparam.validate(p, label=label) for p in parts[:2])
        log = len(parts) == 3
        if not low < high:
            raise ZooError(f"{label}: the low end {_text(low)} must be below the high end {_text(high)}")
        if log and low <= 0:
            raise ZooError(f"{label}: a log range needs a low end above 0, not {_text(low)}")
        return Param(key, hparam.type, low, high, log)
    if "," in value:
        choices = tuple(hparam.validate(v, label=label) for v in value.split(","))
        if len(set(choices)) != len(choices):
            raise ZooError(f"{label}: a choice is listed twice")
        return Param(key, hparam.type, choices=choices)
    raise ZooError(f"{label}: one value is no search: give a range LOW:HIGH[:log] or choices A,B,... "
                   f"(to fix {key}, use --set {key}={value})")


def parse_space(registry, base: RunSpec, texts: Sequence[str], set_values: Sequence[str] = (),
                flags: Mapping[str, Any] = ()) -> tuple[Param, ...]:
    """The study's space from ``--param`` items, sorted by key (the order given does not matter).

    Args:
        set_values, flags: The command's ``--set`` items and setting flags
            (``{field: value}``); a key they fix cannot also be searched.

    Raises:
        ZooError: no item, a bad item (:func:`parse_param`), a key given twice,
            or one that ``--set`` or a flag fixes as well.
    """
    if not texts:
        raise ZooError(f"nothing to tune: give the settings to search with --param, {EXAMPLE}")
    fixed = {f"{section}.{name}": f"--set {section}.{name}"
             for section, values in parse_set_values(set_values).items() for name in values}
    for field in dict(flags):
        section = "data" if field in DATA_FIELDS else "train"
        fixed[f"{section}.{field}"] = "--" + ("data" if field == "source" else field.replace("_", "-"))
    space: dict[str, Param] = {}
    for text in texts:
        param = parse_param(text, registry, base)
        if param.key in space:
            raise ZooError(f"--param {text}: {param.key} is searched twice; give one --param for it")
        if param.key in fixed:
            raise ZooError(f"--param {text}: {fixed[param.key]} also sets {param.key}; leave one of them out")
        space[param.key] = param
    return tuple(space[k] for k in sorted(space))


def apply_params(registry, run: RunSpec, values: Mapping[str, Any]) -> RunSpec:
    """``run`` with the settings ``values`` (``{"train.lr": 0.003, "encoder.dim": 64}``) applied and validated.

    Raises:
        ZooError: a value its setting refuses.
    """
    items = [f"{key}={_text(value)}" for key, value in values.items() if key.partition(".")[0] in KINDS]
    settings = {**dataclasses.asdict(run.data), **dataclasses.asdict(run.train)}
    for key, value in values.items():
        section, _, name = key.partition(".")
        if section in ("data", "train"):
            settings[name] = value
    built = build_run_spec(registry, None, {}, items, settings, seed=run.seed, base_model=run.model)
    tuned = [key for key in values if key.partition(".")[0] in ("data", "train")]
    return dataclasses.replace(built, tuned=tuple(sorted(set(tuned) | set(run.tuned)))) if tuned else built


def describe_values(values: Mapping[str, Any]) -> str:
    """``train.lr=0.00316, encoder.dim=64``: a trial's settings, numbers to 4 significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={_text(v)}" for k, v in values.items())


# -- the study ---------------------------------------------------------------------------------------------
def storage_path(results_path: str | os.PathLike) -> Path:
    """The Optuna storage file beside the results database at ``results_path``."""
    return Path(results_path).parent / STORAGE_NAME


def study_name(base: RunSpec, space: Sequence[Param], metric: str) -> str:
    """``<model label>-<12 hex digits>``: the same model, setup, seed, space and metric give the same study."""
    from zoo_core.results import group_key

    identity = {"group": group_key(base), "seed": base.seed, "space": [p.identity() for p in space],
                "metric": metric}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return f"{base.model.label}-{digest}"


def open_storage(optuna, path: Path, create: bool = True):
    """Optuna's RDB storage in the SQLite file ``path``; None when ``create`` is False and there is none.

    Raises:
        ZooError: the file cannot be opened or is not an Optuna storage.
    """
    if not create and not path.exists():
        return None
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # A writer waits for another process's write (two `zoo tune`s on one study) instead of failing.
        return optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 120}})
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's and Optuna's errors alike: this file's fault
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ZooError(f"Optuna storage {path} cannot be opened ({detail}); move it away to start afresh "
                       "or pass another --results") from None


def make_sampler(optuna, name: str, seed: int):
    """The ``--sampler``: Optuna's TPE (default) or random search, seeded."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(optuna, name: str):
    """The ``--pruner``: Optuna's median pruner (default), or none."""
    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner()


def open_study(optuna, storage, base: RunSpec, space: Sequence[Param], metric: str, sampler: str = "tpe",
               pruner: Any = "median"):
    """The study of ``base``'s model, setup and seed over ``space``, created or resumed.

    Its user attributes record what it tunes (``model``, ``group_key``,
    ``base_spec``, ``space``, ``metric``), which ``zoo tune --show`` and
    ``zoo rank --tuned`` read. The sampler is seeded with the run's seed and
    the number of trials the study holds, so a resumed study does not replay
    the suggestions it began with.

    Args:
        pruner: A ``--pruner`` name or an Optuna pruner.
    """
    from zoo_core.results import group_key

    name = study_name(base, space, metric)
    study = optuna.create_study(storage=storage, study_name=name, direction=METRICS[metric][1],
                                load_if_exists=True, pruner=make_pruner(optuna, pruner)
                                if isinstance(pruner, str) else pruner)
    if "group_key" not in study.user_attrs:
        for key, value in {"model": base.model.label, "group_key": group_key(base), "base_spec": base.to_json(),
                           "space": [p.describe() for p in space], "metric": metric, "seed": base.seed}.items():
            study.set_user_attr(key, value)
    study.sampler = make_sampler(optuna, sampler, (base.seed * 1_000_003 + len(study.trials)) % 2**32)
    return study


def studies_of(optuna, storage, group: str) -> list:
    """The zoo's studies in ``storage`` of one model and setup (:func:`zoo_core.results.group_key`), the most
    recently started first."""
    summaries = [s for s in optuna.get_all_study_summaries(storage, include_best_trial=True)
                 if s.user_attrs.get("group_key") == group]
    return sorted(summaries, key=lambda s: (s.datetime_start is not None, s.datetime_start or 0), reverse=True)


def _counts(trial) -> bool:
    """Whether a trial counts towards ``--trials``: it finished, was pruned, or failed for good."""
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED") or (
        state == "FAIL" and trial.user_attrs.get("zoo_status") in COUNTED_FAILURES)


def counted(study) -> int:
    """The trials of ``study`` that count towards ``--trials``."""
    return sum(_counts(t) for t in study.get_trials(deepcopy=False))


def abandon_dead_trials(optuna, study, storage, db) -> list[int]:
    """Marks failed the running trials of processes on this host that died (a crash, ``kill -9``).

    Such a trial does not count, so the resumed study runs another in its
    place; its run in ``db`` is marked ``abandoned``. Trials of other hosts,
    and of live processes, are left alone.

    Returns:
        The numbers of the trials marked.
    """
    from zoo_core.results import ABANDONED, pid_alive, process_start, provenance

    host, marked = provenance()["host"], []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        pid = attrs.get("pid")
        if attrs.get("host") != host or not isinstance(pid, int) or pid == os.getpid():
            continue
        if pid_alive(pid) and (not attrs.get("proc_start") or process_start(pid) == attrs["proc_start"]):
            continue
        storage.set_trial_user_attr(trial._trial_id, "zoo_status", "abandoned")
        storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
        if attrs.get("run_id"):
            db.mark(attrs["run_id"], ABANDONED, "its `zoo tune` process died before the trial finished")
        marked.append(trial.number)
    return marked


# -- the trials --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TuneOutcome:
    """What one ``zoo tune`` did.

    Attributes:
        study: The study's name.
        wanted: ``--trials``: the trials the study should hold.
        ran: The trials run now (:class:`TrialResult`), in order.
        interrupted: A stop request or Ctrl-C ended it; the trial in progress
            was marked failed and does not count.
        abandoned: Trials of dead processes marked failed at the start.
    """

    study: str
    wanted: int
    ran: list["TrialResult"] = dataclasses.field(default_factory=list)
    interrupted: bool = False
    abandoned: list[int] = dataclasses.field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(t.status == status for t in self.ran)


def trial_status(trial) -> str:
    """A trial as zoo names it: ``complete``, ``pruned``, ``diverged``, ``failed``, ``interrupted``,
    ``abandoned``, ``running`` or ``waiting``."""
    status = trial.user_attrs.get("zoo_status")
    if status:
        return status
    return {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}.get(trial.state.name, trial.state.name.lower())


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """How one trial ended.

    Attributes:
        number: The Optuna trial number.
        status: ``complete``, ``pruned``, ``diverged`` or ``failed`` (counted
            towards ``--trials``), or ``interrupted`` (not counted).
        value: The metric told to Optuna (None if none).
        run_id: Its run in the results database ("" if it never got one).
        message: Why it was pruned or failed ("" otherwise).
    """

    number: int
    status: str
    value: float | None = None
    run_id: str = ""
    message: str = ""


def run_trial(optuna, study, trial, run: RunSpec, registry, db, runs_dir, dataset: Callable[[], Any],
              metric: str, *, train: Callable | None = None, progress: Progress | None = None,
              echo: Echo | None = None, should_stop: Callable[[], bool] = lambda: False,
              tensorboard_every: int | None = EVERY_STEPS) -> TrialResult:
    """Trains and records one trial's run (scored on validation only) and tells ``study`` how it ended.

    The run is recorded by :func:`zoo_core.ranking.record_run` with
    ``score_test=False``; after each epoch its validation ``metric`` is
    reported to the trial, and the study's pruner may end it there.

    Args:
        trial: The asked Optuna trial; ``run`` holds its settings.
        dataset: Returns the data, without its test split.

    Raises:
        KeyboardInterrupt: a second Ctrl-C (the trial is told failed first).
        ZooError: the run could not be saved (likewise).
    """
    from zoo_core.ranking import RunFailed, record_run
    from zoo_core.training import EndRun

    state = optuna.trial.TrialState
    run_ids: list[str] = []
    reported: list[float] = []  # the values told to the trial, epoch by epoch

    def claimed(run_id: str) -> None:
        run_ids.append(run_id)
        trial.set_user_attr("run_id", run_id)

    def on_epoch(epoch: int, logs: dict) -> None:
        value = logs.get(metric)
        if value is None or not math.isfinite(value):
            return
        trial.report(float(value), epoch)
        reported.append(float(value))
        if trial.should_prune():
            raise EndRun("pruned", prune_message(epoch, metric, value))

    def ended(status: str, message: str = "", value: float | None = None, tell_state=None) -> TrialResult:
        return end_trial(optuna, study, trial, status, message, value, tell_state, run_ids[0] if run_ids else "",
                         reported[-1] if reported else None)

    try:
        recorded = record_run(run, registry, db, runs_dir, dataset, fresh=True, train=train, progress=progress,
                              echo=echo, should_stop=should_stop, on_claimed=claimed,
                              tensorboard_every=tensorboard_every, score_test=False, on_epoch=on_epoch)
    except RunFailed as failure:
        return ended("failed", failure.message, tell_state=state.FAIL)
    except BaseException:  # Ctrl-C twice, or saving failed: the trial is over, and does not count
        ended("interrupted", tell_state=state.FAIL)
        raise
    return ended(*judge(optuna, recorded.result, metric))


def prune_message(epoch: int, metric: str, value: float) -> str:
    """Why a trial was pruned, in one line (recorded with its run)."""
    return f"pruned after epoch {epoch}: its {metric} {value:.4f} was worse than the other trials' at that epoch"


def judge(optuna, result, metric: str) -> tuple[str, str, float | None, Any]:
    """``(status, message, value, Optuna state)`` of a trial whose training gave ``result`` (a
    :class:`zoo_core.training.TrainResult`)."""
    state = optuna.trial.TrialState
    value = (result.val or {}).get(METRICS[metric][0])
    value = float(value) if value is not None and math.isfinite(value) else None
    if result.status == "interrupted":
        return "interrupted", result.message, None, state.FAIL
    if result.status == "pruned":
        return "pruned", result.message, None, state.PRUNED
    if result.status == "nan":
        # Counted either way: the same settings would diverge again. The score of its last good weights, if it
        # has one, tells the sampler how bad that region is.
        return "diverged", result.message, value, state.COMPLETE if value is not None else state.FAIL
    if value is None:
        return "failed", f"no {metric}: the validation split gave no score", None, state.FAIL
    return "complete", "", value, state.COMPLETE


def end_trial(optuna, study, trial, status: str, message: str = "", value: float | None = None, tell_state=None,
              run_id: str = "", last_reported: float | None = None) -> TrialResult:
    """Records how ``trial`` ended on it (user attributes ``zoo_status``, ``message``) and tells ``study``.

    Args:
        value: The metric, told to Optuna for a complete trial.
        tell_state: The Optuna state told.
        last_reported: The last value reported (a pruned trial's value, as Optuna keeps it).
    """
    state = optuna.trial.TrialState
    if status != "complete":
        trial.set_user_attr("zoo_status", status)
    if message:
        trial.set_user_attr("message", message[:500])
    if tell_state is state.COMPLETE:
        study.tell(trial, value)
    else:
        study.tell(trial, state=tell_state)
    if tell_state is state.PRUNED:  # Optuna's value of a pruned trial: the last one reported
        value = last_reported
    return TrialResult(trial.number, status, value, run_id, message)


def _start(study, storage, db, n_trials: int, echo):
    """What both tuning loops begin with: Optuna, this process as the trials' owner, the echo, the outcome
    (with the trials of dead processes abandoned first)."""
    from zoo_core.results import process_start, provenance

    optuna = import_optuna()
    owner = {"host": provenance()["host"], "pid": os.getpid(), "proc_start": process_start(os.getpid())}
    outcome = TuneOutcome(study.study_name, n_trials)
    if storage is not None:
        outcome.abandoned = abandon_dead_trials(optuna, study, storage, db)
    return optuna, owner, echo_or_silent(echo), outcome


def tune(study, space: Sequence[Param], base: RunSpec, registry, db, n_trials: int, *, runs_dir,
         load_dataset: Callable[[DataConfig], Any], metric: str = "val_accuracy", storage=None,
         train: Callable | None = None, progress: Progress | None = None, echo: Echo | None = None,
         should_stop: Callable[[], bool] = lambda: False,
         tensorboard_every: int | None = EVERY_STEPS, executor=None,
         trial_hooks: Callable[[Any], Callable[[int, dict], None]] | None = None) -> TuneOutcome:
    """Runs trials of ``study`` until it holds ``n_trials`` that count: one after another in this process,
    or, with ``executor``, as many at once as it has slots.

    Trials already in the study (an earlier run of the same command) count,
    so a rerun only adds what is missing. Each trial trains ``base`` with its
    sampled settings (:func:`apply_params`) through :func:`run_trial`, on the
    data without its test split: the test split is never scored.

    Args:
        study: From :func:`open_study`.
        space: Its parameters (:func:`parse_space`).
        base: The run the trials vary (model, settings and seed).
        db: The results database every trial's run is recorded in.
        n_trials: How many counted trials the study should hold (``--trials``).
        runs_dir: The runs folder, checked beforehand.
        load_dataset: ``config -> Dataset`` (data seed
            :data:`zoo_core.ranking.DATA_SEED`); called once per distinct data
            setting.
        storage: The study's storage; with it, trials of dead processes on
            this host are marked failed first (:func:`abandon_dead_trials`).
        train, progress, echo, should_stop, tensorboard_every: As for
            :func:`zoo_core.ranking.rank`.
        executor: Trains the trials elsewhere (:class:`zoo_core.executors.ray_executor.RayExecutor`):
            see :func:`tune_parallel`. None: one after another here.
        trial_hooks: With ``executor``: ``trial -> on_epoch`` hook that reports
            the trial's epochs to the study where it trains (pruning); None: no pruning.
    """
    if executor is not None:
        return tune_parallel(study, space, base, registry, db, n_trials, executor=executor, runs_dir=runs_dir,
                             load_dataset=load_dataset, metric=metric, storage=storage, echo=echo,
                             should_stop=should_stop, tensorboard_every=tensorboard_every, trial_hooks=trial_hooks)
    from zoo_core.ranking import format_duration

    optuna, owner, echo, outcome = _start(study, storage, db, n_trials, echo)
    datasets: dict[DataConfig, Any] = {}

    def data_of(config: DataConfig):
        if config not in datasets:
            # The trials never see the test split: they get the data without it, so nothing can score it.
            datasets[config] = dataclasses.replace(load_dataset(config), test=None)
        return datasets[config]

    distributions = {p.key: p.distribution(optuna) for p in space}
    started, durations = time.monotonic(), []
    while (done := counted(study)) < n_trials:
        if should_stop():
            outcome.interrupted = True
            break
        trial = study.ask(distributions)
        for key, value in owner.items():  # whose trial it is: a rerun fails it if this process dies
            trial.set_user_attr(key, value)
        try:
            run = apply_params(registry, base, trial.params)
        except ZooError:  # the space was checked against the declarations, so only a caller's bug gets here
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        eta = (f"about {format_duration((n_trials - done) * sum(durations) / len(durations))} left"
               if durations else "time left: estimated after the first trial")
        echo(f"[trial {trial.number}, {done + 1}/{n_trials}] {describe_values(trial.params)}: training "
             f"(elapsed {format_duration(time.monotonic() - started)}, {eta})")
        began = time.monotonic()
        try:
            ended = run_trial(optuna, study, trial, run, registry, db, runs_dir, lambda: data_of(run.data), metric,
                              train=train, progress=progress, echo=echo, should_stop=should_stop,
                              tensorboard_every=tensorboard_every)
        except KeyboardInterrupt:
            outcome.ran.append(TrialResult(trial.number, "interrupted"))
            outcome.interrupted = True
            break
        outcome.ran.append(ended)
        value = f"{metric} {ended.value:.4f}" if ended.value is not None else "no score"
        echo(f"    {ended.status}: {value}, run {ended.run_id or '-'}"
             + (f" ({ended.message})" if ended.status in ("pruned", "failed") and ended.message else ""))
        if ended.status == "interrupted":
            outcome.interrupted = True
            break
        durations.append(time.monotonic() - began)
    return outcome


def tune_parallel(study, space: Sequence[Param], base: RunSpec, registry, db, n_trials: int, *, executor, runs_dir,
                  load_dataset: Callable[[DataConfig], Any], metric: str = "val_accuracy", storage=None,
                  echo: Echo | None = None, should_stop: Callable[[], bool] = lambda: False,
                  tensorboard_every: int | None = EVERY_STEPS,
                  trial_hooks: Callable[[Any], Callable[[int, dict], None]] | None = None) -> TuneOutcome:
    """:func:`tune` through ``executor``: several trials train at once, the study and results stay here.

    While the executor has free slots and the study lacks trials, the loop
    asks Optuna for a trial, claims its run in ``db`` and submits it as a
    job that never scores the test split (its data has none), carrying
    ``trial_hooks(trial)`` as its per-epoch hook. Each job handed back is
    recorded here (:func:`zoo_core.ranking.record_trained`, status ``trial``
    or ``pruned``) and told to the study; one that failed (after the
    executor's retries) is marked ``failed`` and counts. A stop request or
    ``KeyboardInterrupt`` cancels the jobs in flight: their runs are marked
    ``interrupted`` and their trials failed (``interrupted``, not counted),
    so the same command resumes.

    Raises:
        ZooError: a run could not be saved (the trials in flight are stopped and marked first).
    """
    from zoo_core.ranking import (FAILED, INTERRUPTED, INTERRUPTED_MESSAGE, _load, format_duration, new_job,
                                  record_trained)

    optuna, owner, echo, outcome = _start(study, storage, db, n_trials, echo)
    datasets: dict[DataConfig, Any] = {}
    distributions = {p.key: p.distribution(optuna) for p in space}
    running: dict[str, tuple[Any, Any]] = {}  # run id -> (trial, its dataset)
    started, durations = time.monotonic(), []
    stopped_by = "an error"
    try:
        while True:
            while (not should_stop() and counted(study) + len(running) < n_trials
                   and executor.free_slots() > 0):
                trial = study.ask(distributions)
                for key, value in owner.items():  # whose trial it is: a rerun fails it if this process dies
                    trial.set_user_attr(key, value)
                try:
                    run = apply_params(registry, base, trial.params)
                except ZooError:  # the space was checked against the declarations: only a caller's bug gets here
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    raise
                run_id = db.start(run)
                trial.set_user_attr("run_id", run_id)
                running[run_id] = (trial, None)
                done = counted(study) + len(running)
                mean = sum(durations) / len(durations) if durations else 0.0
                left = n_trials - done + 1
                eta = (f"about {format_duration(left * mean / max(1, min(executor.slots(), left)))} left"
                       if durations else "time left: estimated after the first trial")
                echo(f"[trial {trial.number}, {done}/{n_trials}] {describe_values(trial.params)}: training "
                     f"(elapsed {format_duration(time.monotonic() - started)}, {eta})")
                if run.data not in datasets:
                    # The trials never see the test split: they get the data without it, so nothing can score it.
                    datasets[run.data] = _load(lambda: dataclasses.replace(load_dataset(run.data), test=None), db,
                                               run_id)
                running[run_id] = (trial, datasets[run.data])
                job = new_job(trial.number, run, run_id, runs_dir, tensorboard_every, score_test=False)
                hook = trial_hooks(trial) if trial_hooks is not None else None
                executor.submit(dataclasses.replace(job, on_epoch=hook), datasets[run.data])
            if should_stop():
                raise KeyboardInterrupt  # handled below, like Ctrl-C at this point
            if not executor.busy():
                break
            for done in executor.wait(should_stop):
                job = done.job
                trial, data = running[job.run_id]
                last = _last_reported(study, trial)
                if done.trained is None:
                    db.mark(job.run_id, FAILED, done.message)
                    del running[job.run_id]
                    ended = end_trial(optuna, study, trial, "failed", done.message,
                                      tell_state=optuna.trial.TrialState.FAIL, run_id=job.run_id)
                    if done.detail:
                        echo(done.detail)
                else:
                    recorded = record_trained(job, done.trained, db, runs_dir, data)
                    del running[job.run_id]
                    ended = end_trial(optuna, study, trial, *judge(optuna, recorded.result, metric),
                                      run_id=job.run_id, last_reported=last)
                    durations.append(recorded.seconds)
                outcome.ran.append(ended)
                value = f"{metric} {ended.value:.4f}" if ended.value is not None else "no score"
                echo(f"[trial {ended.number}] {ended.status}: {value}, run {ended.run_id}"
                     + (f" ({ended.message})" if ended.status in ("pruned", "failed") and ended.message else ""))
                if ended.status == "interrupted":
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        stopped_by = "Ctrl-C or SIGTERM"
        outcome.interrupted = True
    finally:
        executor.cancel()
        for run_id, (trial, _) in running.items():  # submitted and not handed back: lost, not counted
            db.mark(run_id, INTERRUPTED, INTERRUPTED_MESSAGE if stopped_by != "an error" else
                    "stopped before it finished: the tuning ended on an error")
            end_trial(optuna, study, trial, "interrupted", tell_state=optuna.trial.TrialState.FAIL, run_id=run_id)
            outcome.ran.append(TrialResult(trial.number, "interrupted", run_id=run_id))
    return outcome


def _last_reported(study, trial) -> float | None:
    """The last value reported to ``trial`` (by a worker, through the storage), or None."""
    for frozen in study.get_trials(deepcopy=False):
        if frozen.number == trial.number:
            values = frozen.intermediate_values
            return values[max(values)] if values else None
    return None


# -- reading studies back ----------------------------------------------------------------------------------
def trial_table(study) -> tuple[list[str], list[list[Any]]]:
    """``(headers, rows)``: each trial's number, status, metric value, epochs trained, run id and settings,
    then ``best`` (whether it is the study's best trial)."""
    metric = study.user_attrs.get("metric", "value")
    keys = [item.partition("=")[0] for item in study.user_attrs.get("space", [])]
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        keys += [k for k in trial.params if k not in keys]
    best = best_trial(study)
    headers = ["trial", "status", metric, "epochs", *keys, "run", "best"]
    rows = []
    for trial in trials:
        run_id = trial.user_attrs.get("run_id", "")
        epochs = max(trial.intermediate_values) if trial.intermediate_values else None
        rows.append([trial.number, trial_status(trial), None if trial.value is None else round(trial.value, 4),
                     epochs, *[_shown(trial.params.get(k)) for k in keys], run_id,
                     best is not None and trial.number == best.number])
    return headers, rows


def _shown(value: Any) -> Any:
    return float(f"{value:.4g}") if isinstance(value, float) else value


def best_trial(study):
    """The study's best complete trial, or None before one finished."""
    try:
        return study.best_trial
    except ValueError:
        return None


def describe_study(study) -> str:
    """``study NAME: gru-mean, maximize val_accuracy over train.lr=...; 3 trials: 2 complete, 1 pruned``."""
    statuses: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        statuses[trial_status(trial)] = statuses.get(trial_status(trial), 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in statuses.items())
    space = "; ".join(study.user_attrs.get("space", []))
    return (f"study {study.study_name}: {study.user_attrs.get('model', '?')}, "
            f"{study.direction.name.lower()} {study.user_attrs.get('metric', 'value')} over {space}; "
            f"{len(study.trials)} trials" + (f": {counts}" if counts else ""))


def describe_best(study) -> str:
    """``best: trial 2, val_accuracy 0.8125: train.lr=0.00316, encoder.dim=64`` (or that there is none yet)."""
    best = best_trial(study)
    if best is None:
        return "best: none yet (no trial finished)"
    return (f"best: trial {best.number}, {study.user_attrs.get('metric', 'value')} {best.value:.4f}: "
            f"{describe_values(best.params)}")


def find_study(optuna, storage, base: RunSpec, space: Sequence[Param], metric: str | None):
    """The study ``zoo tune --show`` shows: the one of this exact space and metric when ``space`` is given,
    else the most recently started of ``base``'s model and setup; None if there is none."""
    from zoo_core.results import group_key

    if space:
        name = study_name(base, space, metric or "val_accuracy")
        if name not in optuna.study.get_all_study_names(storage):
            return None
        return optuna.load_study(study_name=name, storage=storage)
    found = studies_of(optuna, storage, group_key(base))
    if metric is not None:
        found = [s for s in found if s.user_attrs.get("metric") == metric]
    return optuna.load_study(study_name=found[0].study_name, storage=storage) if found else None


def tuned_runs(registry, runs: Sequence[RunSpec], path: Path,
               study_limit: int | None = None) -> tuple[list[RunSpec], list[str]]:
    """``runs`` at their models' tuned settings (``zoo rank --tuned``), and a line per model saying which.

    Each run takes the best trial's settings of the most recently started
    study of its model and setup (the same data and training settings, any
    seed) that has a complete trial; with ``study_limit``, of the study
    tuned on that many reviews (``zoo tune --limit N``) instead of the runs'
    own limit. Seeds are the runs' own: the runs are trained afresh and
    scored on the test split; no trial run is reused. The settings taken
    are named in each run's :attr:`RunSpec.tuned`.

    Raises:
        ZooError: Optuna missing, no storage at ``path``, or a model with no
            such study (all named in one line).
    """
    from zoo_core.results import group_key

    if not path.exists():  # before importing Optuna (and NumPy): a quick answer
        raise ZooError(f"--tuned: no tuning studies yet ({path} does not exist); tune each model first with "
                       "`zoo tune MODEL --param ...` and the same data and training settings")
    optuna = import_optuna()
    storage = open_storage(optuna, path, create=False)
    chosen: dict[str, Any] = {}
    missing: list[str] = []
    def study_group(run: RunSpec) -> str:
        if study_limit is None:
            return group_key(run)
        return group_key(dataclasses.replace(run, data=dataclasses.replace(run.data, limit=study_limit)))

    for run in runs:
        group = study_group(run)
        if group in chosen or run.model.label in missing:
            continue
        found = [s for s in studies_of(optuna, storage, group) if s.best_trial is not None]
        if found:
            chosen[group] = found[0]
        else:
            missing.append(run.model.label)
    if missing:
        limit = "" if study_limit is None else f" (and --limit {study_limit})"
        raise ZooError(f"--tuned: no tuning study with a finished trial for {', '.join(missing)} with these data "
                       f"and training settings{limit} in {path}; tune it first: zoo tune {missing[0]} --param ... "
                       "(with the same settings)")
    out = [apply_params(registry, run, chosen[study_group(run)].best_trial.params) for run in runs]
    notes = []
    for group, summary in chosen.items():
        best = summary.best_trial
        notes.append(f"{summary.user_attrs.get('model', '?')}: tuned settings {describe_values(best.params)} "
                     f"(study {summary.study_name}, trial {best.number} of {summary.n_trials}, "
                     f"{summary.user_attrs.get('metric', 'value')} {best.value:.4f})")
    return out, notes
