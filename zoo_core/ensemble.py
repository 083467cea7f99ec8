"""Ensembles of recorded runs: the mean of their P(positive), scored and recorded as a run of its own.

An ensemble of the runs ``1..K`` gives a review ``x`` the arithmetic mean of
its members' probabilities::

    p(x) = (p_1(x) + p_2(x) + ... + p_K(x)) / K

where ``p_k(x)`` is run ``k``'s P(positive) for ``x``, computed as its own
scores were (:func:`zoo_core.training.predict`: with its own vocabulary,
``num_words``, ``maxlen``, padding, batching and mask). The ensemble is scored
on the validation and test splits with the rules that score every run
(:mod:`zoo_core.metrics`): accuracy counting ``p > 0.5`` as positive, the
exact ROC AUC, and as its loss the binary cross-entropy of ``p``.

Which runs can be members. Every member must be scored on the same reviews,
in the same order: the same data (its checksum), and the same ``limit``,
``split`` and ``val_fraction``, which choose the validation and test reviews
(with the fixed :data:`zoo_core.ranking.DATA_SEED`). Everything else may
differ: the model, the seed, and the settings that only change how a member
reads those reviews (``num_words``, ``maxlen``, padding, truncation, ``long``,
batching, mask) or how it was trained. Each member prepares its own inputs;
the reviews are checked to be the same ones, in the same order, before their
probabilities are averaged. A member must be a finished run whose weights are
still there (not diverged, interrupted, failed, running or pruned), not an
ensemble itself, and named once; there must be 2 or more. Each refusal is one
:class:`ZooError` line: what the records tell (:func:`select_members`) before
anything is loaded, what needs the data (its checksum, the vocabulary it
gives, the reviews' order) as it is loaded (:func:`score`).

How it is recorded. :meth:`zoo_core.results.ResultsDB.record_ensemble` adds a
``finished`` row with the member ids (``members_json``), its scores, the
members' parameters and training time summed, and a spec
(:func:`ensemble_spec`) that puts it in its first member's setup: the
leaderboard ranks it there as a row of its own (its key is the set of its
members, never a model's), ``zoo runs`` lists it, and ``zoo predict`` and
``zoo evaluate`` average its members' probabilities (:class:`Ensemble`).

Nothing here imports TensorFlow or NumPy until members are loaded, so bad
input is refused at once.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from zoo_core.config import KINDS, ModelSpec, RunSpec
from zoo_core.errors import ZooError
from zoo_core.progress import Echo, Progress, echo_or_silent
from zoo_core.results import DIVERGED, FINISHED, RUNNING, ResultsDB, RunRecord, now

#: How members are combined; part of an ensemble's key.
METHOD = "mean of P(positive)"
#: The data settings that choose which reviews a run is validated and tested on: members must share them.
REVIEW_SETTINGS = ("limit", "split", "val_fraction")
SPLITS = ("val", "test")
#: The longest ``--name``.
MAX_NAME = 100


# -- choosing the members (no TensorFlow, no NumPy) -----------------------------------------------
def select_members(db: ResultsDB, references: Sequence[str]) -> list[RunRecord]:
    """The recorded runs ``references`` name (ids or unique id prefixes), checked to be fit members.

    Raises:
        ZooError: fewer than 2 references, an empty, unknown or ambiguous one,
            a run named twice, a run that is not a finished run with its
            weights (diverged, running, interrupted, failed, abandoned,
            pruned), an ensemble, or runs scored on different reviews
            (:func:`check_comparable`).
    """
    if len(references) < 2:
        given = f"got only {references[0]!r}" if references else "got none"
        raise ZooError(f"an ensemble needs 2 or more runs, {given}: give run ids (see `zoo runs`)")
    records: list[RunRecord] = []
    given_as: dict[str, str] = {}
    for reference in references:
        if not reference.strip():
            raise ZooError("a RUN is empty: give run ids or unique prefixes of them (see `zoo runs`)")
        record = db.get(reference)
        if record.id in given_as:
            raise ZooError(f"run {record.id} is given twice (as {given_as[record.id]!r} and {reference!r}): "
                           "give each member once")
        given_as[record.id] = reference
        check_member(record)
        records.append(record)
    check_comparable(records)
    return records


def check_member(record: RunRecord) -> None:
    """Refuses a run that cannot be a member: not finished, pruned, or an ensemble.

    Raises:
        ZooError: one line saying why.
    """
    if record.is_ensemble:
        raise ZooError(f"run {record.id} is an ensemble itself (of runs {', '.join(record.members)}): "
                       "give its members instead")
    if record.status == DIVERGED or record.train_status == "nan":
        raise ZooError(f"run {record.id} diverged (its loss became NaN or infinite): only finished runs can be "
                       "members of an ensemble")
    if record.status == RUNNING:
        raise ZooError(f"run {record.id} is still running: make the ensemble once it has finished")
    if record.status != FINISHED:
        raise ZooError(f"run {record.id} is {record.status}, not finished: only finished runs can be members "
                       "of an ensemble")
    if record.pruned_at:
        when = record.pruned_at[:16].replace("T", " ")
        raise ZooError(f"run {record.id}'s weights were pruned (`zoo runs --prune`, {when} UTC): an ensemble "
                       "needs every member's weights; give another run")


def check_comparable(records: Sequence[RunRecord]) -> None:
    """Refuses members that were not scored on the same reviews (see the module's docstring).

    Raises:
        ZooError: two runs that read different data (their recorded
            checksums differ) or differ in ``limit``, ``split`` or ``val_fraction``.
    """
    first = records[0]
    for other in records[1:]:
        if first.data_checksum and other.data_checksum and first.data_checksum != other.data_checksum:
            raise ZooError(f"runs {first.id} and {other.id} read different data (checksums "
                           f"{first.data_checksum[:12]}… and {other.data_checksum[:12]}…): an ensemble's members "
                           "must be scored on the same reviews")
        for name in REVIEW_SETTINGS:
            mine, theirs = getattr(first.spec.data, name), getattr(other.spec.data, name)
            if mine != theirs:
                raise ZooError(
                    f"runs {first.id} and {other.id} were validated and tested on different reviews ({name} "
                    f"{mine} and {theirs}): an ensemble's members must share the data, limit, split and "
                    "val_fraction (num_words, maxlen, batching and training settings may differ)")


def runs_of_model(db: ResultsDB, label: str, setup: str | None = None) -> list[RunRecord]:
    """The finished runs of the model named ``label`` whose weights are kept, in one setup, by seed.

    For ``zoo ensemble --model NAME``: every seed of a model, as the leaderboard
    shows them in one row. The setup is ``setup`` (an id or prefix, as
    ``zoo leaderboard --setup`` takes) or, by default, the setup of the most
    recently finished of them.

    Raises:
        ZooError: no finished run of that model, or no (or an ambiguous) setup ``setup``.
    """
    from zoo_core import leaderboard as lb

    found = [r for r in db.finished() if r.label == label and not r.is_ensemble and not r.pruned_at]
    if not found:
        raise ZooError(f"no finished run of model {label!r} with its weights in {db.path} (see `zoo runs`)")
    chosen, _ = lb.select_setup(found, setup)
    return sorted(chosen.records, key=lambda r: (r.seed, r.started_at))


# -- what the ensemble's row says ------------------------------------------------------------------
def ensemble_key(member_ids: Sequence[str]) -> str:
    """The key (and group key) of an ensemble: its method and its set of members, in any order."""
    payload = json.dumps({"ensemble": METHOD, "members": sorted(member_ids)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def default_label(records: Sequence[RunRecord]) -> str:
    """``ensemble(gru-mean x3)``, ``ensemble(gru-mean x2 + lstm-last)``: the members' models, in order."""
    counts = collections.Counter(r.label for r in records)
    parts = [f"{label} x{counts[label]}" if counts[label] > 1 else label for label in dict.fromkeys(counts)]
    return f"ensemble({' + '.join(parts)})"


def check_name(name: str) -> str:
    """``--name``, checked: one line of at most :data:`MAX_NAME` characters, not blank.

    Raises:
        ZooError: a blank, multi-line or too long name.
    """
    if not name.strip():
        raise ZooError("--name is empty: give the ensemble a name, or leave it out for ensemble(<models>)")
    if "\n" in name or "\r" in name or len(name) > MAX_NAME:
        raise ZooError(f"--name must be one line of at most {MAX_NAME} characters")
    return name.strip()


def ensemble_spec(records: Sequence[RunRecord], label: str) -> RunSpec:
    """The spec an ensemble's row shows: its label, its members' components, the first member's setup.

    Each component is the members' one when they share it, else their names
    joined by ``+`` (``gru+lstm``); the hyperparameters are the members' when
    they are all the same model, else none. The data and training settings
    (so the leaderboard's setup) are the first member's.
    """
    specs = [r.spec for r in records]
    components = {kind: "+".join(dict.fromkeys(getattr(s.model, kind) for s in specs)) for kind in KINDS}
    models = {json.dumps({**s.model.to_dict(), "name": "", "description": ""}, sort_keys=True) for s in specs}
    params = specs[0].model.params if len(models) == 1 else {}
    ids = ", ".join(r.id for r in records)
    model = ModelSpec(**components, params=params, name=label, description=f"{METHOD} of runs {ids}")
    return RunSpec(model, specs[0].data, specs[0].train, seed=0)


# -- loading and scoring -------------------------------------------------------------------------------
@dataclasses.dataclass
class Member:
    """A recorded (or saved) run with its weights: what scores reviews, alone or in an ensemble.

    Attributes:
        id: Its run id ('' or a folder name for a saved folder outside the database).
        model: Its trained :class:`zoo_core.model.Classifier`.
        vocab: The vocabulary it was trained with.
        run: Its :class:`RunSpec`, which says how it reads reviews.
    """

    id: str
    model: Any
    vocab: Any
    run: RunSpec

    @property
    def label(self) -> str:
        return self.run.model.label

    @property
    def data(self):
        """The data settings it was trained with (where its reviews came from)."""
        return self.run.data

    def describe(self) -> str:
        return f"run {self.id}: {self.label}, seed {self.run.seed}"

    def split_probabilities(self, split):
        """P(positive) of every review of a :class:`zoo_core.data.Split`, in its order: float64 ``[n]``."""
        from zoo_core.lazy import np
        from zoo_core.training import predict

        return np.asarray(predict(self.model, split, self.run), np.float64)

    def predict_proba(self, texts: Sequence[str]):
        """P(positive) of each text, encoded as its training data was: float ``[len(texts)]``."""
        from zoo_core.runs import predict_proba

        return predict_proba(self.model, self.vocab, self.run, list(texts))

    def evaluate(self, texts: Sequence[str], labels) -> dict[str, float]:
        """``{accuracy, loss, auc}`` on labelled texts, scored as training scores a split
        (:func:`zoo_core.training.evaluate`: its loss from the logits)."""
        from zoo_core.runs import text_split
        from zoo_core.training import evaluate

        return evaluate(self.model, text_split(list(texts), labels, self.vocab, self.run), self.run)


@dataclasses.dataclass
class Ensemble:
    """Recorded runs whose P(positive) are averaged: ``p(x) = mean_k p_k(x)``.

    Attributes:
        id: Its run id in the results database ('' before it is recorded).
        label: Its name (``ensemble(gru-mean x3)`` or ``--name``).
        members: The loaded runs.
    """

    id: str
    label: str
    members: tuple[Member, ...]

    @property
    def data(self):
        """Its first member's data settings (every member's reviews are the same ones)."""
        return self.members[0].data

    def describe(self) -> str:
        ids = ", ".join(m.id for m in self.members)
        return f"ensemble {self.id}: {self.label}, {METHOD} of runs {ids}"

    def predict_proba(self, texts: Sequence[str]):
        """The mean of the members' P(positive) of each text: float64 ``[len(texts)]``."""
        from zoo_core.lazy import np

        texts = list(texts)
        return np.mean([np.asarray(m.predict_proba(texts), np.float64) for m in self.members], axis=0)

    def evaluate(self, texts: Sequence[str], labels) -> dict[str, float]:
        """``{accuracy, loss, auc}`` of the mean P(positive) on labelled texts (:func:`zoo_core.metrics.scores`)."""
        from zoo_core.metrics import scores

        return scores(labels, self.predict_proba(texts))


def load_member(record: RunRecord, db: ResultsDB, runs_dir, registry) -> Member:
    """A recorded run's :class:`Member`, its weights loaded and checked (:func:`zoo_core.runs.load_run`).

    Raises:
        ZooError: its weights are pruned, missing or damaged.
    """
    from zoo_core.runs import load_run, resolve_run

    directory, run_id = resolve_run(record.id, db, runs_dir)
    model, vocab, run = load_run(directory, registry)
    return Member(run_id, model, vocab, run)


def load_ensemble(record: RunRecord, db: ResultsDB, runs_dir, registry) -> Ensemble:
    """The recorded ensemble ``record`` with its members' weights, for ``zoo predict`` and ``zoo evaluate``.

    Raises:
        ZooError: a member that is no longer in the database, or whose weights
            are pruned, missing or damaged; the line names the ensemble and the member.
    """
    members = []
    for member_id in record.members:
        try:
            members.append(load_member(db.get(member_id), db, runs_dir, registry))
        except ZooError as err:
            raise ZooError(f"ensemble {record.id} cannot be used: its member {err}") from None
    return Ensemble(record.id, record.label, tuple(members))


@dataclasses.dataclass
class EnsembleScores:
    """What :func:`score` measured.

    Attributes:
        records: The members' records, in the order given.
        members: The loaded members, in that order.
        labels: ``{"val", "test"}``: int ``[n]`` labels of the split's reviews.
        probabilities: ``{"val", "test"}``: float64 ``[K, n]``, each member's P(positive).
        mean: ``{"val", "test"}``: float64 ``[n]``, the ensemble's P(positive) (mean over members).
        scores: ``{"val", "test"}``: the ensemble's ``{accuracy, loss, auc}``.
        member_scores: Per member, ``{"val", "test"}``: its own ``{accuracy, loss, auc}``, by the same rules.
        data_checksum: The checksum of the data every member read.
        sources: Where the reviews were read from.
        started_at: When scoring began (ISO 8601).
        seconds: How long loading and scoring took.
    """

    records: tuple[RunRecord, ...]
    members: tuple[Member, ...]
    labels: dict[str, Any]
    probabilities: dict[str, Any]
    mean: dict[str, Any]
    scores: dict[str, dict[str, float]]
    member_scores: list[dict[str, dict[str, float]]]
    data_checksum: str
    sources: tuple[str, ...]
    started_at: str
    seconds: float


def score(records: Sequence[RunRecord], db: ResultsDB, runs_dir, registry, settings, *,
          source: str | None = None, origin: str | None = None, progress: Progress | None = None,
          echo: Echo | None = None, warn: Callable[[str], None] | None = None) -> EnsembleScores:
    """Loads each member, computes its P(positive) on the validation and test splits, averages and scores them.

    Args:
        records: From :func:`select_members`.
        db: The results database (where the members' folders are recorded).
        runs_dir: The runs folder, for members that recorded no folder of their own.
        registry: Builds the members' models.
        settings: ``registry.toml``'s settings (the data search path and cache).
        source: Read the reviews from here instead of each member's own data source.
        origin: Where ``source`` came from, for errors (``"--data"``, ``"ZOO_DATA"``).
        progress: Data loading's bars (:data:`zoo_core.progress.Progress`); None: none.
        echo: A line per member as it is scored; None: silent.
        warn: Data loading's warnings.

    Raises:
        ZooError: a member's weights missing or damaged, its data missing, or
            data whose checksum or vocabulary is not the one the member was
            trained with, or splits that do not hold the same reviews in the same order.
    """
    from zoo_core.data import find_source, load_dataset

    def data_of(spec: RunSpec):
        return spec.data if source is None else dataclasses.replace(spec.data, source=source)

    for record in records:  # missing data: one line before TensorFlow is imported or anything loaded
        find_source(data_of(record.spec), settings, origin=origin)

    from zoo_core.lazy import np
    from zoo_core.metrics import scores as score_probabilities
    from zoo_core.ranking import DATA_SEED

    echo = echo_or_silent(echo)
    started, clock = now(), time.monotonic()
    datasets: dict[Any, Any] = {}
    members, probabilities, labels, reference, sources = [], {s: [] for s in SPLITS}, {}, {}, []
    for index, record in enumerate(records, start=1):
        member = load_member(record, db, runs_dir, registry)
        config = data_of(member.run)
        if config not in datasets:
            datasets[config] = load_dataset(config, settings, seed=DATA_SEED, progress=progress, warn=warn,
                                            origin=origin)
        data = datasets[config]
        _check_data(record, member, data, reference)
        sources.append(data.source)
        echo(f"[{index}/{len(records)}] run {record.id} ({member.label}, seed {member.run.seed}): scoring "
             f"{len(data.val):,} validation and {len(data.test):,} test reviews")
        for split in SPLITS:
            probabilities[split].append(member.split_probabilities(getattr(data, split)))
            labels.setdefault(split, np.asarray(getattr(data, split).labels))
        members.append(member)
    stacked = {s: np.stack(probabilities[s]) for s in SPLITS}
    mean = {s: stacked[s].mean(axis=0) for s in SPLITS}
    return EnsembleScores(
        records=tuple(records), members=tuple(members), labels=labels, probabilities=stacked, mean=mean,
        scores={s: score_probabilities(labels[s], mean[s]) for s in SPLITS},
        member_scores=[{s: score_probabilities(labels[s], stacked[s][k]) for s in SPLITS}
                       for k in range(len(members))],
        data_checksum=reference["checksum"], sources=tuple(dict.fromkeys(sources)), started_at=started,
        seconds=time.monotonic() - clock)


def _check_data(record: RunRecord, member: Member, data, reference: dict[str, Any]) -> None:
    """Refuses data that is not what ``member`` was trained on, or whose splits differ from the first member's.

    ``reference`` holds the first member's checksum and review ids (filled on the first call).
    """
    from zoo_core.lazy import np

    if record.data_checksum and data.checksum != record.data_checksum:
        raise ZooError(f"run {record.id} was trained on other data than {data.source} (checksum "
                       f"{record.data_checksum[:12]}…, not {data.checksum[:12]}…): pass --data with the data it "
                       "was trained on")
    if list(data.vocab.words) != list(member.vocab.words):
        raise ZooError(f"{data.source} gives run {record.id} another vocabulary than the one it was trained with "
                       "(another tokeniser or data?): pass --data with the data it was trained on")
    rows = {s: (getattr(data, s).review_ids, getattr(data, s).labels) for s in SPLITS}
    if not reference:
        reference.update(checksum=data.checksum, rows=rows, id=record.id)
        return
    if data.checksum != reference["checksum"]:
        raise ZooError(f"runs {reference['id']} and {record.id} read different data (checksums "
                       f"{reference['checksum'][:12]}… and {data.checksum[:12]}…): an ensemble's members must be "
                       "scored on the same reviews")
    for split in SPLITS:
        (ids, labels), (first_ids, first_labels) = rows[split], reference["rows"][split]
        if not (np.array_equal(ids, first_ids) and np.array_equal(labels, first_labels)):
            raise ZooError(f"runs {reference['id']} and {record.id} do not hold the same {split} reviews in the "
                           "same order: an ensemble's members must be scored on the same reviews")


def record(db: ResultsDB, measured: EnsembleScores, label: str | None = None) -> tuple[str, RunSpec]:
    """Records ``measured`` as a finished run of its own (:meth:`ResultsDB.record_ensemble`).

    Args:
        db: The results database, opened for writing.
        measured: From :func:`score`.
        label: Its name; default :func:`default_label`.

    Returns:
        ``(its run id, the spec its row shows)``.
    """
    records = measured.records
    label = label or default_label(records)
    spec = ensemble_spec(records, label)
    ids = [r.id for r in records]
    params = [r.params for r in records]
    times = [r.wall_time for r in records]
    run_id = db.record_ensemble(
        spec, ensemble_key(ids), ids, measured.scores["val"], measured.scores["test"],
        message=f"{METHOD} of runs {', '.join(ids)}",
        params=sum(params) if None not in params else None,
        wall_time=sum(times) if None not in times else None,
        # The first member's checksum, as recorded, keeps the ensemble in that member's leaderboard setup.
        data_checksum=records[0].data_checksum or measured.data_checksum, started_at=measured.started_at)
    return run_id, spec


def same_setup(records: Sequence[RunRecord]) -> bool:
    """Whether every member is in one leaderboard setup (otherwise the ensemble is ranked in the first's)."""
    from zoo_core.leaderboard import setup_key

    return len({setup_key(r) for r in records}) == 1

