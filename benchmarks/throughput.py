"""Training throughput: the zoo's low-level cells against Keras' own RNN layers (issue 6).

For each cell (``tanh``, ``gru``, ``lstm``) and hidden size (64, 128) it builds,
in one process, the zoo model ``embedding -> cell -> last -> sigmoid1`` and
the same model from ``keras.layers.Embedding`` + ``SimpleRNN``/``GRU``/``LSTM``
+ ``Dense(1)``, trains both with Adam on the same random token batches
(batch 64, length 200, vocabulary 20000, embedding 64) from the same starting
weights, and after a warm-up times them in interleaved rounds. Both use the same ``tf.function`` training
step (tape, binary cross-entropy from logits, ``Adam.apply_gradients``), so the
comparison isolates the layers. It prints the median training tokens/s of each
and the median per-round ratio zoo/keras.

A third contender, ``floor``, keeps everything but the recurrence: the same
variables (embedding, input and recurrent kernels, head), the embedding lookup,
the input projection of every step, the loss and the Adam update, with the
loop replaced by a mean over time. Every implementation of the model does this
work too, so ``floor / keras`` (the ``ceiling`` column) is as high as a ratio
can go here.

The recurrence itself cannot cost less than its chain of dependent matmuls:
per step ``h_{t-1} U`` forward and ``da_t U^T`` backward (``[batch, H] x [H, G*H]``),
plus ``dU`` as one large matmul. ``chain ms`` times exactly these, and
``best ratio`` is ``keras / (floor + chain)``: the ratio of an implementation
that did nothing else, estimated without overlap. It is not a strict bound,
since TF may run the non-recurrent work beside the chain on another core.

Keras is measured as it runs by default on a CPU (no XLA; ``--keras-jit``
compiles its step too). The zoo side uses its default hand-written BPTT
(``--bptt autodiff`` for the generic loop) and XLA with ``--jit``.

As users train (``zoo train``'s defaults mask padded steps), ``--lengths imdb``
draws review lengths from IMDB's distribution (log-normal with median 174 and
90th percentile 450 tokens, as the real training split, cut to
``--length``), pre-pads them and masks them on both sides (Keras:
``Embedding(mask_zero=True)``); ``--batching bucket`` also sorts the drawn
reviews by length and pads each batch only to its own longest, as
``--batching bucket`` does in training (both models then see batches of many
lengths). Tokens/s counts real tokens only.

Reproduce (from the checkout; minutes on 2 shared cores)::

    python benchmarks/throughput.py --jit              # the six ratios
    python benchmarks/throughput.py --quick --jit      # fewer rounds and steps
    python benchmarks/throughput.py --cells gru --units 64 --bptt autodiff --rounds 3
    python benchmarks/throughput.py --quick --optimizer zoo  # the zoo side with zoo train's one-kernel Adam
    python benchmarks/throughput.py --quick --lengths imdb                  # masked, IMDB lengths
    python benchmarks/throughput.py --quick --lengths imdb --batching bucket
    python benchmarks/throughput.py --quick --xla-too --no-floor            # where --jit pays
    python benchmarks/throughput.py --cells lstm --units 64 --rounds 1 --profile   # where the step's time goes
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import click  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from zoo_core.config import ModelSpec  # noqa: E402
from zoo_core.model import Classifier  # noqa: E402
from zoo_core.registry import build_registry  # noqa: E402
from zoo_core.cli.options import format_option  # noqa: E402
from zoo_core.tables import render  # noqa: E402
from zoo_core.training import FusedAdam  # noqa: E402

KERAS_LAYERS = {"tanh": keras.layers.SimpleRNN, "gru": keras.layers.GRU, "lstm": keras.layers.LSTM}


@dataclass
class Contender:
    """One model, its compiled training step and its per-round throughputs."""

    label: str
    train_step: tf.types.experimental.PolymorphicFunction
    tokens_per_sec: list[float] = field(default_factory=list)


def make_train_step(model, variables, loss_fn, jit: bool, optimizer: str = "keras"):
    """A ``tf.function`` training step: logits, loss, gradients, one Adam update.

    Args:
        model: ``(ids [batch, time], mask or None) -> logits [batch, 1]``.
        variables: What the optimizer updates.
        loss_fn: ``(labels [batch], logits) -> scalar``.
        jit: Compile the step with XLA.
        optimizer: ``"keras"``: ``keras.optimizers.Adam``; ``"zoo"``: the Adam ``zoo train`` uses
            (:class:`zoo_core.training.FusedAdam`, the same update in one kernel).
    """
    optimizer = FusedAdam(1e-3) if optimizer == "zoo" else keras.optimizers.Adam(1e-3)
    optimizer.build(variables)

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def train_step(ids, mask, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(ids, mask))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return train_step


def build_zoo_model(registry, cell: str, units: int, args) -> Classifier:
    """The zoo's ``embedding -> cell -> last -> sigmoid1`` classifier."""
    spec = ModelSpec("embedding", cell, "last", "sigmoid1",
                     params={"encoder": {"dim": args["embed"]}, "cell": {"units": units, "bptt": args["bptt"]}})
    return Classifier(spec, registry, args["vocab"])


