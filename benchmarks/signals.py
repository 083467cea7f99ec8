"""Ctrl-C and SIGTERM sweep (issue 10): signals at moments from 0.5 s to the end of tiny runs.

It times one tiny ``zoo train`` and one tiny ``zoo rank`` on the tests' tiny
data (``tests/imdb_fixtures.py``: 40 train and 40 test reviews), then sends
``--signals`` signals, SIGINT and SIGTERM alternately, half to fresh ``zoo
train --save DIR`` runs and half to fresh ``zoo rank`` runs (3 seeds), at
moments spread evenly from 0.5 s to the end of the work (its last line) in
the shorter of two timed runs (the last at 90% of it, as a run may go faster;
in shuffled order). For each it checks:

- the exit status: 130 for SIGINT, 143 for SIGTERM (128 + the signal number),
  within ``--within`` seconds of the signal; no traceback, no ``Aborted!``;
- ``zoo train``: once training had started (its ``data:`` line was out
  before the signal), the model was saved (``run.json`` and finite weights),
  with status ``interrupted`` unless the run had already finished;
- ``zoo rank``: every run finished before the signal is still ``finished``
  with its saved folder, the run in progress is ``interrupted`` (or
  ``finished`` when it ended before its next check), none is left ``running``.

A signal that arrives before ``zoo`` holds signals (while Python starts), or
after its work is over and reported (while Python exits), gets the default
action: the process dies of the signal, which a shell also reports as 130 or
143; those are counted apart. Latency is measured to the last line ``zoo``
printed (the work stopped and reported) and to its exit (Python's and
TensorFlow's teardown included).

Reproduce (from the checkout, with its venv; about 10 minutes on 2 busy cores)::

    python benchmarks/signals.py
    python benchmarks/signals.py --signals 10 --seed 1
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout: the tests' data maker and zoo_core

import click  # noqa: E402

from tests.imdb_fixtures import make_imdb_archive  # noqa: E402

TINY = ["--maxlen", "20", "--set", "cell.units=4", "--set", "encoder.dim=4"]
EXPECTED = {signal.SIGINT: 130, signal.SIGTERM: 143}
FINISHED_LINE = re.compile(r"^\s+(completed|early-stopped): test accuracy .*, run (\S+)$")
STARTED_LINE = re.compile(r"^\[(\d+)/\d+\] .*: training")


def zoo_command() -> list[str]:
    """The installed ``zoo`` console script beside this Python, else the same entry point through ``-c``."""
    script = Path(sys.executable).parent / "zoo"
    entry = "import sys; from zoo_core.launcher import main; sys.exit(main())"
    return [str(script)] if script.exists() else [sys.executable, "-c", entry]


class Child:
    """A ``zoo`` process whose output lines are kept with the time each was read."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.started = time.monotonic()
        self.process = subprocess.Popen(zoo_command() + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env, preexec_fn=_default_sigint)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait(self, timeout: float) -> float | None:
        """Seconds until it exited, or None if it did not within ``timeout`` (it is then killed)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self.reader.join()
            return None
        ended = time.monotonic()
        self.reader.join()
        return ended

    def lines_before(self, moment: float) -> list[str]:
        return [line for when, line in self.lines if when < moment]

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, which zoo (like Python) keeps; undo that here.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclasses.dataclass
class Trial:
    command: str
    signum: int
    moment: float
    status: int | None = None  # exit status; negative: died of that signal
    latency: float | None = None  # seconds from the signal to the exit
    report_latency: float | None = None  # seconds from the signal to the last line printed
    ended_before_signal: bool = False
    clean: bool = True  # no traceback, no "Aborted!"
    before_handlers: bool = False  # died of the signal before printing anything
    after_work: bool = False  # died of the signal after the work was over and reported
    trained: bool = False  # train: training had started at the signal
    saved: bool | None = None
    weights_finite: bool | None = None
    saved_status: str = ""
    finished_before: int = 0  # rank: runs finished before the signal
    finished_kept: bool | None = None
    in_progress_status: str = ""  # rank: status of the run in progress at the signal
    running_left: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def right_status(self) -> bool:
        return self.status == EXPECTED[self.signum]


def finite_weights(folder: Path) -> bool:
    from zoo_core.registry import build_registry
    from zoo_core.runs import load_run

    import numpy as np

    model, _, _ = load_run(folder, build_registry())
    return all(bool(np.all(np.isfinite(v.numpy()))) for v in model.trainable_variables)


def run_trial(trial: Trial, archive: Path, work: Path, env: dict[str, str], within: float) -> None:
    folder = work / f"{trial.command}-{trial.moment:06.2f}-{trial.signum}"
    folder.mkdir()
    save, db = folder / "saved", folder / "results.sqlite"
    if trial.command == "train":
        args = ["train", "--epochs", "6", "--data", str(archive), *TINY, "--save", str(save)]
    else:
        args = ["rank", "elman-last", "--seeds", "3", "--epochs", "2", "--data", str(archive), *TINY,
                "--results", str(db)]
    child = Child(args, dict(env, XDG_DATA_HOME=str(folder / "share")))
    time.sleep(max(0.0, child.started + trial.moment - time.monotonic()))
    if child.process.poll() is not None:
        trial.ended_before_signal = True
        child.wait(60)
        return
    sent = time.monotonic()
    child.process.send_signal(trial.signum)
    ended = child.wait(within + 120)
    trial.status = child.process.returncode
    trial.latency = None if ended is None else ended - sent
    output = child.output
    trial.clean = "Traceback" not in output and "Aborted" not in output
    if not trial.clean:
        trial.notes.append(output[-2000:])
    before = child.lines_before(sent)
    if child.lines and child.lines[-1][0] > sent:
        trial.report_latency = child.lines[-1][0] - sent
    reported = re.compile(r"^status: |.* trained, .* skipped")  # train's and rank's last report
    trial.after_work = trial.status == -trial.signum and any(reported.match(line) for line in before)
    trial.before_handlers = trial.status == -trial.signum and not before

    if trial.command == "train":
        trial.trained = any(line.startswith("data: ") for line in before)
        trial.saved = (save / "run.json").is_file()
        if trial.saved:
            trial.saved_status = json.loads((save / "run.json").read_text())["result"]["status"]
            trial.weights_finite = finite_weights(save)
        return

    from zoo_core.results import ResultsDB

    finished_ids = [m.group(2) for line in before if (m := FINISHED_LINE.match(line))]
    started = [int(m.group(1)) for line in before if (m := STARTED_LINE.match(line))]
    trial.finished_before = len(finished_ids)
    rows = ResultsDB(db).runs() if db.exists() else []
    by_id = {r.id: r for r in rows}
    trial.finished_kept = all(i in by_id and by_id[i].status == "finished" and Path(by_id[i].run_dir).is_dir()
                              for i in finished_ids)
    trial.running_left = sum(r.status == "running" for r in rows)
    if started and len(started) > len(finished_ids):  # a run was under way at the signal
        in_progress = [r for r in rows if r.id not in finished_ids]
        trial.in_progress_status = in_progress[0].status if in_progress else "missing"


def timed_run(command: str, archive: Path, work: Path, env: dict[str, str], attempt: int) -> float:
    folder = work / f"timing-{command}-{attempt}"
    folder.mkdir()
    args = (["train", "--epochs", "6", "--data", str(archive), *TINY, "--save", str(folder / "saved")]
            if command == "train" else
            ["rank", "elman-last", "--seeds", "3", "--epochs", "2", "--data", str(archive), *TINY,
             "--results", str(folder / "results.sqlite")])
    child = Child(args, dict(env, XDG_DATA_HOME=str(folder / "share")))
    ended = child.wait(600)
    if ended is None or child.process.returncode != 0:
        raise click.ClickException(f"the timing run of zoo {command} failed:\n{child.output}")
    return child.lines[-1][0] - child.started  # its last line: the work is over, only Python's exit is left


@click.command()
@click.option("--signals", "count", type=click.IntRange(2), default=40, show_default=True,
              help="Signals to send, half to zoo train, half to zoo rank.")
@click.option("--within", type=float, default=5.0, show_default=True, help="Seconds an exit may take.")
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffles the order of the moments.")
@click.option("--keep", is_flag=True, help="Keep the work folder (printed) for inspection.")
def main(count: int, within: float, seed: int, keep: bool) -> None:
    """Sends SIGINT and SIGTERM to tiny zoo train and zoo rank runs and checks what they kept."""
    work = Path(tempfile.mkdtemp(prefix="zoo-signals-"))
    env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"), PYTHONPATH=str(ROOT))
    env.pop("ZOO_RESULTS", None)
    try:
        archive = make_imdb_archive(work / "imdb" / "aclImdb_v1.tar.gz", n_per_class=20)
        # The shorter of two timings: the load of a shared machine varies, and a signal after the run is wasted.
        durations = {c: min(timed_run(c, archive, work, env, i) for i in (1, 2)) for c in ("train", "rank")}
        click.echo("timed runs: " + ", ".join(f"zoo {c} {d:.1f} s" for c, d in durations.items()))
        trials = []
        for c, command in enumerate(("train", "rank")):
            n = count // 2 + (count % 2 if c == 0 else 0)
            end = 0.9 * durations[command]  # a run may take less time than the timed one
            moments = [0.5 + (end - 0.5) * i / max(n - 1, 1) for i in range(n)]
            trials += [Trial(command, (signal.SIGINT, signal.SIGTERM)[i % 2], m) for i, m in enumerate(moments)]
        random.Random(seed).shuffle(trials)
        for i, trial in enumerate(trials, start=1):
            run_trial(trial, archive, work, env, within)
            click.echo(describe(i, len(trials), trial), err=True)
        summarise(trials, within)
    finally:
        if keep:
            click.echo(f"work folder: {work}", err=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


def describe(i: int, n: int, t: Trial) -> str:
    head = f"[{i}/{n}] zoo {t.command} {signal.Signals(t.signum).name} at {t.moment:.2f} s: "
    if t.ended_before_signal:
        return head + "ended before the signal"
    latency = "no exit" if t.latency is None else f"{t.latency:.2f} s"
    report = "-" if t.report_latency is None else f"{t.report_latency:.2f} s"
    text = head + f"exit {t.status} after {latency} (last line after {report})"
    text += ("" if t.clean else ", traceback/Aborted") + (", after its work" if t.after_work else "")
    if t.command == "train":
        text += (f"; trained {t.trained}, saved {t.saved} ({t.saved_status or '-'}), "
                 f"finite {t.weights_finite}")
    else:
        text += (f"; {t.finished_before} finished before, kept {t.finished_kept}, "
                 f"in progress {t.in_progress_status or '-'}, running left {t.running_left}")
    return text + "".join(f"\n    output: {note}" for note in t.notes)


def summarise(trials: list[Trial], within: float) -> None:
    sent = [t for t in trials if not t.ended_before_signal]
    click.echo(f"\n{len(trials)} signals planned, {len(sent)} sent "
               f"({len(trials) - len(sent)} runs ended before their moment)")
    for command in ("train", "rank"):
        for signum in (signal.SIGINT, signal.SIGTERM):
            group = [t for t in sent if t.command == command and t.signum == signum]
            if not group:
                continue
            right = [t for t in group if t.right_status]
            fast = [t for t in right if t.latency is not None and t.latency <= within]
            line = (f"zoo {command} {signal.Signals(signum).name}: {len(group)} sent, "
                    f"{len(right)} exited {EXPECTED[signum]}, {len(fast)} of them within {within:g} s, "
                    f"{sum(t.clean for t in group)} without traceback/Aborted; died of it: "
                    f"{sum(t.before_handlers for t in group)} while starting, "
                    f"{sum(t.after_work for t in group)} after its work was over; "
                    f"other exits: {[t.status for t in group if not t.right_status and t.status != -signum]}")
            click.echo(line)
        if command == "train":
            group = [t for t in sent if t.command == "train" and t.trained]
            click.echo(f"zoo train, signal after training started: {len(group)}; kept the trained model "
                       f"{sum(bool(t.saved and t.weights_finite) for t in group)}; marked interrupted "
                       f"{sum(t.saved_status == 'interrupted' for t in group)} (finished before the signal "
                       f"was seen: {sum(t.saved_status in ('completed', 'early-stopped') for t in group)})")
        else:
            group = [t for t in sent if t.command == "rank"]
            with_finished = [t for t in group if t.finished_before]
            in_progress = [t for t in group if t.in_progress_status]
            click.echo(f"zoo rank: finished runs kept in {sum(bool(t.finished_kept) for t in with_finished)} "
                       f"of {len(with_finished)} signals that came after a run finished; the run in progress "
                       f"marked interrupted in {sum(t.in_progress_status == 'interrupted' for t in in_progress)} "
                       f"of {len(in_progress)} (finished: "
                       f"{sum(t.in_progress_status == 'finished' for t in in_progress)}); "
                       f"runs left 'running': {sum(t.running_left for t in group)}")
    total_right = sum(t.right_status and t.latency is not None and t.latency <= within for t in sent)
    click.echo(f"\ntotal: {total_right} of {len(sent)} signals ended zoo with 130/143 within {within:g} s; "
               f"{sum(t.right_status for t in sent)} with 130/143 at all; "
               f"{sum(t.after_work for t in sent)} died of it after the work was over")
    for name, values in (("to the last line", [t.report_latency for t in sent]),
                         ("to the exit", [t.latency for t in sent])):
        values = sorted(v for v in values if v is not None)
        if values:
            click.echo(f"latency {name}: median {values[len(values) // 2]:.2f} s, max {values[-1]:.2f} s")
    click.echo(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
