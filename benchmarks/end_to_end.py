"""One IMDB epoch of ``gru-mean`` end to end: the zoo's training loop against the same model in Keras (issue 15).

On the real archive, in one process:

1. **data**: ``load_dataset`` from the archive with a fresh temporary cache
   (checksum, tokenising, vocabulary, splits: what ``zoo train`` does first);
2. **zoo epoch**: one epoch of :func:`zoo_core.training.train` (the
   ``zoo train`` loop: padded batches of 64, maxlen 200, masked, Adam, clipping
   at norm 5, the finite checks), tracing included; the validation pass after it
   is timed apart;
3. **keras epoch**: the same model from Keras layers,
   ``Embedding(mask_zero=True)`` + ``GRU`` + ``GlobalAveragePooling1D`` (a
   masked mean of the states) + ``Dense(1)``, ``model.fit`` for one epoch on the
   same prepared arrays (the training split padded as the zoo pads it; the ids
   are 0 exactly on padding), Adam with the same clipping, batch 64, shuffled;
4. **inference** on the test split: the zoo's evaluate path
   (:func:`zoo_core.training.evaluate`, batches of 256) against
   ``model.predict(batch_size=256)``, each after a warm-up on a few batches.

It prints seconds, tokens/s and the ratios keras/zoo (above 1: the zoo is
faster), with the load average, because on a shared machine the wall clock also
counts time spent waiting for a core (CPU seconds are printed beside it).

Nothing is written outside a temporary folder. Reproduce (from the checkout)::

    python benchmarks/end_to_end.py --data /path/to/aclImdb_v1.tar.gz
    python benchmarks/end_to_end.py --limit 5000      # 5,000 train and 5,000 test reviews (a fifth)
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import click  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo_core import api  # noqa: E402
from zoo_core.data import load_dataset  # noqa: E402
from zoo_core.registry import build_registry  # noqa: E402
from zoo_core.training import MIN_EVAL_BATCH, evaluate, train  # noqa: E402

WARMUP_REVIEWS = 512


@dataclasses.dataclass
class Timing:
    wall: float  # seconds of wall clock
    cpu: float  # seconds of this process's CPU

    def __str__(self) -> str:
        return f"{self.wall:7.1f} s wall ({self.cpu:.1f} s CPU)"


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def padded_arrays(split, maxlen: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A split as one padded array, padded exactly as its training batches are: ``(ids, mask, labels)``."""
    batch = split.batch(np.arange(len(split)), maxlen)
    return np.asarray(batch.ids), np.asarray(batch.mask), np.asarray(batch.labels)