def build_keras_model(cell: str, units: int, args) -> keras.Model:
    """The same model from Keras layers: Embedding, SimpleRNN/GRU/LSTM (last output), Dense(1)."""
    bucketed = args.get("batching") == "bucket"  # batches of many lengths
    return keras.Sequential([
        keras.Input((None if bucketed else args["length"],), dtype="int32"),
        keras.layers.Embedding(args["vocab"], args["embed"], mask_zero=args["mask"]),
        KERAS_LAYERS[cell](units),
        keras.layers.Dense(1),
    ])


def copy_keras_weights(keras_model: keras.Model, zoo_model: Classifier) -> None:
    """Gives the zoo model the Keras model's weights, so both start from the same point."""
    embedding, *recurrent, kernel, bias = keras_model.get_weights()
    zoo_model.encoder.table.assign(embedding)
    zoo_model.cell.load_keras_weights(recurrent)
    zoo_model.head.kernel.assign(kernel)
    zoo_model.head.bias.assign(bias)


class NoRecurrence(tf.Module):
    """The zoo model's variables and non-recurrent work, the loop replaced by a mean over time.

    ``logits = tanh(mean_t(E[ids_t] W + b)[:, :H]) U[:, :H] 1 + head``: the embedding
    gather and its gradient, the ``[batch, time, G*H]`` input projection and the
    Adam update of every variable cost what they cost in the real model.
    """

    def __init__(self, zoo: Classifier):
        super().__init__()
        self.zoo = zoo

    def __call__(self, ids, mask=None):
        zoo = self.zoo
        units = zoo.cell.output_size
        kernel, recurrent = zoo.cell.kernel, zoo.cell.recurrent_kernel
        projected = zoo.encoder(ids, training=True).project(kernel)  # [batch, time, G*H]
        if getattr(zoo.cell, "bias", None) is not None:
            projected += zoo.cell.bias
        pooled = tf.reduce_mean(projected, axis=1)[:, :units]
        if getattr(zoo.cell, "recurrent_bias", None) is not None:  # the GRU's: every variable gets a gradient
            pooled += zoo.cell.recurrent_bias[:units]
        pooled = tf.tanh(pooled)
        features = tf.matmul(pooled, recurrent[:, :units])
        return zoo.head(features)


GATES = {"tanh": 1, "gru": 3, "lstm": 4}


