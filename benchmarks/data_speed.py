"""Data pipeline speed on the real IMDB archive (issue 3): first tokenisation and cached load.

With a fresh temporary cache directory, it times

1. the first ``load_dataset``: sha256 of the source, streaming and tokenising
   all 50,000 reviews, writing the cache (target: at most 30 s on 2 cores);
2. the second ``load_dataset`` with the same settings: from the cache
   (target: under 2 s);
3. a cached load with other settings (maxlen, num_words, bucketing), which
   reuses the same cache file;
4. one epoch of padded batches of 64 over the training split;

and prints the wall-clock and CPU time of each (on a shared machine the wall
clock also counts time waiting for a core). The source is ``--data PATH``, else ``$ZOO_DATA``, else
``registry.toml``'s search path. Nothing is written outside the temporary cache.

Reproduce (from the checkout)::

    python benchmarks/data_speed.py
    python benchmarks/data_speed.py --data ~/.keras/datasets/aclImdb_v1.tar.gz --repeat 3
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import click  # noqa: E402

from zoo_core.config import DataConfig  # noqa: E402
from zoo_core.data import load_dataset  # noqa: E402
from zoo_core.settings import load_settings  # noqa: E402


@dataclasses.dataclass
class Timing:
    wall: float  # seconds of wall clock
    cpu: float  # seconds of this process's CPU: what the load would take on a machine of its own

    def __str__(self) -> str:
        return f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU"


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


@click.command()
@click.option("--data", "source", default="", envvar="ZOO_DATA", help="The archive, folder or imdb.npz.")
@click.option("--repeat", type=click.IntRange(1), default=3, show_default=True, help="Cached loads to time.")
def main(source: str, repeat: int) -> None:
    """Times the first tokenisation and the cached loads."""
    with tempfile.TemporaryDirectory(prefix="zoo-data-speed-") as cache:
        settings = dataclasses.replace(load_settings(), cache_dir=Path(cache))
        config = dataclasses.replace(settings.data, source=source)
        first, first_s = timed(lambda: load_dataset(config, settings, progress=False))
        assert not first.report["cache_hit"]
        cached = []
        for _ in range(repeat):
            ds, seconds = timed(lambda: load_dataset(config, settings, progress=False))
            assert ds.report["cache_hit"]
            cached.append(seconds)
        other = DataConfig(**{**dataclasses.asdict(config), "maxlen": 500, "num_words": 10000, "batching": "bucket"})
        _, other_s = timed(lambda: load_dataset(other, settings, progress=False))
        _, epoch_s = timed(lambda: sum(1 for _ in first.train.batches(64, shuffle=True, seed=0)))
        cache_file = Path(first.report["cache"])
        reviews = len(first.train) + len(first.val) + len(first.test)
        click.echo(f"source: {first.source} (sha256 {first.checksum[:16]}...)")
        click.echo(f"reviews: {reviews:,}; cache file {cache_file.stat().st_size / 2**20:.1f} MiB")
        click.echo(f"first load (checksum + tokenise + cache): {first_s}  [target <= 30 s]")
        best = min(cached, key=lambda t: t.wall)
        worst = max(cached, key=lambda t: t.wall)
        click.echo(f"cached load, same settings, {repeat} times: best {best}; worst {worst}  [target < 2 s]")
        click.echo(f"cached load, maxlen 500 / num_words 10000 / bucket: {other_s}")
        click.echo(f"one epoch of padded batches of 64 over train ({len(first.train):,} reviews): {epoch_s}")


if __name__ == "__main__":
    main()
