"""Saved runs: weights, vocabulary and spec on disk, enough to rebuild a classifier exactly.

A run directory holds::

    run.json          the RunSpec, the vocabulary size, the training result, provenance,
                      and the SHA-256 of every other file of the run
    vocab.json        the vocabulary (zoo_core.data.Vocabulary)
    weights/model.*   a TensorFlow checkpoint of the classifier's variables (never pickle)

:func:`save_run` writes into a temporary folder first and moves the files into
place at the end, so an interrupted save never leaves a half-written run
behind. It never deletes what is not the run's own: it writes only into a
missing or empty folder, or (when asked to overwrite) replaces the three
entries above in a folder that already holds a saved run.

:func:`load_run` checks everything before using it: run.json's structure, the
checksums (runs saved before checksums were recorded skip only that check),
the vocabulary against the embedding, and that every weight is finite. Each
problem is one :class:`ZooError` naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo_core.config import RunSpec
from zoo_core.errors import ZooError

FORMAT_VERSION = 1
CHECKPOINT = Path("weights") / "model"
# The entries of a run folder that belong to the run; nothing else in the folder is touched.
RUN_FILES = ("run.json", "vocab.json", "weights")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _result_dict(result: Any) -> dict[str, Any]:
    """A strict-JSON view of a TrainResult, without its run (stored once, at the top level)."""
    values = result.to_dict() if hasattr(result, "to_dict") else dataclasses.asdict(result)
    values.pop("run", None)
    # The round trip turns numpy numbers into floats and NaN into null.
    return json.loads(json.dumps(values, default=float), parse_constant=lambda _: None)


# -- where a run may be saved ------------------------------------------------------------
def check_folder_writable(folder: str | os.PathLike, what: str) -> Path:
    """Refuses a folder that cannot be written or created, before anything is trained.

    Args:
        folder: A folder that files will be written into (created if missing).
        what: What it is, for the message (e.g. ``"runs folder"``).

    Returns:
        ``folder`` as an absolute path.

    Raises:
        ZooError: it is a file, an ancestor is a file, or it (or the nearest
            existing ancestor, when it is missing) cannot be written.
    """
    folder = Path(folder).expanduser().absolute()
    existing = next((p for p in (folder, *folder.parents) if p.exists() or p.is_symlink()), None)
    if existing is None:
        raise ZooError(f"cannot use {what} {folder}: none of its folders exists")
    if not existing.is_dir():
        raise ZooError(f"cannot use {what} {folder}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".zoo-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        verb = "write in" if existing == folder else "create it in"
        raise ZooError(f"cannot use {what} {folder}: cannot {verb} {existing} ({err.strerror or err})") from None
    return folder


def is_saved_run(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a run.json that says it is a saved run (its other files are not checked)."""
    try:
        meta = json.loads((Path(folder) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "format" in meta and "run" in meta


def check_save_target(directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Where a run may be saved: a missing or empty folder, or (with ``overwrite``) a saved run.

    Call it before training, so a bad destination costs nothing.

    Returns:
        The folder as an absolute path.

    Raises:
        ZooError: an empty path, a file, a folder holding other things, a
            saved run without ``overwrite``, or a place that cannot be written.
    """
    if not str(directory).strip():
        raise ZooError("--save needs a folder name, got an empty one")
    folder = Path(directory).expanduser().absolute()
    if folder.is_dir():
        try:
            entries = sorted(p.name for p in folder.iterdir())
        except OSError as err:
            raise ZooError(f"cannot save to {folder}: cannot list it ({err.strerror or err})") from None
        if entries and not is_saved_run(folder):
            shown = ", ".join(repr(e) for e in entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ZooError(f"cannot save to {folder}: it is not empty ({len(entries)} entries: {shown}) and holds "
                           "no saved run, so nothing was written; choose a new or empty folder")
        if entries and not overwrite:
            raise ZooError(f"cannot save to {folder}: it already holds a saved run; pass --overwrite to replace its "
                           f"{', '.join(RUN_FILES[:-1])} and {RUN_FILES[-1]}/ (nothing else in it is touched), "
                           "or choose another folder")
    elif folder.exists() or folder.is_symlink():
        raise ZooError(f"cannot save to {folder}: it is a file, not a folder")
    return check_folder_writable(folder, "save folder")


# -- saving ----------------------------------------------------------------------------
def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksums(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of vocab.json and every file under weights/."""
    files = [folder / "vocab.json"] + sorted(p for p in (folder / "weights").rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): sha256_of(p) for p in files}


def save_run(directory: str | os.PathLike, model, vocab, run: RunSpec, result: Any, overwrite: bool = False,
             provenance: dict[str, str] | None = None) -> Path:
    """Saves a trained classifier, its vocabulary, its spec and its result under ``directory``.

    Args:
        directory: The run's folder: missing (created), empty, or with
            ``overwrite`` a saved run, whose run.json, vocab.json and weights/
            are replaced (anything else in it is kept).
        model: The trained :class:`zoo_core.model.Classifier`.
        vocab: The :class:`zoo_core.data.Vocabulary` it was trained with.
        run: The RunSpec it was trained from.
        result: Its ``TrainResult``.
        overwrite: Allow replacing a saved run.
        provenance: Where it trained, if not in this process (a Ray worker's
            :func:`zoo_core.results.provenance`); None: this process's.

    Returns:
        The directory.

    Raises:
        ZooError: see :func:`check_save_target`.
    """
    import tensorflow as tf

    from zoo_core import results

    directory = check_save_target(directory, overwrite)
    exists = directory.is_dir()
    # Beside a new folder (renamed into place at once), or inside an existing one (moved entry by entry).
    partial = directory / f".partial-{os.getpid()}" if exists else directory.with_name(
        f".{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        tf.train.Checkpoint(model=model).write(str(partial / CHECKPOINT))
        vocab.save(partial / "vocab.json")
        meta = {
            "format": FORMAT_VERSION,
            "run": run.to_dict(),
            "key": run.key(),
            "vocab_size": int(model.encoder.vocab_size),
            "checksums": _checksums(partial),
            "result": _result_dict(result),
            "provenance": dict(provenance or results.provenance()),
        }
        (partial / "run.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        if not exists:
            partial.rename(directory)
        else:
            _replace_run_files(partial, directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return directory


def _replace_run_files(new: Path, directory: Path) -> None:
    """Moves the run's own entries from ``new`` into ``directory``, run.json last.

    A save stopped half-way leaves the old run.json, whose checksums then tell
    that vocab.json or weights/ changed: the run is refused, not misused.
    """
    old_weights = directory / f".old-weights-{os.getpid()}"
    if (directory / "weights").exists():
        (directory / "weights").rename(old_weights)
    (new / "weights").rename(directory / "weights")
    shutil.rmtree(old_weights, ignore_errors=True)
    os.replace(new / "vocab.json", directory / "vocab.json")
    os.replace(new / "run.json", directory / "run.json")


# -- loading ---------------------------------------------------------------------------
def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed and checked ``run.json`` of a saved run.

    Returns:
        The mapping, with ``format`` (int), ``run`` (a mapping that
        :meth:`RunSpec.from_dict` accepts), ``vocab_size`` (int >= 3) and
        optionally ``checksums`` (``{relative path: sha256}``).

    Raises:
        ZooError: when the folder holds no saved run, or its run.json is
            unreadable or malformed; the message names the file.
    """
    path = Path(directory) / "run.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except FileNotFoundError:
        raise ZooError(f"no saved run at {directory} (its run.json is missing)") from None
    except (OSError, ValueError) as err:
        raise ZooError(f"saved run at {directory} is unreadable: {path}: {err}") from None

    def bad(what: str) -> ZooError:
        return ZooError(f"saved run at {directory} is damaged: {path} {what}")

    if not isinstance(meta, dict):
        raise bad(f"holds {_shown(meta)}, not a JSON object")
    for key in ("format", "run", "vocab_size"):
        if key not in meta:
            raise bad(f"has no {key!r}")
    fmt = meta["format"]
    if type(fmt) is not int or fmt < 1:
        raise bad(f"has format {_shown(fmt)}, not a format number")
    if fmt > FORMAT_VERSION:
        raise ZooError(f"saved run at {directory} has format {fmt}, newer than this rnn-zoo reads "
                       f"({FORMAT_VERSION}); upgrade rnn-zoo")
    if not isinstance(meta["run"], dict):
        raise bad(f"has 'run' = {_shown(meta['run'])}, not a run spec")
    try:
        RunSpec.from_dict(meta["run"])
    except Exception as err:  # noqa: BLE001 - any fault in the spec is the file's
        raise bad(f"has a 'run' that is not a valid run spec ({type(err).__name__}: {err})") from None
    size = meta["vocab_size"]
    if type(size) is not int or size < 3:
        raise bad(f"has vocab_size {_shown(size)}, not a whole number of at least 3")
    checksums = meta.get("checksums")
    if checksums is not None and not (
            isinstance(checksums, dict)
            and all(isinstance(k, str) and _inside(k) and isinstance(v, str) and _SHA256.fullmatch(v)
                    for k, v in checksums.items())):
        raise bad("has 'checksums' that are not {relative file: SHA-256}")
    return meta


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _inside(relative: str) -> bool:
    """Whether a path from run.json stays inside the run's folder."""
    parts = Path(relative).parts
    return bool(parts) and not Path(relative).is_absolute() and ".." not in parts


def _shown(value: Any, width: int = 40) -> str:
    """A value from a JSON file as JSON, cut to ``width`` characters, for an error line."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= width else text[: width - 1] + "…"


def verify_checksums(directory: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Checks each file listed in run.json's ``checksums`` (runs saved before checksums: nothing to check).

    Raises:
        ZooError: a listed file is missing or its bytes changed.
    """
    directory = Path(directory)
    for relative, expected in (meta.get("checksums") or {}).items():
        path = directory / relative
        try:
            actual = sha256_of(path)
        except OSError as err:
            raise ZooError(f"saved run at {directory} is damaged: {path} is missing or unreadable "
                           f"({err.strerror or err})") from None
        if actual != expected:
            raise ZooError(f"saved run at {directory} is damaged: {path} does not match the checksum in "
                           "run.json (it was changed or cut short after saving)")


def _load_vocab(directory: Path, vocab_size: int):
    """The run's vocabulary, checked to fit an embedding of ``vocab_size`` rows."""
    from zoo_core.data import Vocabulary

    path = directory / "vocab.json"
    try:
        vocab = Vocabulary.load(path)
    except FileNotFoundError:
        raise ZooError(f"saved run at {directory} has no vocab.json") from None
    except (OSError, UnicodeDecodeError, ZooError) as err:
        raise ZooError(f"saved run at {directory} is damaged: {path}: {err}") from None
    words = vocab.words
    odd = next((w for w in words if not isinstance(w, str)), None)
    if odd is not None:
        raise ZooError(f"saved run at {directory} is damaged: {path} holds {_shown(odd)}, not a word")
    if len(set(words)) != len(words):
        raise ZooError(f"saved run at {directory} is damaged: {path} lists a word twice")
    if len(words) != vocab_size:
        raise ZooError(f"saved run at {directory} is damaged: {path} has {len(words)} words, but the model was "
                       f"trained on {vocab_size} (vocab_size in run.json)")
    return vocab


def load_run(directory: str | os.PathLike, registry):
    """Rebuilds a saved run's classifier through the registry and restores its weights.

    Returns:
        ``(classifier, vocabulary, run_spec)``.

    Raises:
        ZooError: missing, damaged or tampered files (a bad run.json, a
            checksum mismatch, a vocabulary that does not fit the embedding,
            an unreadable checkpoint, NaN or infinite weights), or weights that
            do not fit the spec. The message names the file.
    """
    import numpy as np
    import tensorflow as tf

    from zoo_core.model import Classifier

    directory = Path(directory)
    meta = read_meta(directory)
    verify_checksums(directory, meta)
    run = RunSpec.from_dict(meta["run"])
    vocab = _load_vocab(directory, meta["vocab_size"])
    model = Classifier(run.model, registry, meta["vocab_size"])
    checkpoint = directory / CHECKPOINT
    if not Path(str(checkpoint) + ".index").exists():
        raise ZooError(f"saved run at {directory} has no weights ({CHECKPOINT}.index is missing)")
    try:
        status = tf.train.Checkpoint(model=model).read(str(checkpoint))
        status.assert_consumed()  # every saved value restored, every variable of the model given one
    except (AssertionError, ValueError) as err:
        raise ZooError(f"weights at {directory} do not fit its spec {run.model.label}: {_first_line(err)}") from None
    except Exception as err:  # noqa: BLE001 - TF reports a cut or garbled checkpoint in many ways
        raise ZooError(f"saved run at {directory} is damaged: cannot read its weights {checkpoint}.*: "
                       f"{_first_line(err)}") from None
    for variable in model.variables:
        if not np.all(np.isfinite(variable.numpy())):
            raise ZooError(f"saved run at {directory} is damaged: its weights {checkpoint}.* hold NaN or infinite "
                           f"values (in {variable.name}); retrain it")
    return model, vocab, run


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def resolve_run(reference: str, db, runs_dir: str | os.PathLike | None = None, ensembles: bool = False
                ) -> tuple[Path | None, str]:
    """The directory and id of a saved run named by id, id prefix, ``best`` or a folder path.

    ``best`` is the top spec of the default leaderboard by mean test accuracy
    (the setup of the most recently finished run, over runs whose weights were
    saved or pruned; see :func:`zoo_core.leaderboard.select_setup`), and within
    it the seed with the best test accuracy whose weights are still there.

    Args:
        reference: What the user typed.
        db: The :class:`zoo_core.results.ResultsDB`.
        runs_dir: The runs folder (:func:`resolve_runs_dir`), where a run that
            recorded no folder of its own is looked for.
        ensembles: Whether the caller can use an ensemble (``zoo ensemble``),
            which has no folder of its own: it is returned as ``(None, its id)``,
            and ``best`` may name one whose members' weights are all there.
            Otherwise an ensemble's id is refused and ``best`` passes ensembles over.

    Raises:
        ZooError: unknown or ambiguous id, a run whose weights are gone
            (pruned, deleted, or never saved), or an ensemble where none is wanted.
    """
    from zoo_core import leaderboard as lb

    if reference == "best":
        finished = db.finished()
        by_id = {r.id: r for r in db.runs()}  # a member need not be its spec's latest run

        def saved(record) -> bool:
            return record.pruned_at is None and _run_dir(record, runs_dir).joinpath("run.json").exists()

        # Pruned runs still count in their spec's mean, so `best` names the leaderboard's top row.
        usable = [r for r in finished if not r.is_ensemble and (r.pruned_at or saved(r))]
        if ensembles:
            usable += [r for r in finished if r.is_ensemble and all(m in by_id and saved(by_id[m]) for m in r.members)]
        if not any(r.pruned_at is None for r in usable):
            raise ZooError(f"no saved runs in {db.path} yet (run `zoo rank` or `zoo train` first)")
        setup, _ = lb.select_setup(usable)
        group = lb.sort_groups(lb.group_runs(setup.records), "test_accuracy")[0]
        kept = tuple(r for r in group.runs if r.pruned_at is None)
        if not kept:
            raise ZooError(f"the weights of every run of the top spec {group.label} were pruned; "
                           "give a run id (see `zoo runs`)")
        record = lb.Group(group.key, kept).best_run("test_accuracy")
        return (None, record.id) if record.is_ensemble else (_run_dir(record, runs_dir), record.id)
    folder = saved_run_folder(reference)
    if folder is not None:
        return folder, folder.name
    record = db.get(reference)
    if record.is_ensemble:
        if ensembles:
            return None, record.id
        raise ZooError(f"run {record.id} ({record.label}) is an ensemble of runs {', '.join(record.members)}, "
                       "with no weights of its own: give one of its members")
    directory = _run_dir(record, runs_dir)
    if record.pruned_at:
        when = record.pruned_at[:16].replace("T", " ")
        raise ZooError(f"run {record.id}'s weights were pruned (`zoo runs --prune`, {when} UTC); "
                       f"its metrics and curves stay in {db.path}")
    saved = (directory / "run.json").exists()
    if record.status == "diverged":
        raise ZooError(f"run {record.id} diverged (its loss became NaN or infinite); give its folder {directory} "
                       "to use its last good weights anyway")
    if record.status == "interrupted" and saved:
        raise ZooError(f"run {record.id} was interrupted before it finished; give its folder {directory} "
                       "to use the weights it had anyway")
    if record.status != "finished":
        raise ZooError(f"run {record.id} is {record.status}, not finished: it has no saved weights")
    if not saved:
        raise ZooError(f"run {record.id} has no saved files at {directory} (were they deleted?)")
    return directory, record.id


def saved_run_folder(reference: str) -> Path | None:
    """``reference`` as a saved run's folder, or None when it names a run in the database instead.

    A folder holding run.json is one; so is any folder given as a path (with a
    slash), whose missing or damaged files :func:`load_run` then names. A bare
    word without run.json (``best``, an id) is looked up in the database.
    """
    path = Path(reference).expanduser()
    if (path / "run.json").is_file() or (path.is_dir() and (os.sep in reference or reference in (".", ".."))):
        return path
    return None


def _run_dir(record, runs_dir: str | os.PathLike | None) -> Path:
    """Where a run's files are: the folder it recorded, else ``runs_dir / <run id>``."""
    if record.run_dir:
        return Path(record.run_dir)
    if runs_dir is None:
        raise ZooError(f"run {record.id} recorded no folder")
    return Path(runs_dir) / record.id


# -- where runs go -------------------------------------------------------------------
RUNS_FOLDER = "runs"  # beside the results database, by default


def resolve_runs_dir(explicit: str | os.PathLike | None, settings, results_path: str | os.PathLike
                     ) -> tuple[Path, str]:
    """The runs folder: where each run's weights go, as ``<folder>/<run id>``.

    In order: ``--runs DIR`` (``explicit``), ``$ZOO_RUNS``, ``[paths] runs``
    in registry.toml (both already in ``settings.runs_dir``), else a ``runs``
    folder beside the results database, so each database keeps its own runs
    (for the default database, ``~/.local/share/rnn-zoo/runs``). A run records
    its folder in the database, so runs saved elsewhere before still load.

    Returns:
        ``(folder, where the choice came from)``, the folder absolute (not
        checked: see :func:`check_folder_writable`).

    Raises:
        ZooError: an empty ``--runs``.
    """
    if explicit is not None:
        if not str(explicit).strip():
            raise ZooError("--runs needs a folder path, got an empty one (leave the flag out for the default: "
                           "runs/ beside the results database)")
        return Path(explicit).expanduser().resolve(), "--runs"
    if settings.runs_dir is not None:
        return Path(settings.runs_dir), settings.runs_source or "registry.toml"
    return Path(results_path).expanduser().resolve().parent / RUNS_FOLDER, "beside the results database"


def check_runs_dir(folder: str | os.PathLike, source: str = "") -> Path:
    """Refuses a runs folder that cannot be created or written (call it before any training).

    Args:
        folder: The runs folder.
        source: Where it was set (from :func:`resolve_runs_dir`), for the message.

    Returns:
        The folder, absolute.

    Raises:
        ZooError: it, or a folder above it, is a file, or it cannot be created or written.
    """
    return check_folder_writable(folder, f"runs folder (from {source})" if source else "runs folder")


# -- reclaiming space ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Prunable:
    """A run whose weights ``zoo runs --prune`` would delete."""

    record: Any  # its RunRecord
    folder: Path
    size: int  # bytes
    why: str  # e.g. "seed 1 of 3, not the best"


@dataclasses.dataclass(frozen=True)
class PrunePlan:
    """What pruning would delete and what it leaves.

    Attributes:
        runs_dir: The runs folder; nothing outside it is deleted.
        delete: The runs whose folders go, oldest first.
        kept: Ids of the runs a leaderboard row points to (their folders stay).
        outside: Runs that could go but whose folders are not in ``runs_dir``
            (saved under another runs folder): left alone.
    """

    runs_dir: Path
    delete: tuple[Prunable, ...]
    kept: frozenset[str]
    outside: tuple[Any, ...]

    @property
    def size(self) -> int:
        return sum(p.size for p in self.delete)


def _folder_size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            pass
    return total


def _why_prunable(record, finished_ids: set[str], seeds: dict[str, int]) -> str:
    if record.status != "finished":
        return record.status
    if record.id not in finished_ids:
        return "an older run of the same spec and seed"
    return f"seed {record.seed} of {seeds.get(record.group_key, 1)}, not the best"


def plan_prune(db, runs_dir: str | os.PathLike) -> PrunePlan:
    """The run folders ``zoo runs --prune`` may delete: every run's but those a leaderboard row points to.

    Kept: the best run (by test accuracy) of each spec in every setup, the
    ``best_run`` every leaderboard shows, so ``zoo predict best`` and every
    row's run still load, and every member of a recorded ensemble (``zoo
    ensemble``), so the ensemble still predicts. Deleted: the other seeds,
    older runs of the same (spec, seed), and runs that diverged, were
    interrupted, failed or were abandoned. Only a folder the database records for that run, directly in
    ``runs_dir``, named by the run's id and holding that run's run.json, is
    ever listed: never a running run's, never anything else.
    """
    from zoo_core import leaderboard as lb
    from zoo_core.results import RUNNING

    runs_dir = Path(runs_dir).expanduser().resolve()
    finished = db.finished()
    kept = lb.best_run_ids(finished) | {m for r in finished if r.is_ensemble for m in r.members}
    finished_ids = {r.id for r in finished}
    seeds: dict[str, int] = {}
    for record in finished:
        seeds[record.group_key] = seeds.get(record.group_key, 0) + 1
    delete, outside = [], []
    for record in db.runs():
        if record.id in kept or record.status == RUNNING or record.pruned_at:
            continue
        folder = _run_dir(record, runs_dir)
        if not _is_own_folder(folder, record):
            continue
        if folder.resolve().parent != runs_dir or folder.name != record.id:
            outside.append(record)
            continue
        delete.append(Prunable(record, folder, _folder_size(folder), _why_prunable(record, finished_ids, seeds)))
    return PrunePlan(runs_dir, tuple(delete), frozenset(kept), tuple(outside))


def _is_own_folder(folder: Path, record) -> bool:
    """Whether ``folder`` is a real folder (not a link) holding the saved run of ``record``."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        return read_meta(folder).get("key") == record.key
    except ZooError:
        return False


def prune(plan: PrunePlan, db) -> tuple[list[Prunable], list[str]]:
    """Deletes the run folders of ``plan`` and marks each of those runs pruned; their records stay.

    The plan is made again first and only runs in both are deleted, so a run
    that became a leaderboard's best run since the user confirmed is spared.
    Each folder is first renamed to a hidden name (at once, and only if it can
    be), then its run is marked pruned, then the folder is deleted: a run is
    never marked pruned while its weights stay usable, and a folder left half
    deleted is never taken for a run.

    Returns:
        ``(deleted, problems)``: what was deleted, and one line per folder that
        could not be (wholly) deleted.
    """
    confirmed = {p.record.id for p in plan.delete}
    deleted, problems = [], []
    for item in plan_prune(db, plan.runs_dir).delete:
        if item.record.id not in confirmed:
            continue
        doomed = item.folder.with_name(f".pruning-{item.record.id}")
        try:
            item.folder.rename(doomed)
        except OSError as err:
            problems.append(f"run {item.record.id}: could not delete {item.folder} ({err.strerror or err})")
            continue
        db.mark_pruned(item.record.id)
        try:
            shutil.rmtree(doomed)
        except OSError as err:
            problems.append(f"run {item.record.id}: its weights were pruned, but {doomed} could not be wholly "
                            f"deleted ({err.strerror or err})")
        deleted.append(item)
    return deleted, problems


# -- using a saved run ---------------------------------------------------------------
def read_reviews(path: str | os.PathLike) -> list[str]:
    """Reviews from a UTF-8 text file, one per line (``-`` reads standard input).

    Lines end only at ``\\n`` or ``\\r\\n`` (:func:`zoo_core.data.text_lines`), so a
    U+0085 or U+2028 inside a review, as in IMDB's own text, stays in it. Blank
    lines are kept as empty reviews, so results stay aligned with the file's
    lines; only blank lines at the very end are dropped.

    Raises:
        ZooError: missing, binary or non-UTF-8 file, or one without any review.
    """
    import sys

    from zoo_core.data import is_blank, text_lines

    if str(path) == "-":
        data, name = sys.stdin.buffer.read(), "standard input"
    else:
        name = str(path)
        try:
            data = Path(path).expanduser().read_bytes()
        except FileNotFoundError:
            raise ZooError(f"{name} does not exist") from None
        except OSError as err:
            raise ZooError(f"cannot read {name}: {err.strerror or err}") from None
    text = check_text(data, name)
    reviews = [line.strip(" \t\r\f\v") for line in text_lines(text)]
    while reviews and not reviews[-1]:
        reviews.pop()
    if all(is_blank(review) for review in reviews):
        raise ZooError(f"{name} is empty: expected one review per line")
    return reviews


def check_text(data: bytes, name: str) -> str:
    """``data`` decoded as UTF-8 text, or a ZooError saying it is not text."""
    if b"\0" in data[:65536]:  # NUL bytes: an image, an archive, a model file ...
        raise ZooError(f"{name} is not a text file (it holds binary data)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ZooError(f"{name} is not UTF-8 text (bad byte at offset {err.start})") from None


def check_labelled_file(path: str | os.PathLike) -> None:
    """Refuses an empty or binary ``.tsv``/``.csv``/``.txt`` before it is parsed."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() in (".tsv", ".csv", ".txt"):
        data = path.read_bytes()
        if not data.strip():
            raise ZooError(f"{path} is empty: expected label<TAB>text rows")
        check_text(data, str(path))


def predict_proba(model, vocab, run: RunSpec, texts: list[str]):
    """P(positive) for each text, encoded exactly as the run's training data.

    A text's score depends only on the text: the same alone, beside any other
    texts and in any order (see :meth:`zoo_core.data.Split.scoring_batches`).

    Returns:
        float array ``[len(texts)]``.
    """
    import numpy as np

    from zoo_core.training import predict

    return predict(model, text_split(texts, np.zeros(len(texts), np.int32), vocab, run), run)


def text_split(texts: list[str], labels, vocab, run: RunSpec):
    """Labelled texts as a :class:`zoo_core.data.Split`, encoded as the run's training data was.

    :func:`zoo_core.training.evaluate` and :func:`zoo_core.training.predict`
    score it like a data split, in an order that does not depend on the texts' order.

    Args:
        texts: Raw reviews.
        labels: int ``[len(texts)]``, 1 = positive.
        vocab: The run's vocabulary.
        run: Its RunSpec; ``run.data`` says how to tokenise, truncate, pad and batch.
    """
    import numpy as np

    from zoo_core.data import Split, encode_texts

    tokens, lengths = [], []
    for start in range(0, len(texts), 1024):  # padded to maxlen, so encode in bounded chunks
        batch = encode_texts(texts[start:start + 1024], vocab, run.data)
        tokens.append(batch.ids[batch.mask])  # row-major: each review's tokens, in order
        lengths.append(batch.mask.sum(axis=1))
    lengths = np.concatenate(lengths) if lengths else np.zeros([0], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.concatenate(tokens) if tokens else np.zeros([0], np.int32)
    n = len(texts)
    # Lengths before truncation are not kept; movies and review ids are unknown for raw text.
    return Split(ids, offsets, np.asarray(labels), lengths, np.full(n, -1), np.arange(n), run.data)