def matmul_chain_seconds(cell: str, units: int, args, repeats: int = 5) -> float:
    """Median seconds of the recurrence's unavoidable matmuls for one training step.

    ``length`` dependent ``[batch, H] x [H, G*H]`` matmuls forward, as many
    ``[batch, G*H] x [G*H, H]`` backward, and ``dU = sum_t h_{t-1}^T da_t`` as one
    ``[H, batch*length] x [batch*length, G*H]`` matmul.
    """
    batch, length, width = args["batch"], args["length"], GATES[cell] * units
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(0, 0.1, (units, width)), tf.float32)
    h0 = tf.constant(rng.normal(size=(batch, units)), tf.float32)
    states = tf.constant(rng.normal(size=(batch * length, units)), tf.float32)
    grads = tf.constant(rng.normal(size=(batch * length, width)), tf.float32)

    @tf.function
    def chain(h):
        def forward(t, h):
            return t + 1, tf.matmul(h, kernel)[:, :units]

        def backward(t, d):
            return t + 1, tf.matmul(tf.tile(d, [1, width // units]), kernel, transpose_b=True)

        h = tf.while_loop(lambda t, _: t < length, forward, (0, h))[1]
        d = tf.while_loop(lambda t, _: t < length, backward, (0, h))[1]
        return d, tf.matmul(states, grads, transpose_a=True)

    chain(h0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        d, d_kernel = chain(h0)
        d.numpy(), d_kernel.numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def profile_ops(contender: Contender, batches, steps: int = 4, top: int = 12) -> list[list]:
    """Per-op-type time of ``steps`` training steps from a ``tf.profiler`` trace of this process.

    Returns rows ``[op type, ms per step, calls per step, us per call, share]``, largest
    first, summed over the host's op events (ops on both cores add up, so the
    shares are of the summed op time, not of the wall clock).
    """
    import collections
    import tempfile

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory(prefix="zoo-profile-") as logdir:
        tf.profiler.experimental.start(logdir)
        time_steps(contender, batches, steps)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    spent, calls = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name  # "op_name:OpType" for a TF op
                if ":" not in name or "::" in name or name.startswith("__inference"):
                    continue
                op_type = name.rsplit(":", 1)[1].strip()
                if op_type.startswith("__inference"):  # the whole function's event, not an op
                    continue
                spent[op_type] += event.duration_ps / 1e9
                calls[op_type] += 1
    total = sum(spent.values())
    return [[op, round(ms / steps, 2), round(calls[op] / steps), round(ms / calls[op] * 1e3, 1),
             f"{ms / total:.0%}"] for op, ms in spent.most_common(top)]


def contenders(registry, cell: str, units: int, args) -> tuple[Contender, ...]:
    """The zoo and Keras models with identical starting weights and their training steps (and the floor)."""
    zoo, reference = build_zoo_model(registry, cell, units, args), build_keras_model(cell, units, args)
    copy_keras_weights(reference, zoo)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    pair = (
        Contender("zoo", make_train_step(lambda ids, mask: zoo(ids, mask, training=True), zoo.trainable_variables,
                                         zoo.loss, args["jit"], args["optimizer"])),
        Contender("keras", make_train_step(lambda ids, mask: reference(ids, training=True),
                                           reference.trainable_variables,
                                           lambda labels, logits: bce(tf.cast(labels, tf.float32)[:, None], logits),
                                           args["keras_jit"])),
    )
    if args.get("xla_too"):
        compiled = build_zoo_model(registry, cell, units, args)
        copy_keras_weights(reference, compiled)
        pair += (Contender("zoo-xla", make_train_step(lambda ids, mask: compiled(ids, mask, training=True),
                                                      compiled.trainable_variables, compiled.loss, True,
                                                      args["optimizer"])),)
    if not args["floor"]:
        return pair
    floor_zoo = build_zoo_model(registry, cell, units, args)
    floor = NoRecurrence(floor_zoo)
    return pair + (Contender("floor", make_train_step(floor, floor_zoo.trainable_variables, floor_zoo.loss,
                                                      args["jit"], args["optimizer"])),)


IMDB_MEDIAN, IMDB_P90 = 174, 450  # tokens per review in IMDB's training split
IMDB_SHORTEST = 10


def imdb_lengths(count: int, maxlen: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` review lengths drawn from IMDB's distribution, cut to ``[IMDB_SHORTEST, maxlen]``.

    A log-normal with IMDB's median and 90th percentile (sigma = ln(p90 / median) / 1.2816).
    """
    sigma = np.log(IMDB_P90 / IMDB_MEDIAN) / 1.2816
    lengths = np.round(rng.lognormal(np.log(IMDB_MEDIAN), sigma, size=count)).astype(np.int64)
    return np.clip(lengths, IMDB_SHORTEST, maxlen)


def imdb_batches(args, count: int, seed: int = 0) -> list[tuple[tf.Tensor, tf.Tensor, tf.Tensor, int]]:
    """``count`` batches of random ids with IMDB's lengths, pre-padded and masked.

    ``--batching padded``: every batch padded to ``--length``. ``--batching bucket``:
    ``count * batch`` reviews sorted by length and cut into batches, each padded to
    its own longest review (the batches of one bucketed epoch, shortest first).
    """
    rng = np.random.default_rng(seed)
    batch, length = args["batch"], args["length"]
    lengths = imdb_lengths(count * batch, length, rng)
    if args["batching"] == "bucket":
        lengths = np.sort(lengths)
    out = []
    for rows in lengths.reshape(count, batch):
        width = int(rows.max()) if args["batching"] == "bucket" else length
        mask = np.arange(width)[None, :] >= (width - rows)[:, None]  # pre-padding
        ids = np.where(mask, rng.integers(3, args["vocab"], size=(batch, width), dtype=np.int32), 0).astype(np.int32)
        labels = rng.integers(0, 2, size=batch, dtype=np.int32)
        out.append((tf.constant(ids), tf.constant(mask), tf.constant(labels), int(mask.sum())))
    return out


def random_batches(args, count: int, seed: int = 0) -> list[tuple[tf.Tensor, tf.Tensor | None, tf.Tensor, int]]:
    """``count`` batches of random token ids; with ``--mask``, random lengths pre-padded with 0.

    With ``--lengths imdb``, :func:`imdb_batches` instead.

    Returns:
        ``(ids [batch, time], mask or None, labels [batch], real tokens)`` per batch.
    """
    if args.get("lengths") == "imdb":
        return imdb_batches(args, count, seed)
    rng = np.random.default_rng(seed)
    batch, length = args["batch"], args["length"]
    out = []
    for _ in range(count):
        ids = rng.integers(3, args["vocab"], size=(batch, length), dtype=np.int32)
        mask = None
        if args["mask"]:
            lengths = rng.integers(length // 2, length + 1, size=batch)
            mask = np.arange(length)[None, :] >= (length - lengths)[:, None]  # pre-padding
            ids = np.where(mask, ids, 0).astype(np.int32)
        labels = rng.integers(0, 2, size=batch, dtype=np.int32)
        real = int(mask.sum()) if mask is not None else batch * length
        out.append((tf.constant(ids), None if mask is None else tf.constant(mask), tf.constant(labels), real))
    return out


def time_steps(contender: Contender, batches, steps: int) -> float:
    """Runs ``steps`` training steps; returns real training tokens per second."""
    tokens = 0
    start = time.perf_counter()
    for i in range(steps):
        ids, mask, labels, real = batches[i % len(batches)]
        loss = contender.train_step(ids, mask, labels)
        tokens += real
    float(loss)  # wait for the last step
    return tokens / (time.perf_counter() - start)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--cells", default="tanh,gru,lstm", show_default=True, help="Comma-separated: tanh, gru, lstm.")
@click.option("--units", default="64,128", show_default=True, help="Comma-separated hidden sizes.")
@click.option("--batch", default=64, show_default=True)
@click.option("--length", default=200, show_default=True)
@click.option("--vocab", default=20000, show_default=True)
@click.option("--embed", default=64, show_default=True)
@click.option("--rounds", default=5, show_default=True, help="Interleaved timed rounds.")
@click.option("--steps", default=20, show_default=True, help="Training steps per model per round.")
@click.option("--warmup", default=3, show_default=True, help="Untimed steps per model first (tracing, XLA).")
@click.option("--quick", is_flag=True, help="3 rounds of 8 steps: a run of a few minutes.")
@click.option("--jit/--no-jit", default=False, show_default=True, help="Compile the zoo step with XLA.")
@click.option("--keras-jit/--no-keras-jit", default=False, show_default=True,
              help="Compile the Keras step with XLA too (Keras' CPU default is off).")
@click.option("--optimizer", type=click.Choice(["keras", "zoo"]), default="keras", show_default=True,
              help="The zoo side's Adam (and the floor's): 'keras' is keras.optimizers.Adam, as on the Keras side, "
                   "so the ratio compares the layers alone; 'zoo' is the one-kernel Adam zoo train uses, so the "
                   "ratio compares the steps as users run them. The Keras side always uses Keras' Adam.")
@click.option("--bptt", type=click.Choice(["fused", "autodiff"]), default="fused", show_default=True,
              help="The zoo cells' gradient: hand-written BPTT or autodiff through the loop.")
@click.option("--mask/--no-mask", default=False, show_default=True,
              help="Random lengths, pre-padded, masked on both sides (Keras: mask_zero).")
@click.option("--lengths", type=click.Choice(["uniform", "imdb"]), default="uniform", show_default=True,
              help="With masking, lengths uniform in [length/2, length], or drawn from IMDB's "
                   "(median 174, 90th percentile 450, cut at --length); imdb implies --mask.")
@click.option("--batching", type=click.Choice(["padded", "bucket"]), default="padded", show_default=True,
              help="bucket: sort the drawn lengths and pad each batch to its longest (implies --lengths imdb).")
@click.option("--floor/--no-floor", default=True, show_default=True,
              help="Also time the model without its recurrence, and the recurrence's matmul chain: "
                   "how high a ratio could go on this machine.")
@click.option("--xla-too", is_flag=True,
              help="Also time the zoo's step compiled with XLA, from the same weights, in the same rounds "
                   "(columns 'xla ratio': zoo with XLA / keras): shows where --jit pays.")
@click.option("--profile", is_flag=True,
              help="After the rounds, a per-op profile (tf.profiler) of the zoo's step in each configuration.")
@click.option("--seed", default=0, show_default=True)
@format_option()
def main(cells, units, quick, seed, fmt, **args):
    """Training tokens/s of zoo cells against keras.layers.SimpleRNN/GRU/LSTM, and their ratio."""
    if quick:
        args["rounds"], args["steps"] = 3, 8
    if args["batching"] == "bucket":
        args["lengths"] = "imdb"
    if args["lengths"] == "imdb":
        args["mask"] = True
    keras.utils.set_random_seed(seed)
    registry = build_registry()
    configs = [(c.strip(), int(u)) for c in cells.split(",") for u in units.split(",")]
    unknown = sorted({c for c, _ in configs} - set(KERAS_LAYERS))
    if unknown:
        raise click.BadParameter(f"no Keras reference for {unknown[0]!r}", param_hint="--cells")
    # Bucketed: one batch per length bucket, and every round runs each of them once or more.
    count = 8 if args["batching"] == "bucket" else 4
    if args["batching"] == "bucket":
        args["steps"] = max(count, args["steps"] // count * count)
        args["warmup"] = max(count, args["warmup"])  # trace every width before timing
    batches = random_batches(args, count=count, seed=seed)
    widths = [int(ids.shape[1]) for ids, *_ in batches]

    pairs = {}
    for cell, size in configs:
        pair = contenders(registry, cell, size, args)
        for contender in pair:
            start = time.perf_counter()
            time_steps(contender, batches, args["warmup"])
            click.echo(f"warm-up {contender.label} {cell}{size}: {time.perf_counter() - start:.1f}s", err=True)
        pairs[cell, size] = pair

    for round_index in range(args["rounds"]):
        for cell, size in configs:
            # Alternate who goes first, so slow drifts in machine load hit both alike.
            order = pairs[cell, size] if round_index % 2 == 0 else pairs[cell, size][::-1]
            for contender in order:
                contender.tokens_per_sec.append(time_steps(contender, batches, args["steps"]))
        click.echo(f"round {round_index + 1}/{args['rounds']} done", err=True)

    # The chain at the batches' mean padded width (the full length unless bucketed).
    chain_args = dict(args, length=round(statistics.mean(widths)))
    chains = {config: matmul_chain_seconds(*config, chain_args) for config in pairs} if args["floor"] else {}
    rows = []
    for (cell, size), group in pairs.items():
        by_label = {contender.label: contender for contender in group}
        zoo, ref = by_label["zoo"], by_label["keras"]
        ratios = [z / k for z, k in zip(zoo.tokens_per_sec, ref.tokens_per_sec)]
        row = [f"{cell}{size}", round(statistics.median(zoo.tokens_per_sec) / 1e3),
               round(statistics.median(ref.tokens_per_sec) / 1e3), round(statistics.median(ratios), 2),
               f"{min(ratios):.2f}-{max(ratios):.2f}"]
        if "zoo-xla" in by_label:
            xla = [x / k for x, k in zip(by_label["zoo-xla"].tokens_per_sec, ref.tokens_per_sec)]
            row += [round(statistics.median(xla), 2), f"{min(xla):.2f}-{max(xla):.2f}"]
        if "floor" in by_label:
            floor = by_label["floor"]
            ceilings = [f / k for f, k in zip(floor.tokens_per_sec, ref.tokens_per_sec)]
            floor_tps, keras_tps = statistics.median(floor.tokens_per_sec), statistics.median(ref.tokens_per_sec)
            tokens = statistics.mean(real for *_, real in batches)  # real tokens per step, as tokens/s counts
            chain = chains[cell, size]
            best = (tokens / keras_tps) / (tokens / floor_tps + chain)
            row += [round(floor_tps / 1e3), round(statistics.median(ceilings), 2), round(chain * 1e3, 1),
                    round(best, 2)]
        rows.append(row)
    setup = (f"batch {args['batch']}, length {args['length']}, vocab {args['vocab']}, embedding {args['embed']}, "
             f"Adam; zoo: bptt={args['bptt']}, jit={args['jit']}, optimizer={args['optimizer']}; "
             f"keras: jit={args['keras_jit']}, optimizer=keras; "
             f"mask={args['mask']}, lengths={args['lengths'] if args['mask'] else 'full'}, "
             f"batching={args['batching']} (padded widths {min(widths)}-{max(widths)}, "
             f"{statistics.mean(real for *_, real in batches) / args['batch']:.0f} real tokens per review); "
             f"{args['rounds']} rounds x {args['steps']} steps; load average {os.getloadavg()[0]:.1f}")
    click.echo(setup)
    headers = ["cell", "zoo ktok/s", "keras ktok/s", "median ratio", "ratio range"]
    if args["xla_too"]:
        headers += ["xla ratio", "xla range"]
    if args["floor"]:
        headers += ["floor ktok/s", "ceiling ratio", "chain ms", "best ratio"]
    click.echo(render(rows, headers, fmt))
    if args["profile"]:
        for (cell, size), group in pairs.items():
            zoo = next(c for c in group if c.label == "zoo")
            click.echo(f"\nper-op profile of the zoo step, {cell}{size} (summed op time per step; load average "
                       f"{os.getloadavg()[0]:.1f})")
            click.echo(render(profile_ops(zoo, batches), ["op", "ms/step", "calls/step", "us/call", "share"], fmt))


if __name__ == "__main__":
    main()
