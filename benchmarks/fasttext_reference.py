"""The fastText baseline built from Keras' own layers, on the zoo's prepared IMDB (issue 16).

Issue 16 quotes a bag of uni- and bigrams trained with Keras on this project's
data at 90.38%, above the zoo's own ``ngram-fasttext`` (hashed bigrams). This
script reproduces that reference in one process so the gap can be measured and
explained, with each setting one flag:

- **data**: :func:`zoo_core.data.load_dataset` at ``--num-words`` and
  ``--maxlen`` (the zoo's tokeniser, vocabulary, truncation and movie-disjoint
  validation split; the reviews and labels every zoo run sees);
- **features**: each review's word ids followed by the ids of its bigrams, as
  Keras' ``imdb_fasttext`` example builds them: ``--bigrams exact`` gives every
  bigram seen in the training split a row of its own (test bigrams never seen
  in training are dropped); ``--bigrams hashed`` maps every bigram into
  ``--buckets`` rows with the zoo's own hash
  (:func:`plugins.ngrams.numpy_ngram_bucket_ids`), as ``ngram-fasttext`` does;
- **model**: ``Embedding(rows, --dim, mask_zero=True)`` ->
  ``GlobalAveragePooling1D`` (the mean over real tokens) -> ``Dense(1,
  sigmoid)`` (Joulin et al. 2017), Adam at 1e-3, batches of ``--batch-size``,
  ``--epochs`` epochs; the epoch with the lowest validation loss is kept and
  tested, as the zoo's early stopping does.

It prints, per feature set: the embedding's rows, the best epoch, validation
and test accuracy, the exact test ROC AUC and the seconds taken. Nothing is
written. Reproduce (from the checkout; about 8 minutes a feature set on 2 cores)::

    python benchmarks/fasttext_reference.py --data ../shared/data/aclImdb_v1_labelled.tar.gz
    python benchmarks/fasttext_reference.py --bigrams hashed --num-words 40000 --maxlen 1000 --dim 64
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import click  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from plugins.ngrams import numpy_ngram_bucket_ids  # noqa: E402
from zoo_core.cli.options import format_option  # noqa: E402
from zoo_core.config import DataConfig  # noqa: E402
from zoo_core.data import load_dataset  # noqa: E402
from zoo_core.metrics import roc_auc  # noqa: E402
from zoo_core.registry import build_registry  # noqa: E402
from zoo_core.tables import render  # noqa: E402


def word_sequences(split) -> list[np.ndarray]:
    """Each review's token ids (int64 ``[length]``), as the zoo truncated them."""
    return [split.sequence(i).astype(np.int64) for i in range(len(split))]


def bigram_pairs(words: np.ndarray) -> list[tuple[int, int]]:
    """The review's bigrams ``(w_{t-1}, w_t)``, in order."""
    return list(zip(words[:-1].tolist(), words[1:].tolist()))


def exact_bigram_features(splits: dict, num_words: int) -> tuple[dict, int]:
    """Words then bigrams, every training bigram its own id from ``num_words`` on; unseen bigrams dropped.

    Returns:
        ``{split name: [int32 [tokens] per review]}`` and the number of embedding rows.
    """
    ids: dict[tuple[int, int], int] = {}
    for words in splits["train"]:
        for pair in bigram_pairs(words):
            ids.setdefault(pair, num_words + len(ids))
    out = {}
    for name, reviews in splits.items():
        out[name] = [np.concatenate([words, np.array([ids[p] for p in bigram_pairs(words) if p in ids], np.int64)])
                     .astype(np.int32) for words in reviews]
    return out, num_words + len(ids)


def hashed_bigram_features(splits: dict, num_words: int, buckets: int) -> tuple[dict, int]:
    """Words then bigrams, each bigram in one of ``buckets`` rows from ``num_words`` on (the zoo's hash)."""
    out = {}
    for name, reviews in splits.items():
        out[name] = [np.concatenate([words, num_words + numpy_ngram_bucket_ids(words[None], 2, buckets)[0, 1:]])
                     .astype(np.int32) for words in reviews]
    return out, num_words + buckets