def keras_twin(run, vocab_size: int) -> keras.Model:
    """``gru-mean`` from Keras layers: masked embedding, GRU over every step, masked mean, one logit."""
    spec = run.model
    dim = spec.params.get("encoder", {}).get("dim", 64)
    units = spec.params.get("cell", {}).get("units", 64)
    model = keras.Sequential([
        keras.Input((run.data.maxlen,), dtype="int32"),
        keras.layers.Embedding(vocab_size, dim, mask_zero=True),
        keras.layers.GRU(units, return_sequences=True),
        keras.layers.GlobalAveragePooling1D(),  # respects the mask: the mean over real steps
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(run.train.lr, global_clipnorm=run.train.clip_norm or None),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "source", default="", envvar="ZOO_DATA", help="The IMDB archive, folder or imdb.npz.")
@click.option("--limit", type=click.IntRange(0), default=0, show_default=True,
              help="Use only N train and N test reviews (0: all 25,000 of each); for a loaded machine.")
@click.option("--model", default="gru-mean", show_default=True, help="A named zoo model with a GRU cell.")
@click.option("--jit/--no-jit", default=False, show_default=True, help="Compile the zoo's steps with XLA.")
@click.option("--seed", default=0, show_default=True)
def main(source: str, limit: int, model: str, jit: bool, seed: int) -> None:
    """One epoch of gru-mean on IMDB with the zoo's loop and with Keras' model.fit, and inference on the test split."""
    registry = build_registry()
    settings = {"epochs": 1, "maxlen": 200, "limit": limit, "jit": jit}
    if source:
        settings["data"] = source
    run = api.spec(model, seed=seed, using=registry, **settings)
    if run.model.cell != "gru":
        raise click.BadParameter(f"the Keras twin is a GRU; {model!r} has cell {run.model.cell!r}",
                                 param_hint="--model")
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="zoo-end-to-end-") as cache:
        reg_settings = dataclasses.replace(registry.settings, cache_dir=Path(cache))
        dataset, data_s = timed(lambda: load_dataset(run.data, reg_settings, seed=0))
    train_ids, _, train_labels = padded_arrays(dataset.train, run.data.maxlen)
    test_ids, _, test_labels = padded_arrays(dataset.test, run.data.maxlen)
    train_tokens = int(np.count_nonzero(train_ids))
    click.echo(f"data: {len(dataset.train):,} train, {len(dataset.val):,} val, {len(dataset.test):,} test reviews; "
               f"{train_tokens / len(dataset.train):.0f} real tokens per training review (maxlen {run.data.maxlen})",
               err=True)

    # -- the zoo: zoo train's loop, one epoch (its validation pass is timed within train's wall time)
    (zoo_model, result), zoo_all = timed(lambda: train(run, registry, dataset, score_test=False))
    zoo_epoch = Timing(result.history[0]["seconds"], float("nan"))
    click.echo(f"zoo epoch done: {zoo_epoch.wall:.1f} s", err=True)

    # -- Keras: the same model, model.fit on the same padded arrays
    keras.utils.set_random_seed(seed)
    twin = keras_twin(run, len(dataset.vocab))
    _, keras_epoch = timed(lambda: twin.fit(train_ids, train_labels, batch_size=run.train.batch_size, epochs=1,
                                            shuffle=True, verbose=0))
    click.echo(f"keras epoch done: {keras_epoch.wall:.1f} s", err=True)

    # -- inference on the test split, each after a warm-up (tracing)
    eval_batch = max(run.train.batch_size, MIN_EVAL_BATCH)
    evaluate(zoo_model, dataset.test.subset(np.arange(min(WARMUP_REVIEWS, len(dataset.test)))), run)
    zoo_scores, zoo_infer = timed(lambda: evaluate(zoo_model, dataset.test, run))
    twin.predict(test_ids[:WARMUP_REVIEWS], batch_size=eval_batch, verbose=0)
    keras_probs, keras_infer = timed(lambda: twin.predict(test_ids, batch_size=eval_batch, verbose=0))
    keras_accuracy = float(np.mean((keras_probs[:, 0] > 0) == (test_labels == 1)))
    load_at_end = os.getloadavg()

    test_tokens = int(np.count_nonzero(test_ids))
    fraction = min(limit or 25000, 25000) / 25000  # of each of IMDB's two 25,000-review splits
    click.echo(f"model {model} ({run.model.description}); maxlen {run.data.maxlen}, batch {run.train.batch_size}, "
               f"Adam {run.train.lr:g}, clip {run.train.clip_norm:g}, zoo jit={jit}; "
               f"{fraction:.0%} of IMDB: {len(dataset.train):,} training reviews (after the validation split), "
               f"{len(dataset.test):,} test reviews; load average {load_at_start[0]:.1f} at start, "
               f"{load_at_end[0]:.1f} at end")
    click.echo(f"data prep (archive -> tokenised splits, fresh cache): {data_s}")
    click.echo(f"zoo train, one epoch:   {zoo_epoch.wall:7.1f} s wall  "
               f"{train_tokens / zoo_epoch.wall / 1e3:6.1f} ktok/s  (train() with validation: {zoo_all})")
    click.echo(f"keras fit, one epoch:   {keras_epoch}  {train_tokens / keras_epoch.wall / 1e3:6.1f} ktok/s")
    click.echo(f"epoch ratio keras/zoo: {keras_epoch.wall / zoo_epoch.wall:.2f}; with data prep "
               f"{(keras_epoch.wall + data_s.wall) / (zoo_epoch.wall + data_s.wall):.2f}")
    click.echo(f"zoo evaluate, test:     {zoo_infer}  {test_tokens / zoo_infer.wall / 1e3:6.1f} ktok/s  "
               f"(accuracy {zoo_scores['accuracy']:.4f})")
    click.echo(f"keras predict, test:    {keras_infer}  {test_tokens / keras_infer.wall / 1e3:6.1f} ktok/s  "
               f"(accuracy {keras_accuracy:.4f})")
    click.echo(f"inference ratio keras/zoo: {keras_infer.wall / zoo_infer.wall:.2f}")


if __name__ == "__main__":
    main()
