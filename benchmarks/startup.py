"""Start-up time of the ``zoo`` commands that build no model (issue 10, section 4).

Runs each command ``--repeat`` times as a fresh process (results and caches in
a temporary folder) and prints the fastest and the median wall-clock time in
seconds, and the least CPU time, beside its target: ``zoo --help`` under 1 s; ``zoo components``,
``zoo models``, ``zoo plugins`` and an unknown-name or out-of-range error
under 1.5 s (2 cores). The fastest run is the least disturbed by other work
on a shared machine; the median shows the spread. ``import tensorflow`` is
timed the same way for scale.

Reproduce (from the checkout, with the project installed)::

    python benchmarks/startup.py
    python benchmarks/startup.py --repeat 10
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = [  # (arguments, target in seconds, expected exit status)
    (["--help"], 1.0, 0),
    (["components"], 1.5, 0),
    (["models"], 1.5, 0),
    (["plugins"], 1.5, 0),
    (["train", "--cell", "gruu"], 1.5, 2),
    (["train", "--set", "cell.units=-1"], 1.5, 2),
]


def time_command(argv: list[str], env: dict[str, str], expect: int) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one run of ``argv``.

    The CPU time is what the process itself used: on a machine busy with other
    work the wall clock also counts time spent waiting for a core.

    Raises:
        RuntimeError: If it exits with another status than ``expect``.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, env=env)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != expect:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.decode()[-500:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (default 5)")
    args = parser.parse_args()
    zoo = shutil.which("zoo")
    if zoo is None:
        print("error: no `zoo` on PATH; install the project first (pip install -e .)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "ZOO_RESULTS": os.path.join(scratch, "results.sqlite"),
               "XDG_CACHE_HOME": scratch, "XDG_DATA_HOME": scratch}
        rows = [(["python", "-c", "import tensorflow"], [sys.executable, "-c", "import tensorflow"], None, 0)]
        rows += [(["zoo", *a], [zoo, *a], target, expect) for a, target, expect in COMMANDS]
        print(f"{'command':<32} {'fastest s':>9} {'median s':>9} {'CPU s':>6} {'target s':>9}  met")
        failed = 0
        for shown, argv, target, expect in rows:
            measured = [time_command(argv, env, expect) for _ in range(args.repeat)]
            times = [wall for wall, _ in measured]
            fastest, median, cpu = min(times), statistics.median(times), min(c for _, c in measured)
            met = "-" if target is None else ("yes" if fastest < target else "NO")
            failed += met == "NO"
            print(f"{' '.join(shown):<32} {fastest:>9.2f} {median:>9.2f} {cpu:>6.2f} "
                  f"{'' if target is None else target:>9}  {met}")
    print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (cores: {os.cpu_count()})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