def padded(reviews: list[np.ndarray]) -> np.ndarray:
    """Post-padded with 0 (masked by ``mask_zero``) to the longest review: int32 ``[reviews, tokens]``."""
    out = np.zeros([len(reviews), max(len(r) for r in reviews)], np.int32)
    for row, review in enumerate(reviews):
        out[row, :len(review)] = review
    return out


def fasttext(rows: int, dim: int) -> keras.Model:
    model = keras.Sequential([
        keras.layers.Embedding(rows, dim, mask_zero=True),
        keras.layers.GlobalAveragePooling1D(),  # respects the mask: the mean over real tokens
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return model


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "source", default="", envvar="ZOO_DATA", help="The IMDB archive, folder or imdb.npz.")
@click.option("--bigrams", default="exact,hashed", show_default=True,
              help="Feature sets to train, comma-separated: exact (a row per training bigram), hashed (--buckets rows).")
@click.option("--num-words", type=click.IntRange(4), default=20000, show_default=True, help="Vocabulary size.")
@click.option("--maxlen", type=click.IntRange(2), default=400, show_default=True, help="Words kept per review.")
@click.option("--buckets", type=click.IntRange(1), default=100003, show_default=True, help="Rows for hashed bigrams.")
@click.option("--dim", type=click.IntRange(1), default=50, show_default=True, help="Embedding size.")
@click.option("--epochs", type=click.IntRange(1), default=5, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--limit", type=click.IntRange(0), default=0, show_default=True,
              help="Use only N train and N test reviews (0: all 25,000 of each).")
@format_option()
def main(source, bigrams, num_words, maxlen, buckets, dim, epochs, batch_size, seed, limit, fmt) -> None:
    """Keras' fastText (words + bigrams, mean, sigmoid) on the zoo's IMDB: test accuracy at the best validation epoch."""
    kinds = [kind.strip() for kind in bigrams.split(",")]
    if unknown := sorted(set(kinds) - {"exact", "hashed"}):
        raise click.BadParameter(f"unknown feature set {unknown[0]!r}; expected exact or hashed", param_hint="--bigrams")
    config = DataConfig(source=source, num_words=num_words, maxlen=maxlen, limit=limit)
    dataset = load_dataset(config, build_registry().settings, seed=0)
    splits = {name: word_sequences(getattr(dataset, name)) for name in ("train", "val", "test")}
    labels = {name: np.asarray(getattr(dataset, name).labels, np.float32) for name in splits}
    results = []
    for kind in kinds:
        started = time.perf_counter()
        if kind == "exact":
            features, rows = exact_bigram_features(splits, num_words)
        else:
            features, rows = hashed_bigram_features(splits, num_words, buckets)
        arrays = {name: padded(reviews) for name, reviews in features.items()}
        keras.utils.set_random_seed(seed)
        model = fasttext(rows, dim)
        best = keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs, restore_best_weights=True)
        history = model.fit(arrays["train"], labels["train"], batch_size=batch_size, epochs=epochs, shuffle=True,
                            validation_data=(arrays["val"], labels["val"]), callbacks=[best], verbose=0)
        best_epoch = int(np.argmin(history.history["val_loss"])) + 1
        probs = {name: model.predict(arrays[name], batch_size=256, verbose=0)[:, 0] for name in ("val", "test")}
        accuracy = {name: float(np.mean((probs[name] > 0.5) == (labels[name] == 1))) for name in probs}
        results.append([kind, f"{rows:,}", best_epoch, round(accuracy["val"], 4), round(accuracy["test"], 4),
                        round(roc_auc(labels["test"], probs["test"].astype(np.float64)), 4),
                        round(time.perf_counter() - started)])
        click.echo(f"{kind}: done in {results[-1][-1]} s", err=True)
    click.echo(f"{len(splits['train']):,} train, {len(splits['val']):,} val, {len(splits['test']):,} test reviews; "
               f"num_words {num_words}, maxlen {maxlen}, dim {dim}, batch {batch_size}, {epochs} epochs, seed {seed}")
    click.echo(render(results, ["bigrams", "rows", "best epoch", "val accuracy", "test accuracy", "test auc",
                                "seconds"], fmt))


if __name__ == "__main__":
    main()
