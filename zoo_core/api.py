"""The zoo from Python, for notebooks and scripts: build, train, record, load, predict, list.

Everything here goes through the same core as the ``zoo`` command, so a run
trained from a notebook is recorded in the results database like one from
``zoo train`` (spec, metrics, curves, provenance, weights, TensorBoard events)
and shows in ``zoo runs``, ``zoo leaderboard`` and ``zoo predict``.

Example::

    from zoo_core import api as zoo

    zoo.components("cell")                          # what there is: [{"kind", "name", ...}]
    run = zoo.train("gru-mean", data="aclImdb_v1.tar.gz", epochs=1, limit=2000)
    run.test["accuracy"], run.history[-1]["val_auc"]
    run.predict(["A wonderful, moving film.", "Dull and far too long."])  # P(positive), [2]
    zoo.runs()                                      # every recorded run, oldest first
    best = zoo.load("best")                         # or a run id, an id prefix, a saved folder
    both = zoo.ensemble(["3f2a", "71c0"])           # the mean of their P(positive), recorded as a run
    model = zoo.build("gru-mean", vocab_size=20000) # a bare Classifier: ids [batch, time] -> logits

Settings are keyword arguments named as in ``registry.toml``'s ``[data]`` and
``[train]`` tables (``epochs=2``, ``lr=3e-4``, ``maxlen=400``, ``limit=2000``),
components by kind (``cell="lstm"``), and component hyperparameters in
``params`` (``{"cell.units": 128}``). In a notebook training shows a live
Keras ``Progbar`` per epoch; elsewhere a bar on stderr when it is a terminal.

This module is a front end like the ``zoo`` command, beside it rather than on
top of it: it imports the core, never :mod:`zoo_core.cli` nor click
(tests/test_layers.py), so it passes the core its own progress bars and
warnings (:mod:`zoo_core.progress`) and reads ``$ZOO_DATA`` itself.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo_core.config import KINDS, DataConfig, RunSpec, TrainConfig
from zoo_core.errors import ZooError

__all__ = ["EnsembleRun", "Run", "build", "components", "ensemble", "load", "models", "notebook_progress", "registry",
           "runs", "spec", "stderr_progress", "train"]


def registry(registry_file: str | Path | None = None, plugins: str | None = None):
    """The component registry: ``registry.toml`` (this checkout's, ``$ZOO_REGISTRY`` or ``registry_file``) and plugins.

    Plugin problems become Python warnings (``warnings.warn``), as the CLI prints them.

    Raises:
        ZooError: an unreadable or invalid registry file, a ``plugins`` pattern matching nothing.
    """
    import warnings

    from zoo_core.registry import build_registry

    return build_registry(None if registry_file is None else str(registry_file), plugins=plugins,
                          warn=lambda line: warnings.warn(line, stacklevel=3))


def components(kind: str | None = None, *, using=None) -> list[dict[str, Any]]:
    """Registered components (of one ``kind``: encoder, cell, aggregator or head), as dicts.

    Each has ``kind``, ``name``, ``plugin`` (the module that registered it),
    ``description`` and ``hparams`` (``{name: default}``).

    Raises:
        ZooError: an unknown kind.
    """
    reg = using or registry()
    if kind is not None and kind not in KINDS:
        raise ZooError(f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    out = []
    for each in (kind,) if kind else KINDS:
        for name in reg.list(each):
            entry = reg.get(each, name)
            cls = entry.obj
            out.append({"kind": each, "name": name, "plugin": entry.plugin, "description": cls.description,
                        "hparams": {p.name: p.default for p in cls.hparams}})
    return out


def models(*, using=None) -> list[dict[str, Any]]:
    """Named models (``zoo models``) as dicts: ``name``, ``combo`` (encoder/cell/aggregator/head), ``params``, ``description``."""
    reg = using or registry()
    out = []
    for name in reg.list("model"):
        model = reg.model(name)
        out.append({"name": name, "combo": model.combo, "params": model.params, "description": model.description})
    return out


def _set_values(settings: Mapping[str, Any], params: Mapping[str, Any] | None) -> tuple[dict, list[str]]:
    """Keyword settings as ``({kind: component}, ["data.x=v", "train.y=v", "cell.units=v", ...])``."""
    data_fields = {f.name for f in dataclasses.fields(DataConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    chosen, items = {}, []
    for key, value in settings.items():
        if key in KINDS:
            chosen[key] = value
        elif key == "data":
            items.append(f"data.source={value}")
        elif key in data_fields:
            items.append(f"data.{key}={_text(value)}")
        elif key in train_fields:
            items.append(f"train.{key}={_text(value)}")
        else:
            known = sorted(data_fields | train_fields | set(KINDS))
            raise ZooError(f"unknown setting {key!r}; settings: {', '.join(known)} "
                           "(component hyperparameters go in params={'cell.units': 128})")
    for key, value in (params or {}).items():
        if key.partition(".")[0] not in KINDS:
            raise ZooError(f"params key {key!r}: expected KIND.NAME, e.g. 'cell.units' (kinds: {', '.join(KINDS)})")
        items.append(f"{key}={_text(value)}")
    return chosen, items


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def spec(model: str | None = None, *, seed: int = 0, params: Mapping[str, Any] | None = None,
         using=None, **settings: Any) -> RunSpec:
    """A validated :class:`~zoo_core.config.RunSpec`: what :func:`train` would train.

    Args:
        model: A named model (``zoo models``), or None to mix components
            (defaults: embedding, tanh, last, sigmoid1).
        seed: The run's seed.
        params: Component hyperparameters, ``{"cell.units": 128, "encoder.dim": 32}``.
        **settings: ``encoder=``/``cell=``/``aggregator=``/``head=``, ``data=PATH``,
            and any ``[data]`` or ``[train]`` setting by name (``epochs=1``, ``limit=2000``).

    Raises:
        ZooError: an unknown model, component or setting, or a value out of range.
    """
    from zoo_core.specs import build_run_spec

    reg = using or registry()
    chosen, items = _set_values(settings, params)
    return build_run_spec(reg, model, {k: chosen.get(k) for k in KINDS}, items, {}, seed)


def build(model: str | None = None, *, vocab_size: int, seed: int = 0, params: Mapping[str, Any] | None = None,
          using=None, **components: str):
    """An untrained :class:`~zoo_core.model.Classifier` (``ids [batch, time]``, ``mask [batch, time]`` -> logits).

    Args:
        model: A named model, or None to mix components by ``components`` (``cell="gru"``).
        vocab_size: Rows of the encoder's table (``num_words`` of the data).
        seed: Seeds the initial weights (``keras.utils.set_random_seed``).
        params: Component hyperparameters, ``{"cell.units": 128}``.

    Raises:
        ZooError: an unknown model or component, or a bad hyperparameter.
    """
    import keras

    from zoo_core.model import Classifier

    reg = using or registry()
    run = spec(model, seed=seed, params=params, using=reg, **components)
    keras.utils.set_random_seed(seed)
    return Classifier(run.model, reg, int(vocab_size))


@dataclasses.dataclass
class Run:
    """A recorded (or saved) run: its spec, its trained classifier and vocabulary, and its scores.

    Attributes:
        id: The run id in the results database ('' for a saved folder outside it).
        spec: The :class:`~zoo_core.config.RunSpec` it was trained with.
        model: The trained :class:`~zoo_core.model.Classifier` (its kept weights).
        vocab: The vocabulary its reviews were encoded with.
        status: ``finished`` (or ``completed``/``early-stopped`` just after training), ``diverged``, ``interrupted``.
        history: Per-epoch curve: dicts of train_loss, train_accuracy, val_loss, val_accuracy, val_auc, seconds, tokens_per_sec.
        val, test: ``{"accuracy", "auc", "loss"}`` of the kept weights (empty if not scored).
        run_dir: The folder holding its weights.
    """

    id: str
    spec: RunSpec
    model: Any
    vocab: Any
    status: str
    history: list[dict]
    val: dict
    test: dict
    run_dir: Path | None = None

    def predict(self, texts: Sequence[str] | str):
        """P(positive) for each review text, encoded exactly as the run's training data.

        Returns:
            float array ``[len(texts)]`` (one text: ``[1]``).
        """
        from zoo_core.runs import predict_proba

        texts = [texts] if isinstance(texts, str) else list(texts)
        return predict_proba(self.model, self.vocab, self.spec, texts)

    def __repr__(self) -> str:
        accuracy = self.test.get("accuracy")
        score = f", test accuracy {accuracy:.4f}" if isinstance(accuracy, float) else ""
        return f"Run({self.id or self.run_dir}: {self.spec.model.label} seed {self.spec.seed}, {self.status}{score})"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return bool(get and get() is not None and type(get()).__name__ == "ZMQInteractiveShell")


class _Progbar:
    """A Keras ``Progbar`` as a training progress bar: ``update(n, text)`` adds ``n`` reviews."""

    def __init__(self, length: int, label: str):
        import keras

        print(label, flush=True)
        self.bar, self.done = keras.utils.Progbar(length, unit_name="review"), 0

    def __enter__(self):
        return self

    def update(self, n: int, text: str = "") -> None:
        self.done += n
        values = []
        for part in text.split("  "):  # "loss 0.69  acc 0.51  3.2k tok/s"
            name, _, value = part.strip().partition(" ")
            try:
                values.append((name, float(value)))
            except ValueError:
                pass
        self.bar.update(self.done, values=values)

    def __exit__(self, *exc):
        return False


def notebook_progress(length: int, label: str) -> _Progbar:
    """A live Keras ``Progbar`` for one epoch (``length`` reviews); pass as ``train(progress=notebook_progress)``."""
    return _Progbar(length, label)


class _StderrBar:
    """A text bar on stderr, redrawn in place: ``label [#####     ]  n/length  text``.

    The terminal's bar when the caller is a script, drawn without click: this module
    is a front end of the core beside the command line, not on top of it
    (tests/test_layers.py), so it draws its own.
    """

    WIDTH = 24

    def __init__(self, length: int, label: str):
        self.length, self.label, self.done, self.text = max(length, 1), label, 0, ""

    def __enter__(self):
        self._draw()
        return self

    def update(self, n: int, text: str = "") -> None:
        self.done, self.text = min(self.done + n, self.length), text or self.text
        self._draw()

    def _draw(self) -> None:
        filled = self.WIDTH * self.done // self.length
        line = f"{self.label} [{'#' * filled}{' ' * (self.WIDTH - filled)}]  {self.done}/{self.length}  {self.text}"
        sys.stderr.write("\r" + line.rstrip())
        sys.stderr.flush()

    def __exit__(self, *exc):
        sys.stderr.write("\n")
        sys.stderr.flush()
        return False


def stderr_progress(length: int, label: str) -> _StderrBar:
    """A text bar on stderr for one epoch or one data step; what ``train(progress=True)`` draws."""
    return _StderrBar(length, label)


def _progress(progress):
    """A :data:`zoo_core.progress.Progress` factory (or None) for ``train``'s ``progress`` argument."""
    if progress == "auto":
        progress = notebook_progress if _in_notebook() else sys.stderr.isatty()
    if progress is True:
        return stderr_progress
    if progress is False or progress is None:
        return None
    if not callable(progress):
        raise ZooError(f"progress must be 'auto', True, False or a factory progress(length, label); got {progress!r}")
    return progress


def _echo_err(line: str) -> None:
    """Training's per-epoch lines and notes, on stderr (as ``zoo train`` prints them) when progress is shown."""
    print(line, file=sys.stderr, flush=True)


def _data_source(settings: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``settings`` with ``data=$ZOO_DATA`` when no ``data=`` is given, and where the data's path came from.

    The library reads no environment variable; this module, a front end like the
    ``zoo`` command, honours ``$ZOO_DATA`` as ``--data`` does (over registry.toml's
    ``[data] source``), and names it, or the ``data=`` argument, when the path holds no data.
    """
    if settings.get("data") is not None:
        return dict(settings), "the data argument"
    if os.environ.get("ZOO_DATA"):
        return {**settings, "data": os.environ["ZOO_DATA"]}, "ZOO_DATA"
    return dict(settings), None


def train(model: str | None = None, *, seed: int = 0, params: Mapping[str, Any] | None = None,
          results: str | Path | None = None, runs: str | Path | None = None, progress: Any = "auto",
          using=None, **settings: Any) -> Run:
    """Trains one model, records it in the results database (as ``zoo train`` does) and returns it.

    Args:
        model, seed, params, **settings: As for :func:`spec` (``data=PATH``,
            ``epochs=1``, ``limit=2000``, ``cell="gru"``, ...).
        results: The results database (default: ``$ZOO_RESULTS`` or the configured one).
        runs: The runs folder for its weights (default: ``$ZOO_RUNS``, registry.toml, or beside the database).
        progress: ``"auto"`` (a Keras ``Progbar`` in a notebook, a bar on
            stderr in a terminal, else nothing), True (:func:`stderr_progress`),
            False, or a factory ``progress(length, label)`` like
            :func:`notebook_progress` (:data:`zoo_core.progress.Progress`).
            With a bar, each epoch's line goes to stderr too. A run with
            ``deterministic=True`` turns TensorFlow's op determinism on for
            the rest of the process (it cannot be undone;
            :func:`zoo_core.training.enable_determinism`).

    Returns:
        The recorded :class:`Run`. A diverged run (NaN loss) is returned with
        status ``nan`` and its last good weights, as the CLI keeps them.

    Raises:
        ZooError: bad settings, missing or invalid data, an unwritable database or runs folder,
            a ``progress`` that is none of the above.
        KeyboardInterrupt: interrupted (the run is recorded ``interrupted`` with its weights).
    """
    import warnings

    from zoo_core import ranking
    from zoo_core.data import find_source, load_dataset
    from zoo_core.results import ResultsDB, resolve_results_path
    from zoo_core.runs import check_runs_dir, resolve_runs_dir
    from zoo_core.specs import deterministic_ops
    from zoo_core.training import enable_determinism, train as train_model

    reg = using or registry()
    settings, origin = _data_source(settings)
    run = spec(model, seed=seed, params=params, using=reg, **settings)
    find_source(run.data, reg.settings, origin=origin)  # missing or bad data: one line, nothing recorded
    db_path = resolve_results_path(None if results is None else str(results), reg.settings)
    runs_dir = check_runs_dir(*resolve_runs_dir(runs, reg.settings, db_path))
    db = ResultsDB(db_path)
    shown = _progress(progress)
    if deterministic_ops([run]):
        enable_determinism()  # process-wide and one-way, as `zoo train` does at its start
    # The same factory draws the data's bars: its update(n, text="") serves the data's update(n).
    dataset = load_dataset(run.data, reg.settings, seed=ranking.DATA_SEED, progress=shown,
                           warn=lambda line: warnings.warn(line, stacklevel=2), origin=origin)
    try:
        recorded = ranking.record_run(run, reg, db, runs_dir, lambda: dataset, fresh=True, train=train_model,
                                      progress=shown, echo=None if shown is None else _echo_err)
    except ranking.RunFailed as failure:  # recorded as failed; the error itself is what the caller needs
        raise failure.error from None
    result = recorded.result
    return Run(recorded.run_id, run, recorded.model, dataset.vocab, result.status, result.history,
               dict(result.val or {}), dict(result.test or {}), recorded.run_dir)


def runs(pattern: str | None = None, *, results: str | Path | None = None, using=None) -> list:
    """Recorded runs, oldest first (:class:`zoo_core.results.RunRecord`: id, status, spec, metrics, curves, run_dir).

    Args:
        pattern: Keep runs whose model label matches this fnmatch pattern, or whose id starts with it.
        results: The results database (default: ``$ZOO_RESULTS`` or the configured one).
    """
    import fnmatch

    from zoo_core.results import ResultsDB, resolve_results_path

    reg = using or registry()
    path = resolve_results_path(None if results is None else str(results), reg.settings)
    if not Path(path).exists():
        return []
    records = ResultsDB(path).runs()
    if pattern is None:
        return records
    return [r for r in records if r.id.startswith(pattern) or fnmatch.fnmatchcase(r.label, pattern)]


def load(reference: str = "best", *, results: str | Path | None = None, runs: str | Path | None = None,
         using=None) -> Run | EnsembleRun:
    """A recorded run with its weights: ``best`` (the leader of the latest setup), a run id or prefix, or a saved folder.

    An ensemble's id (or ``best``, when an ensemble leads) gives an :class:`EnsembleRun` of its members.

    Raises:
        ZooError: no such run, several runs with that prefix, pruned or damaged weights.
    """
    from zoo_core.results import ResultsDB, resolve_results_path
    from zoo_core.runs import load_run, resolve_run, resolve_runs_dir, saved_run_folder

    reg = using or registry()
    folder, run_id, record = saved_run_folder(reference), "", None
    if folder is None:
        db_path = resolve_results_path(None if results is None else str(results), reg.settings)
        db = ResultsDB(db_path)
        runs_dir = resolve_runs_dir(runs, reg.settings, db_path)[0]
        folder, run_id = resolve_run(reference, db, runs_dir, ensembles=True)
        record = next((r for r in db.runs() if r.id == run_id), None)
        if folder is None:  # an ensemble: its members, with their weights
            from zoo_core.ensemble import load_ensemble

            loaded = load_ensemble(record, db, runs_dir, reg)
            members = [_member_run(db.get(m.id), m) for m in loaded.members]
            return EnsembleRun(record.id, record.label, record.spec, members, record.status,
                               _scores(record, "val"), _scores(record, "test"))
    model, vocab, run = load_run(folder, reg)
    if record is not None:
        return Run(run_id, run, model, vocab, record.status, list(record.curves or []),
                   _scores(record, "val"), _scores(record, "test"), Path(folder))
    return Run(run_id, run, model, vocab, "saved", [], {}, {}, Path(folder))


@dataclasses.dataclass
class EnsembleRun:
    """A recorded ensemble (``zoo ensemble``): its member runs, whose P(positive) it averages, and its scores.

    Attributes:
        id: Its run id in the results database.
        label: Its name, e.g. ``ensemble(gru-mean x3)``.
        spec: The spec its row shows (its first member's setup; see :func:`zoo_core.ensemble.ensemble_spec`).
        members: The member :class:`Run` objects, with their weights.
        status: ``finished``.
        val, test: ``{"accuracy", "auc", "loss"}`` of the mean P(positive) (the loss: its binary cross-entropy).
        history: Always empty: an ensemble is not trained.
    """

    id: str
    label: str
    spec: RunSpec
    members: list[Run]
    status: str
    val: dict
    test: dict
    history: list = dataclasses.field(default_factory=list)

    def predict(self, texts: Sequence[str] | str):
        """The mean of the members' P(positive) for each review text: float64 ``[len(texts)]``."""
        import numpy as np

        texts = [texts] if isinstance(texts, str) else list(texts)
        return np.mean([np.asarray(m.predict(texts), np.float64) for m in self.members], axis=0)

    def __repr__(self) -> str:
        accuracy = self.test.get("accuracy")
        score = f", test accuracy {accuracy:.4f}" if isinstance(accuracy, float) else ""
        return f"EnsembleRun({self.id}: {self.label}, {len(self.members)} runs{score})"


def ensemble(references: Sequence[str] | None = None, *, model: str | None = None, setup: str | None = None,
             name: str | None = None, data: str | Path | None = None, results: str | Path | None = None,
             runs: str | Path | None = None, progress: Any = "auto", using=None) -> EnsembleRun:
    """Averages the P(positive) of recorded runs, scores it and records it as a run of its own (``zoo ensemble``).

    ``p(x) = mean_k p_k(x)``, each member scoring the validation and test
    reviews as it did in training; see :mod:`zoo_core.ensemble` for which runs
    can be members. The result shows in :func:`runs`, ``zoo leaderboard`` and
    ``zoo predict``.

    Args:
        references: Run ids or unique prefixes (2 or more), or None with ``model``.
        model: Instead: every finished run of this model (its seeds) in one setup.
        setup: With ``model``: the setup id or prefix (default: its latest).
        name: Its name on the leaderboard (default ``ensemble(<models>)``).
        data: Read the reviews from here instead of the source each run recorded (a copy of the same data).
        results, runs: The results database and runs folder, as for :func:`load`.
        progress: As for :func:`train`: data loading's bars and a line per member on stderr.

    Raises:
        ZooError: the members cannot be ensembled (fewer than 2, unknown, named
            twice, unfinished, pruned, scored on other reviews), or their weights or data are missing.
    """
    from zoo_core import ensemble as ens
    from zoo_core.results import ResultsDB, resolve_results_path
    from zoo_core.runs import resolve_runs_dir

    if (references is None) == (model is None):
        raise ZooError("give ensemble() run ids or model=NAME (one of them)")
    if isinstance(references, str):
        raise ZooError("ensemble() takes a list of run ids, not one string")
    reg = using or registry()
    label = None if name is None else ens.check_name(name)
    db_path = resolve_results_path(None if results is None else str(results), reg.settings)
    db = ResultsDB(db_path, create=False)
    records = ens.runs_of_model(db, model, setup) if model is not None else ens.select_members(db, list(references))
    if len(records) < 2:
        raise ZooError(f"model {model!r} has only 1 finished run with its weights in that setup: "
                       "an ensemble needs 2 or more")
    ens.check_comparable(records)
    shown = _progress(progress)
    measured = ens.score(records, db, resolve_runs_dir(runs, reg.settings, db_path)[0], reg, reg.settings,
                         source=None if data is None else str(data), origin="the data argument", progress=shown,
                         echo=None if shown is None else _echo_err)
    run_id, spec = ens.record(db, measured, label)
    members = [_member_run(record, member) for record, member in zip(measured.records, measured.members)]
    return EnsembleRun(run_id, spec.model.label, spec, members, "finished", dict(measured.scores["val"]),
                       dict(measured.scores["test"]))


def _member_run(record, member) -> Run:
    """A loaded member (:class:`zoo_core.ensemble.Member`) of a recorded run, as a :class:`Run`."""
    return Run(member.id, member.run, member.model, member.vocab, record.status, list(record.curves),
               _scores(record, "val"), _scores(record, "test"), Path(record.run_dir) if record.run_dir else None)


def _scores(record, split: str) -> dict:
    return {m: getattr(record, f"{split}_{m}") for m in ("accuracy", "auc", "loss")
            if getattr(record, f"{split}_{m}", None) is not None}
