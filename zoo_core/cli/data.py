"""``zoo data``: where the data is, what the pipeline does to it, and the vocabulary.

These commands read ``registry.toml`` directly rather than the component
registry, so they never import TensorFlow and answer in about a second once
the data is cached.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from zoo_core.cli import cli, options, pass_state
from zoo_core.cli.options import (MODEL_DATA_FLAGS, data_options, data_origin, download_option, flag_overrides,
                                  format_option)
from zoo_core.cli.progress import DATA_BARS, warn
from zoo_core.config import TrainConfig
from zoo_core.errors import ZooError
from zoo_core.specs import data_config
from zoo_core.tables import MACHINE_FORMATS, WRAPPED_FORMATS, fit_text, render

SPLIT_NAMES = ("train", "val", "test")


def _load(state, flags: dict, seed: int, download: bool):
    from zoo_core.data import load_dataset

    settings = state.settings
    return settings, load_dataset(data_config(settings.data, flag_overrides(flags)), settings, seed=seed,
                                  progress=DATA_BARS, allow_download=download, warn=warn, origin=data_origin())


def seed_option(func):
    return options.seed_option("Seeds the --limit subset and the validation split.")(func)


def _echo_tables(tables: list[tuple[str, list[str], list[list]]], fmt: str) -> None:
    """Prints titled tables; json gets one object keyed by title, csv one block per table."""
    if fmt == "json":
        click.echo(json.dumps({title: json.loads(render(rows, headers, "json")) for title, headers, rows in tables},
                              indent=2))
        return
    for i, (title, headers, rows) in enumerate(tables):
        if i:
            click.echo()
        click.echo(f"# {title}" if fmt == "csv" else f"{title}:")
        click.echo(render(rows, headers, fmt))


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


@cli.group()
def data():
    """Inspect the IMDB data: where it is, its statistics, the vocabulary.

    \b
    Examples:
      zoo data info
      zoo data stats --maxlen 400 --format github
      zoo data vocab --output word_index.json
      zoo data decode --review test:3
    """


@data.command()
@data_options(exclude=MODEL_DATA_FLAGS)
@seed_option
@click.option("--batch-size", type=options.declared_type(TrainConfig, "batch_size"), default=None,
              help="Batch size for the padding-efficiency figures [default: registry.toml's].")
@download_option
@format_option()
@pass_state
def stats(state, seed, batch_size, download, fmt, **flags):
    """Review lengths, OOV rate, truncation and padding efficiency, per split.

    Lengths count tokens with the start token. "Reviews affected" compares
    --long truncate (reviews cut, every split) with --long drop (training
    reviews removed; validation and test are never dropped from). Padding
    efficiency is real tokens / processed tokens.

    \b
    Examples:
      zoo data stats
      zoo data stats --maxlen 500 --num-words 10000
      zoo data stats --data ~/aclImdb --format json
    """
    from zoo_core.data import length_percentiles, padding_efficiency

    settings, ds = _load(state, flags, seed, download)
    config, report = ds.config, ds.report
    batch_size = batch_size or settings.train.batch_size
    splits = {name: getattr(ds, name) for name in SPLIT_NAMES}

    overview = [["source", ds.source], ["checksum (sha256)", ds.checksum], ["validation split", report["split"]],
                ["vocabulary", f"{len(ds.vocab):,} ids (num_words {config.num_words:,})"],
                ["maxlen / padding / truncating", f"{config.maxlen} / {config.padding} / {config.truncating}"],
                ["loaded in", f"{report['seconds']:.2f} s ({'cache' if report['cache_hit'] else 'tokenised'})"]]

    percentile_rows = []
    for name, split in splits.items():
        p = length_percentiles(split.raw_lengths)
        mean = float(split.raw_lengths.mean()) if len(split) else 0.0
        percentile_rows.append([name, len(split), round(mean, 1)] + list(p.values()))

    # What --long drop would remove from train, whichever --long this run uses.
    would_drop = report["dropped"]["train"] if config.long == "drop" else report["truncated"]["train"]
    cut_rows = []
    for name, split in splits.items():
        raw_tokens = int(split.raw_lengths.sum())
        lost = report["tokens_lost"][name]
        truncated = report["truncated"][name]
        dropped = would_drop if name == "train" else 0
        cut_rows.append([name, f"{100 * report['oov_rate'][name]:.2f}%", f"{lost:,}", _pct(lost, raw_tokens),
                         f"{truncated:,} ({_pct(truncated, len(split))})",
                         f"{dropped:,} dropped" + (f", {truncated:,} cut" if name != "train" else "")])

    efficiency_rows = []
    for name, split in splits.items():
        efficiency_rows.append([name] + [
            f"{100 * padding_efficiency(lengths, batch_size, mode, config.maxlen, seed):.1f}%"
            for mode, lengths in (("global", split.raw_lengths), ("maxlen", split.lengths),
                                  ("batch", split.lengths), ("bucket", split.lengths))])

    tables = [
        ("data", ["what", "value"], overview),
        ("review length in tokens, before truncation", ["split", "reviews", "mean", "p50", "p75", "p90", "p95",
                                                        "p99", "max"], percentile_rows),
        (f"vocabulary and truncation at num_words={config.num_words}, maxlen={config.maxlen}",
         ["split", "OOV rate", "tokens lost", "lost %", "truncate: reviews cut", "drop: reviews affected"],
         cut_rows),
        (f"padding efficiency (real / processed tokens), batch size {batch_size}",
         ["split", "pad to global max (no cut)", f"pad to maxlen {config.maxlen}", "pad per random batch",
          "bucketing"], efficiency_rows),
    ]
    _echo_tables(tables, fmt)


@data.command()
@data_options(exclude=MODEL_DATA_FLAGS)
@seed_option
@download_option
@format_option()
@pass_state
def info(state, seed, download, fmt, **flags):
    """Where the data was looked for and found, its checksum, cache file and split sizes.

    \b
    Examples:
      zoo data info
      ZOO_DATA=~/aclImdb zoo data info
    """
    from zoo_core.data import candidate_sources

    settings = state.settings
    config = data_config(settings.data, flag_overrides(flags))
    looked = [[str(path), why, "yes" if path.exists() else "no"]
              for path, why in candidate_sources(config, settings, data_origin())]
    settings, ds = _load(state, flags, seed, download)
    cache = Path(ds.report["cache"])
    rows = [
        ["source", ds.source], ["kind", ds.report["kind"]], ["checksum (sha256)", ds.checksum],
        ["cache file", f"{cache} ({cache.stat().st_size / 2**20:.1f} MiB)"],
        ["cache hit", "yes" if ds.report["cache_hit"] else "no (tokenised now)"],
        ["loaded in", f"{ds.report['seconds']:.2f} s"],
        ["reviews", ", ".join(f"{name} {len(getattr(ds, name)):,}" for name in SPLIT_NAMES)],
        ["positive", ", ".join(f"{name} {int(getattr(ds, name).labels.sum()):,}" for name in SPLIT_NAMES)],
        ["validation split", f"{ds.report['split']} ({config.val_fraction:.0%} of train, seed {seed})"],
        ["vocabulary", f"{len(ds.vocab):,} ids"],
    ]
    _echo_tables([("looked in", ["path", "from", "exists"], looked), ("data", ["what", "value"], rows)], fmt)


@data.command()
@data_options(exclude=MODEL_DATA_FLAGS)
@seed_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the word index: .json as {word: id}, anything else as TSV id<TAB>word<TAB>count.")
@click.option("--top", type=click.IntRange(0), default=20, show_default=True,
              help="Without --output, how many words to show.")
@download_option
@format_option()
@pass_state
def vocab(state, seed, output, top, download, fmt, **flags):
    """The vocabulary built from the training split: ids, words and training counts.

    \b
    Examples:
      zoo data vocab --top 30
      zoo data vocab --num-words 10000 --output word_index.json
      zoo data vocab --output vocab.tsv
    """
    _, ds = _load(state, flags, seed, download)
    words, counts = ds.vocab.words, ds.vocab.counts or [0] * len(ds.vocab)
    if output is None:
        rows = [[i, w, c] for i, (w, c) in enumerate(zip(words, counts)) if i < top]
        click.echo(render(rows, ["id", "word", "train count"], fmt))
        return
    path = Path(output)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(ds.vocab.word_index(), ensure_ascii=False, indent=0), encoding="utf-8")
    else:
        path.write_text("".join(f"{i}\t{w}\t{c}\n" for i, (w, c) in enumerate(zip(words, counts))), encoding="utf-8")
    click.echo(f"wrote {len(words):,} words to {path}", err=True)


def _review_ref(ref: str) -> tuple[str, int]:
    """``"val:3"`` -> ``("val", 3)``; a bare ``"3"`` means the test split."""
    split_name, _, number = ref.rpartition(":")
    split_name = split_name or "test"
    if split_name not in SPLIT_NAMES or not number.isdigit():
        raise ZooError(f"--review {ref!r}: expected [SPLIT:]N with SPLIT one of {', '.join(SPLIT_NAMES)}")
    return split_name, int(number)


def _refuse_data_flags(why: str) -> None:
    """One line (exit 2) if the command line gave a flag that only loading the data would use.

    Flags from the environment (``ZOO_DATA``) are no request, so they pass.
    """
    from click.core import ParameterSource

    ctx = click.get_current_context()
    given = [p.opts[0] for p in ctx.command.params
             if p.name in (*options.DATA_FLAGS, "seed", "download")
             and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE]
    if given:
        raise ZooError(f"{why}: drop {', '.join(given)}")


@data.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--review", "reviews", multiple=True, metavar="[SPLIT:]N",
              help="Show review N of train, val or test (default test) as the model sees it. Repeatable.")
@click.option("--vocab", "vocab_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Decode IDS with this vocabulary file (e.g. a saved run's vocab.json) instead of loading data.")
@data_options(exclude=MODEL_DATA_FLAGS)
@seed_option
@download_option
@format_option()
@pass_state
def decode(state, ids, reviews, vocab_file, seed, download, fmt, **flags):
    """Turn ids back into words: IDS given on the command line, or reviews of a split.

    Padding and start tokens are skipped; <unk> marks words outside the vocabulary.

    \b
    Examples:
      zoo data decode 1 14 22 16 43
      zoo data decode --review val:0 --review val:1
      zoo data decode --vocab runs/3fa2/vocab.json 1 14 22
    """
    from zoo_core.data import Vocabulary

    if not ids and not reviews:
        raise ZooError("give ids to decode, or --review [SPLIT:]N")
    wanted = [_review_ref(ref) for ref in reviews]
    if vocab_file:
        if reviews:
            raise ZooError("--review needs the data; drop --vocab to load it")
        _refuse_data_flags("--vocab decodes without loading the data")
        click.echo(fit_text(Vocabulary.load(vocab_file).decode(ids)))
        return
    _, ds = _load(state, flags, seed, download)
    if ids:
        click.echo(fit_text(ds.vocab.decode(ids)))
    rows = []
    for split_name, i in wanted:
        split = getattr(ds, split_name)
        if i >= len(split):
            raise ZooError(f"--review {split_name}:{i}: the {split_name} split has {len(split):,} reviews")
        sequence = split.sequence(i)
        rows.append([split_name, i, int(split.review_ids[i]), "pos" if split.labels[i] else "neg",
                     f"{len(sequence)}/{int(split.raw_lengths[i])}", ds.vocab.decode(sequence),
                     " ".join(map(str, list(sequence)))])
    headers = ["split", "index", "file id", "label", "tokens kept/all", "text", "ids"]
    if rows and fmt in WRAPPED_FORMATS:  # a terminal: one key/value block per review, its text wrapped to fit
        look = "plain" if fmt == "simple" else fmt
        click.echo("\n\n".join(render([[h, v] for h, v in zip(headers, row)], [], look) for row in rows))
    elif rows:  # documents and machines: one row per review, every cell whole
        click.echo(render(rows, headers, fmt))


@data.command()
@click.option("--url", default=None, help="Where from [default: Stanford's aclImdb_v1.tar.gz].")
@click.option("--sha256", default=None, help="Expected sha256 [default: that of Stanford's archive].")
@click.option("--size", type=int, default=None, help="Expected size in bytes [default: 84,125,825].")
@click.option("--dest", type=click.Path(dir_okay=False), default=None,
              help="Target file [default: ~/.keras/datasets/<name>, which the search path includes].")
def download(url, sha256, size, dest):
    """Download Stanford's archive and verify its sha256 and size (needs internet).

    \b
    Examples:
      zoo data download
    """
    from zoo_core import data as zdata

    custom = url is not None
    if custom and not sha256:
        raise ZooError("--url needs --sha256, so the download can be verified")
    path = zdata.download_imdb(dest, url=url or zdata.IMDB_URL, sha256=sha256 or zdata.IMDB_SHA256,
                               size=size if (size is not None or custom) else zdata.IMDB_SIZE, progress=DATA_BARS)
    click.echo(str(path))
