"""Labelled texts from elsewhere, to evaluate a saved run on: a ``.tsv``/``.csv`` or a source's test split."""

from __future__ import annotations

import os
import re
from pathlib import Path

from zoo_core.data.sources import one_line, source_for
from zoo_core.data.tokens import is_blank
from zoo_core.errors import ZooError
from zoo_core.lazy import np

_LABEL_WORDS = {"1": 1, "pos": 1, "positive": 1, "0": 0, "neg": 0, "negative": 0}
#: Files of ``label<TAB>text`` rows that :func:`read_labelled` reads as tables, not as sources.
LABELLED_SUFFIXES = (".tsv", ".csv", ".txt")
TABLE_SUFFIXES = LABELLED_SUFFIXES  # the name this module gave them first


def text_lines(text: str) -> list[str]:
    """``text`` cut at ``\\n`` and ``\\r\\n`` only: one line of a file is one review.

    ``str.splitlines`` would also cut at U+0085, U+2028, form feeds and more,
    which occur inside IMDB's reviews. A final line break ends the last line
    rather than starting an empty one.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _csv_unquote(field: str) -> str:
    """A field that is exactly one CSV-quoted value (``"Great, fun"``, inner quotes doubled), unquoted."""
    inner = field[1:-1]
    if len(field) >= 2 and field[0] == field[-1] == '"' and '"' not in inner.replace('""', ""):
        return inner.replace('""', '"')
    return field


def _read_table(path: Path) -> tuple[list[str], np.ndarray]:
    """``label<TAB>text`` (.tsv, .txt) or ``label,text`` (.csv) rows, one review per line.

    Lines end only at ``\\n`` or ``\\r\\n`` (:func:`text_lines`), and the text is
    everything after the first delimiter, quotes included, so a quote never joins
    lines. In a .csv, a text that is one CSV-quoted field is unquoted. A UTF-8
    byte-order mark is dropped; line 1 may be a header (a first field of letters
    only, such as ``label``); blank lines are skipped.

    Raises:
        ZooError: for a file that is not UTF-8, an unknown label, a line without a
            text, an empty review, or no rows at all, naming the line.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ZooError(f"{path} is not UTF-8 text (bad byte at offset {err.start})") from None
    except OSError as err:
        raise ZooError(f"cannot read {path}: {err.strerror or one_line(err)}") from None
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    texts, labels = [], []
    for number, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        field, found, review = line.partition(delimiter)
        label = _LABEL_WORDS.get(field.strip().strip('"').lower())
        if label is None:
            if number == 1 and re.fullmatch(r"[A-Za-z_ ]+", field.strip().strip('"')):
                continue  # a header
            raise ZooError(f"{path}:{number}: label {field!r} is not 0/1/pos/neg/positive/negative")
        if not found:
            raise ZooError(f"{path}:{number}: expected label{'TAB' if delimiter == chr(9) else ','}text")
        review = _csv_unquote(review) if delimiter == "," else review
        if is_blank(review):
            raise ZooError(f"{path}:{number}: the review is empty (no word in {review!r})")
        texts.append(review)
        labels.append(label)
    if not texts:
        raise ZooError(f"{path} holds no labelled reviews")
    return texts, np.array(labels, dtype=np.int32)


def check_labelled(path: str | os.PathLike) -> Path:
    """``path`` if :func:`read_labelled` can read it, judged without reading it all.

    A table (:data:`LABELLED_SUFFIXES`) passes; any other path goes to its
    source's :meth:`~zoo_core.data.sources.Source.check_labelled` (first bytes
    only), so ``zoo evaluate --data`` refuses a bad file before TensorFlow's import.

    Raises:
        ZooError: a missing path, a source without texts (Keras' npz), or a file
            that is no source (see :func:`~zoo_core.data.sources.check_source`).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ZooError(f"{path} does not exist")
    if path.suffix.lower() not in LABELLED_SUFFIXES:
        source_for(path).check_labelled(path)
    return path


def read_labelled(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Raw texts and labels to evaluate on.

    Accepts a ``.tsv``/``.csv``/``.txt`` of ``label<TAB>text`` rows (labels 0/1,
    neg/pos), or any source whose :meth:`~zoo_core.data.sources.Source.read_labelled`
    gives texts: the IMDB layout (``.tar.gz`` or folder; its *test* split, in
    canonical order).

    Raises:
        ZooError: for a missing or unreadable file, or a source without texts
            (Keras' npz), first as :func:`check_labelled` says.
    """
    path = check_labelled(path)
    if path.suffix.lower() in LABELLED_SUFFIXES:
        return _read_table(path)
    return source_for(path).read_labelled(path)
