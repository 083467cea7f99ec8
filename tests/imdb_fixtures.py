"""Tiny IMDB-layout datasets that the tests make (never the real data).

``make_imdb_tree`` writes ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``,
``urls_{pos,neg}.txt`` (one IMDb movie URL per review, in id order, several
reviews per movie as in the real data), ``imdb.vocab`` and ``README``.
Positive reviews use positive words, negative ones negative words, so a model
can learn the task in a few steps.
"""

from __future__ import annotations

import random
import tarfile
from pathlib import Path

POSITIVE = ["great", "wonderful", "moving", "superb", "loved", "brilliant", "fun", "best"]
NEGATIVE = ["awful", "boring", "worst", "terrible", "waste", "dull", "hated", "bad"]
NEUTRAL = ["the", "film", "movie", "a", "was", "and", "plot", "actor", "scene", "it", "of", "story"]


def review_text(rng: random.Random, positive: bool, min_words: int = 4, max_words: int = 40) -> str:
    """A review with sentiment words, neutral filler, punctuation and a <br /> tag."""
    words = []
    for _ in range(rng.randint(min_words, max_words)):
        if rng.random() < 0.3:
            words.append(rng.choice(POSITIVE if positive else NEGATIVE))
        else:
            words.append(rng.choice(NEUTRAL))
    words[0] = words[0].capitalize()
    middle = len(words) // 2
    return " ".join(words[:middle]) + ". <br /><br />" + " ".join(words[middle:]) + "!"


def make_imdb_tree(root: Path, n_per_class: int = 20, reviews_per_movie: int = 3, seed: int = 0,
                   max_words: int = 40) -> Path:
    """Writes an ``aclImdb`` tree under ``root`` and returns ``root / "aclImdb"``.

    Each split has ``n_per_class`` positive and negative reviews. Train and test
    use disjoint movies, like the real data.
    """
    rng = random.Random(seed)
    top = Path(root) / "aclImdb"
    movie = 0
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            folder = top / split / label
            folder.mkdir(parents=True, exist_ok=True)
            urls = []
            for i in range(n_per_class):
                rating = rng.randint(7, 10) if label == "pos" else rng.randint(1, 4)
                text = review_text(rng, label == "pos", max_words=max_words)
                (folder / f"{i}_{rating}.txt").write_text(text, encoding="utf-8")
                if i % reviews_per_movie == 0:
                    movie += 1
                urls.append(f"http://www.imdb.com/title/tt{movie:07d}/usercomments")
            (top / split / f"urls_{label}.txt").write_text("\n".join(urls) + "\n", encoding="utf-8")
    (top / "imdb.vocab").write_text("\n".join(NEUTRAL + POSITIVE + NEGATIVE) + "\n", encoding="utf-8")
    (top / "README").write_text("Tiny test copy in the Large Movie Review Dataset layout.\n", encoding="utf-8")
    return top


def make_imdb_archive(path: Path, **kwargs) -> Path:
    """Writes a ``.tar.gz`` holding an ``aclImdb`` tree and returns its path."""
    path = Path(path)
    tree = make_imdb_tree(path.parent / (path.name + ".tree"), **kwargs)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname="aclImdb")
    return path


def write_imdb_tree(root: Path, reviews: dict[str, list[str]], movies: dict[str, list[int]] | None = None) -> Path:
    """Writes an ``aclImdb`` tree with exactly the given texts; returns ``root / "aclImdb"``.

    Args:
        root: Parent folder.
        reviews: ``{"train/pos": [text, ...], "train/neg": [...], "test/pos": [...], "test/neg": [...]}``;
            text ``i`` becomes file ``<i>_<rating>.txt``.
        movies: The same keys -> IMDb title number per review (its ``urls_*.txt`` line);
            None writes no urls files at all.
    """
    top = Path(root) / "aclImdb"
    for key, texts in reviews.items():
        split, label = key.split("/")
        folder = top / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(texts):
            (folder / f"{i}_{8 if label == 'pos' else 2}.txt").write_text(text, encoding="utf-8")
        if movies is not None:
            lines = [f"http://www.imdb.com/title/tt{m:07d}/usercomments" for m in movies[key]]
            (top / split / f"urls_{label}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return top


def archive_tree(tree: Path, path: Path) -> Path:
    """Packs an ``aclImdb`` tree into the ``.tar.gz`` at ``path``."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname="aclImdb")
    return Path(path)
