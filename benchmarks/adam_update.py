"""One Adam update of an embedding table: Keras' own against the zoo's one-kernel update (issue 15).

For each table size (``[rows, 64]``: the default 20,000-word embedding, the
100,003-bucket n-gram table of the ``ngram-*`` models, and a 1,000,003-bucket
one) it applies, in one process and in interleaved rounds, a sparse gradient
of 12,000 distinct rows (a batch of 64 reviews touches about that many) with
``keras.optimizers.Adam``, with :class:`zoo_core.training.FusedAdam` and with
:class:`zoo_core.training.LazyAdam` (``--optimizer lazy-adam``: only the 12,000
rows are updated), all compiled with ``tf.function``, and prints the median
milliseconds per update, the ratios to Keras, and the largest difference
between Keras' and FusedAdam's updated tables (lazy Adam differs by design on
the rows outside the gradient).

Reproduce (from the checkout; a minute on 2 cores)::

    python benchmarks/adam_update.py
    python benchmarks/adam_update.py --rows 20000 --rounds 9
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import click  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from zoo_core.cli.options import format_option  # noqa: E402
from zoo_core.tables import render  # noqa: E402
from zoo_core.training import FusedAdam, LazyAdam  # noqa: E402

DIM, TOUCHED = 64, 12_000


def update_ms(update, steps: int) -> float:
    """Mean wall-clock milliseconds of ``steps`` calls of ``update``."""
    start = time.perf_counter()
    for _ in range(steps):
        update()
    return (time.perf_counter() - start) / steps * 1e3


@click.command()
@click.option("--rows", default="20000,100003,1000003", show_default=True, help="Table sizes, comma-separated.")
@click.option("--rounds", default=5, show_default=True, help="Interleaved timing rounds.")
@click.option("--steps", default=10, show_default=True, help="Updates per round and contender.")
@format_option()
def main(rows: str, rounds: int, steps: int, fmt: str) -> None:
    """Milliseconds per Adam update of a [rows, 64] table: keras.optimizers.Adam against the zoo's FusedAdam and LazyAdam."""
    rng = np.random.default_rng(0)
    results = []
    for size in (int(r) for r in rows.split(",")):
        start = rng.normal(scale=0.05, size=(size, DIM)).astype("float32")
        indices = tf.constant(np.sort(rng.choice(size, min(TOUCHED, size), replace=False)), tf.int64)
        values = tf.constant(rng.normal(size=(int(indices.shape[0]), DIM)).astype("float32"))
        contenders = {}
        for label, optimizer in (("keras", keras.optimizers.Adam(1e-3)), ("zoo", FusedAdam(1e-3)),
                                 ("lazy", LazyAdam(1e-3))):
            table = tf.Variable(start)
            optimizer.build([table])

            @tf.function
            def update(optimizer=optimizer, table=table):
                gradient = tf.IndexedSlices(values, indices, tf.constant([size, DIM], tf.int64))
                optimizer.apply_gradients([(gradient, table)])

            update()  # trace
            contenders[label] = (update, table, [])
        for round_index in range(rounds):
            order = list(contenders) if round_index % 2 == 0 else list(contenders)[::-1]
            for label in order:
                update, _, times = contenders[label]
                times.append(update_ms(update, steps))
        keras_ms, zoo_ms, lazy_ms = (statistics.median(contenders[label][2]) for label in ("keras", "zoo", "lazy"))
        difference = float(np.max(np.abs(contenders["keras"][1].numpy() - contenders["zoo"][1].numpy())))
        results.append([f"{size:,} x {DIM}", round(keras_ms, 2), round(zoo_ms, 2), round(lazy_ms, 2),
                        round(keras_ms / zoo_ms, 2), round(keras_ms / lazy_ms, 2), f"{difference:.1e}"])
    click.echo(f"{TOUCHED:,} rows touched per update; {rounds} rounds x {steps} updates; "
               f"load average {os.getloadavg()[0]:.1f}")
    click.echo(render(results, ["table", "keras ms", "zoo ms", "lazy ms", "keras / zoo", "keras / lazy",
                                "max |keras - zoo|"], fmt))


if __name__ == "__main__":
    main()
