"""Saved runs: weights, vocabulary and spec on disk, enough to rebuild a classifier exactly.

A run directory holds::

    run.json          the RunSpec, the vocabulary size, the training result, provenance
    vocab.json        the vocabulary (zoo_core.data.Vocabulary)
    weights/model.*   a TensorFlow checkpoint of the classifier's variables (never pickle)

:func:`save_run` writes into a temporary sibling and renames it into place, so
an interrupted save never leaves a half-written run behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from zoo_core.config import RunSpec
from zoo_core.errors import ZooError

FORMAT_VERSION = 1
CHECKPOINT = Path("weights") / "model"


def _result_dict(result: Any) -> dict[str, Any]:
    """A strict-JSON view of a TrainResult, without its run (stored once, at the top level)."""
    values = result.to_dict() if hasattr(result, "to_dict") else dataclasses.asdict(result)
    values.pop("run", None)
    # The round trip turns numpy numbers into floats and NaN into null.
    return json.loads(json.dumps(values, default=float), parse_constant=lambda _: None)


def save_run(directory: str | os.PathLike, model, vocab, run: RunSpec, result: Any) -> Path:
    """Saves a trained classifier, its vocabulary, its spec and its result under ``directory``.

    Args:
        directory: The run's folder (created; replaced if it exists).
        model: The trained :class:`zoo_core.model.Classifier`.
        vocab: The :class:`zoo_core.data.Vocabulary` it was trained with.
        run: The RunSpec it was trained from.
        result: Its ``TrainResult``.

    Returns:
        The directory.
    """
    import tensorflow as tf

    from zoo_core.results import provenance

    directory = Path(directory)
    partial = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
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
            "result": _result_dict(result),
            "provenance": provenance(),
        }
        (partial / "run.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        partial.rename(directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return directory


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``run.json`` of a saved run.

    Raises:
        ZooError: when the folder holds no saved run.
    """
    path = Path(directory) / "run.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ZooError(f"no saved run at {directory} (its run.json is missing)") from None
    except (OSError, ValueError) as err:
        raise ZooError(f"saved run at {directory} is unreadable: {err}") from None
    if meta.get("format", 0) > FORMAT_VERSION:
        raise ZooError(f"saved run at {directory} has format {meta['format']}, newer than this rnn-zoo reads")
    return meta


def load_run(directory: str | os.PathLike, registry):
    """Rebuilds a saved run's classifier through the registry and restores its weights.

    Returns:
        ``(classifier, vocabulary, run_spec)``.

    Raises:
        ZooError: missing or corrupt files, or weights that do not fit the spec.
    """
    import tensorflow as tf

    from zoo_core.data import Vocabulary
    from zoo_core.model import Classifier

    directory = Path(directory)
    meta = read_meta(directory)
    run = RunSpec.from_dict(meta["run"])
    try:
        vocab = Vocabulary.load(directory / "vocab.json")
    except FileNotFoundError:
        raise ZooError(f"saved run at {directory} has no vocab.json") from None
    model = Classifier(run.model, registry, int(meta.get("vocab_size", len(vocab))))
    checkpoint = directory / CHECKPOINT
    if not Path(str(checkpoint) + ".index").exists():
        raise ZooError(f"saved run at {directory} has no weights ({CHECKPOINT}.index is missing)")
    try:
        status = tf.train.Checkpoint(model=model).read(str(checkpoint))
        status.assert_consumed()  # every saved value restored, every variable of the model given one
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ZooError(f"weights at {directory} do not fit its spec {run.model.label}: {first}") from None
    return model, vocab, run


def resolve_run(reference: str, db, settings=None) -> tuple[Path, str]:
    """The directory and id of a saved run named by id, id prefix, ``best`` or a folder path.

    ``best`` is the top spec of the leaderboard by mean test accuracy (over
    runs whose weights were saved), and within it the seed with the best test
    accuracy.

    Raises:
        ZooError: unknown or ambiguous id, or a run whose weights are gone.
    """
    from zoo_core import leaderboard as lb

    if reference == "best":
        saved = [r for r in db.finished() if _run_dir(r, settings).joinpath("run.json").exists()]
        if not saved:
            raise ZooError(f"no saved runs in {db.path} yet (run `zoo rank` first)")
        group = lb.sort_groups(lb.group_runs(saved), "test_accuracy")[0]
        record = group.best_run("test_accuracy")
        return _run_dir(record, settings), record.id
    path = Path(reference).expanduser()
    if (path / "run.json").is_file():
        return path, path.name
    record = db.get(reference)
    directory = _run_dir(record, settings)
    if record.status != "finished":
        raise ZooError(f"run {record.id} is {record.status}, not finished: it has no saved weights")
    if not (directory / "run.json").exists():
        raise ZooError(f"run {record.id} has no saved files at {directory} (were they deleted?)")
    return directory, record.id


def _run_dir(record, settings) -> Path:
    if record.run_dir:
        return Path(record.run_dir)
    if settings is None:
        raise ZooError(f"run {record.id} recorded no folder")
    return Path(settings.runs_dir) / record.id


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


def predict_proba(model, vocab, run: RunSpec, texts: list[str], batch_size: int = 256):
    """P(positive) for each text, encoded exactly as the run's training data.

    Returns:
        float array ``[len(texts)]``.
    """
    import numpy as np

    from zoo_core.data import encode_texts

    out = []
    for start in range(0, len(texts), batch_size):
        batch = encode_texts(texts[start:start + batch_size], vocab, run.data)
        out.append(model.prob_positive(batch.ids, batch.mask if run.data.mask else None).numpy())
    return np.concatenate(out) if out else np.zeros([0], np.float32)


class TextSplit:
    """Labelled texts that :func:`zoo_core.training.evaluate` can score like a data split."""

    def __init__(self, texts: list[str], labels, vocab, run: RunSpec):
        self.texts, self.labels, self.vocab, self.run = texts, labels, vocab, run

    def __len__(self) -> int:
        return len(self.texts)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0):
        from zoo_core.data import encode_texts

        for start in range(0, len(self.texts), batch_size):
            batch = encode_texts(self.texts[start:start + batch_size], self.vocab, self.run.data)
            batch.labels = self.labels[start:start + batch_size].astype("int32")
            yield batch
