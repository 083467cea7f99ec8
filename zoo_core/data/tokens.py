"""Text -> tokens -> ids: normalisation, the tokenizers and the :class:`Vocabulary`.

Ids follow ``keras.datasets.imdb``: 0 is padding (:data:`PAD`), 1 the start
token prepended to every review (:data:`START`), 2 an unknown word
(:data:`UNK`), then words by training frequency from 3 on. A vocabulary
records which tokenizer cut its words (:data:`TOKENIZERS`), so text to predict
on is cut as the training text was.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo_core.errors import ZooError
from zoo_core.lazy import np

PAD, START, UNK = 0, 1, 2
RESERVED = ("<pad>", "<start>", "<unk>")
# What normalize_text does; part of every cache key, so a change re-tokenises every source.
NORMALIZATION = "cp1252-c1,ascii-quotes,nfkc"

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|\S")


def _normalization_table() -> dict[int, str]:
    """``str.translate`` table: C1 controls as Windows-1252 punctuation, typographic quotes as ASCII."""
    # IMDB's text holds Windows-1252 punctuation decoded as Latin-1 control characters:
    # U+0085 for an ellipsis, U+0096/U+0097 for dashes, U+0091-U+0094 for curly quotes.
    table = {}
    for byte in range(0x80, 0xA0):
        try:
            table[byte] = bytes([byte]).decode("cp1252")
        except UnicodeDecodeError:  # the 5 bytes cp1252 leaves undefined stay as they are
            pass
    # Before NFKC, which would split the acute accent used as an apostrophe ("don´t") into a space
    # and a combining mark, and the double prime into two primes.
    quotes = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'",
              "\u00b4": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"'}
    table = {byte: quotes.get(char, char) for byte, char in table.items()}
    table.update({ord(char): ascii_char for char, ascii_char in quotes.items()})
    return table


_NORMALIZE = _normalization_table()


def normalize_text(text: str) -> str:
    """The text as every tokenizer sees it, in training and in prediction alike.

    Windows-1252 punctuation stored as C1 control characters (as in IMDB's own
    reviews: U+0085 is an ellipsis) becomes that punctuation; typographic
    apostrophes and quotes (U+2018, U+2019, U+201C, U+201D, ...) and the acute
    accent used as an apostrophe become ASCII ``'`` and ``"``; then Unicode
    compatibility normalisation (NFKC) turns ligatures, full-width letters,
    ``…`` and no-break spaces into their plain forms. :data:`NORMALIZATION`
    names this rule in the cache key.

    >>> normalize_text("I don’t ﬁnd it “great”…")
    'I don\'t find it "great"...'
    """
    return unicodedata.normalize("NFKC", text.translate(_NORMALIZE))


def tokenize(text: str) -> list[str]:
    """Splits a review into lowercase words and punctuation marks.

    The rule: :func:`normalize_text`; lowercase; replace HTML line breaks
    (``<br />``, ``<br>``) by spaces; then a token is either a run of letters and
    digits, with apostrophes allowed inside it (``don't``, ``it's``), or any other
    single non-space character (``.``, ``!``, ``-``, ``'``). Letters are Unicode
    letters (``café`` is one word). The pipeline then prepends the start token
    (id 1) to every review, as Keras does; it counts in the review's length.

    >>> tokenize("It's GREAT.<br /><br />10/10!")
    ["it's", 'great', '.', '10', '/', '10', '!']
    """
    return _TOKEN.findall(_BREAK.sub(" ", normalize_text(text).lower()))


# The characters keras.preprocessing.text.text_to_word_sequence removes, as Keras' imdb.npz was made.
_KERAS_FILTERS = str.maketrans({c: " " for c in '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'})


def keras_tokenize(text: str) -> list[str]:
    """Splits text as Keras' ``imdb.npz`` was made: punctuation removed, apostrophes kept.

    :func:`normalize_text`, lowercase, every character of Keras' default filters
    (punctuation but ``'``, tabs, newlines) replaced by a space, then split on
    spaces. ``<br />`` thus becomes the word ``br``, which Keras' data holds.

    >>> keras_tokenize("Great film, I didn't<br />hate it!")
    ['great', 'film', 'i', "didn't", 'br', 'hate', 'it']
    """
    return [t for t in normalize_text(text).lower().translate(_KERAS_FILTERS).split(" ") if t]


# How a vocabulary's words were cut from text: its source's tokenizer, recorded with the vocabulary
# so new text is encoded as the training data was. "none": Keras' npz without its word index, whose
# words are bare ids, so no text can be encoded.
TOKENIZERS = {"zoo": tokenize, "keras": keras_tokenize, "none": None}


def is_blank(text: str) -> bool:
    """True when ``text`` holds no letter or digit once HTML line breaks are removed (``""``, ``"<br />"``)."""
    return not re.search(r"[^\W_]", _BREAK.sub(" ", normalize_text(text)))


class Vocabulary:
    """Words by id: 0 ``<pad>``, 1 ``<start>``, 2 ``<unk>``, then words by training frequency.

    Args:
        words: Every word in id order, starting with :data:`RESERVED`.
        counts: Optional training-set count of each word (same order), for export.
        tokenizer: How the training text was cut into these words, a key of
            :data:`TOKENIZERS`; new text is cut the same way (:meth:`tokenize`).

    Raises:
        ZooError: for words that do not start with :data:`RESERVED`, or an unknown tokenizer.
    """

    def __init__(self, words: Sequence[str], counts: Sequence[int] | None = None, tokenizer: str = "zoo"):
        words = list(words)
        if tuple(words[:3]) != RESERVED:
            raise ZooError(f"a vocabulary must start with {', '.join(RESERVED)}")
        if tokenizer not in TOKENIZERS:
            raise ZooError(f"unknown tokenizer {tokenizer!r} (known: {', '.join(TOKENIZERS)})")
        self.words = words
        self.counts = None if counts is None else [int(c) for c in counts]
        self.tokenizer = tokenizer
        self.index = {word: i for i, word in enumerate(words)}

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (self.words, self.tokenizer) == (other.words, other.tokenizer)

    def tokenize(self, text: str) -> list[str]:
        """``text`` cut into tokens as this vocabulary's training text was.

        Raises:
            ZooError: when the vocabulary holds ids, not words (Keras' npz without its word index).
        """
        split = TOKENIZERS[self.tokenizer]
        if split is None:
            raise ZooError("this run was trained on Keras' imdb.npz without imdb_word_index.json, so its "
                           "vocabulary holds word ids, not words, and every word of a text would be <unk>; "
                           "retrain with imdb_word_index.json beside imdb.npz, or on the aclImdb archive")
        return split(text)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown words become :data:`UNK`. No start token is added."""
        get = self.index.get
        return [get(token, UNK) for token in tokens]

    def decode(self, ids: Iterable[int]) -> str:
        """The words of ``ids`` joined by spaces, skipping padding and start tokens.

        Raises:
            ZooError: for an id outside the vocabulary.
        """
        flat = np.asarray(ids, dtype=np.int64).ravel()
        bad = flat[(flat < 0) | (flat >= len(self.words))]
        if bad.size:
            raise ZooError(f"id {int(bad[0])} is outside the vocabulary (ids 0..{len(self.words) - 1})")
        return " ".join(self.words[i] for i in flat if i not in (PAD, START))

    def word_index(self) -> dict[str, int]:
        """``{word: id}`` for every word (reserved tokens included)."""
        return dict(self.index)

    def to_json(self) -> str:
        payload: dict[str, Any] = {"words": self.words, "tokenizer": self.tokenizer}
        if self.counts is not None:
            payload["counts"] = self.counts
        return json.dumps(payload, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        try:
            payload = json.loads(text)
            words = payload["words"]
            tokenizer = payload.get("tokenizer") or _tokenizer_of(words)
            return cls(words, payload.get("counts"), tokenizer)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ZooError(f"not a vocabulary file ({err})") from None

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _tokenizer_of(words: Sequence[str]) -> str:
    """The tokenizer of a vocabulary saved before it was recorded, told from its words."""
    if len(words) > 3 and words[3] == "<unused>":  # Keras' npz: id 3 (rank 0) never occurs
        named = any(word != f"<{i}>" for i, word in enumerate(words[4:], start=4))
        return "keras" if named else "none"
    return "zoo"
