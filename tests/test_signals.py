"""Ctrl-C (SIGINT) and SIGTERM: ``zoo train`` and ``zoo rank`` stop cleanly, keep their work, exit 130 or 143.

Real signals to real ``zoo`` processes, at moments reached for certain: each
test waits for a line the process prints, or for the ``trap-embedding``
encoder of :mod:`tests.trap_plugin` to hold an evaluation batch until the
signal is sent. No test depends on how fast the machine is.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import interruptible
from tests.imdb_fixtures import archive_tree, write_imdb_tree
from zoo_core.cli import signals
from zoo_core.results import ResultsDB

ROOT = Path(__file__).resolve().parent.parent
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number
UNK = 2  # the id of a word outside the vocabulary (zoo_core.data.UNK)
TINY = ["--maxlen", "20", "--set", "cell.units=4", "--set", "encoder.dim=4"]
TRAP = ["--encoder", "trap-embedding", "--set", f"encoder.wait_id={UNK}"]
TIMEOUT_S = 240  # generous: a loaded 2-core machine; no test waits this long when things work


@pytest.fixture(scope="module")
def trap_data(tmp_path_factory):
    """An archive whose test reviews all hold an unknown word, and a registry.toml enabling the trap plugin.

    The training reviews use five words, each in many of them, so the
    vocabulary holds them all and validation (carved from train) holds no
    unknown word: only the test evaluation meets the ``wait_id`` trap. 1200
    test reviews make several evaluation batches (of 256), so some are left
    after the batch that waits.
    """
    home = tmp_path_factory.mktemp("trap")
    train = {label: [f"{word} film movie plot {word}" for _ in range(40)]
             for label, word in (("pos", "great"), ("neg", "awful"))}
    test = {label: [f"{word} film zzqx plot" for _ in range(600)]  # zzqx: an unknown word
            for label, word in (("pos", "great"), ("neg", "awful"))}
    reviews = {"train/pos": train["pos"], "train/neg": train["neg"], "test/pos": test["pos"], "test/neg": test["neg"]}
    movies = {key: [i // 2 + (10_000 if key.startswith("test") else 0) + 1000 * key.endswith("neg")
                    for i in range(len(texts))] for key, texts in reviews.items()}
    archive = archive_tree(write_imdb_tree(home / "tree", reviews, movies), home / "trap.tar.gz")
    registry = home / "registry.toml"
    registry.write_text('[plugins]\nmodules = ["zoo_core.encoders", "zoo_core.cells", "zoo_core.aggregators", '
                        '"zoo_core.heads", "tests.trap_plugin"]\n', encoding="utf-8")
    return {"archive": archive, "registry": registry}


class Zoo:
    """A ``zoo`` child process (the console script's entry point) whose output is read line by line."""

    def __init__(self, args, tmp_path: Path):
        self.trap_dir = tmp_path / "trap"
        self.trap_dir.mkdir(exist_ok=True)
        env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "share"), XDG_CACHE_HOME=str(tmp_path / "cache"),
                   ZOO_TRAP_DIR=str(self.trap_dir),
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from zoo_core.launcher import main; sys.exit(main())", *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=interruptible)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for_line(self, prefix: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"zoo ended before printing {prefix!r}:\n{self.output}")
            self.lines.append(line)
            if line.lstrip().startswith(prefix):
                return
        raise AssertionError(f"no line {prefix!r} in {TIMEOUT_S} s:\n{self.output}")

    def wait_in_evaluation(self) -> None:
        """Until the trap holds an evaluation batch (``go`` lets it continue)."""
        deadline = time.monotonic() + TIMEOUT_S
        while not (self.trap_dir / "waiting").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"zoo never reached the trapped evaluation:\n{self.finish()}")
            time.sleep(0.05)

    def signal(self, signum) -> None:
        self.process.send_signal(signum)
        (self.trap_dir / "go").touch()  # only after the signal is on its way: it is seen at the next batch

    def finish(self) -> str:
        try:
            self.process.wait(timeout=TIMEOUT_S)
        finally:
            self.process.kill()
        while (line := self._queue.get(timeout=TIMEOUT_S)) is not None:
            self.lines.append(line)
        return self.output

    @property
    def output(self) -> str:
        return "".join(self.lines)


def saved_result(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text(encoding="utf-8"))["result"]


def saved_weights_are_finite(folder: Path, registry_file: Path) -> bool:
    from zoo_core.registry import build_registry
    from zoo_core.runs import load_run

    model, _, _ = load_run(folder, build_registry(str(registry_file)))
    return all(np.all(np.isfinite(v.numpy())) for v in model.trainable_variables)


# -- zoo train ------------------------------------------------------------------

TRAIN_CASES = [
    # (moment, signal): in training (after epoch 2 of 10000), or in the final test evaluation, which
    # used to save nothing; SIGTERM used to kill zoo train at once. One handler serves both signals, so
    # each moment is tried with one of them (SIGINT in training: the Ctrl-C tests of zoo rank and of the
    # Ray executor); `benchmarks/signals.py` tries every pair.
    ("training", signal.SIGTERM),
    ("final evaluation", signal.SIGINT),
]


@pytest.mark.parametrize("moment, signum", TRAIN_CASES, ids=lambda v: getattr(v, "name", v))
def test_a_signal_stops_zoo_train_saving_the_trained_model(trap_data, tmp_path, moment, signum):
    save = tmp_path / "saved"
    epochs = 10_000 if moment == "training" else 1
    zoo = Zoo(["--registry", trap_data["registry"], "train", *TRAP, "--epochs", epochs, "--set", "train.patience=0",
               "--data", trap_data["archive"], *TINY, "--save", save], tmp_path)
    if moment == "training":
        zoo.wait_for_line("epoch 2:")
    else:
        zoo.wait_in_evaluation()
    zoo.signal(signum)
    output = zoo.finish()

    assert zoo.process.returncode == EXIT[signum], output
    assert "Traceback" not in output and "Aborted" not in output
    assert "status: interrupted" in output
    status = next(line for line in output.splitlines() if line.startswith("status: "))
    assert status.count("kept") == 1 and status.count("interrupted") == 1, status  # said once
    result = saved_result(save)
    assert result["status"] == "interrupted"
    if moment == "training":
        assert len(result["history"]) >= 2  # the epochs before the signal are kept
    else:
        assert "final evaluation" in result["message"] and len(result["history"]) == 1
        assert result["val"]["accuracy"] is not None  # validation was scored before the test split
    assert saved_weights_are_finite(save, trap_data["registry"])
    # Recorded too, as interrupted, with the weights it had (issue 12: nothing lost).
    (record,) = ResultsDB(tmp_path / "share" / "rnn-zoo" / "results.sqlite").runs()
    assert record.status == "interrupted" and Path(record.run_dir, "run.json").is_file()
    assert f"recorded as interrupted run {record.id}" in output


@pytest.mark.parametrize("signum", [signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_during_start_up_exits_cleanly(tiny_imdb_archive, tmp_path, signum):
    # The spec table is printed before the data is loaded and training starts.
    zoo = Zoo(["train", "--epochs", 10_000, "--data", tiny_imdb_archive, *TINY, "--save", tmp_path / "saved"],
              tmp_path)
    zoo.wait_for_line("model")
    zoo.signal(signum)
    output = zoo.finish()
    assert zoo.process.returncode == EXIT[signum], output
    assert "Traceback" not in output and "Aborted" not in output
    if (tmp_path / "saved").exists():  # the signal came once training had started: it saved what it had
        assert saved_result(tmp_path / "saved")["status"] == "interrupted"


KILL_DURING_IMPORT = """
import os, sys
from zoo_core import launcher

class SignalOnImport:  # sends the signal as Python starts importing the command line
    def find_spec(self, name, path=None, target=None):
        if name == "zoo_core.cli":
            os.kill(os.getpid(), {signum})
        return None

sys.meta_path.insert(0, SignalOnImport())
sys.argv = ["zoo", "components"]
sys.exit(launcher.main())
"""


def run_script(script: str, signum) -> subprocess.CompletedProcess:
    """Runs one of the scripts above, for ``signum``, as a fresh interruptible Python process."""
    return subprocess.run([sys.executable, "-c", script.format(signum=int(signum))], capture_output=True, text=True,
                          timeout=TIMEOUT_S, preexec_fn=interruptible, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_while_python_imports_zoo_exits_cleanly(tmp_path, signum):
    # The console script (zoo_core.launcher) holds signals before importing anything heavy.
    child = run_script(KILL_DURING_IMPORT, signum)
    assert child.returncode == EXIT[signum], child.stdout + child.stderr
    assert child.stderr.strip() == f"stopped by {signum.name} while starting" and child.stdout == ""


SWALLOWED_BY_A_FINALISER = """
import os, sys
from zoo_core import launcher

class Finaliser:
    def __del__(self):
        os.kill(os.getpid(), {signum})  # zoo's handler raises in here, and Python swallows it

class SignalInAFinaliser:  # imported once the command runs, after zoo set its handlers
    def find_spec(self, name, path=None, target=None):
        if name == "zoo_core.settings":
            Finaliser()
        return None

sys.meta_path.insert(0, SignalInAFinaliser())
sys.argv = ["zoo", "components"]
sys.exit(launcher.main())
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_a_finaliser_swallowed_still_sets_the_exit_status(tmp_path, signum):
    # The lost Ctrl-C: the interrupt is swallowed, the command goes on to its end, but says it was stopped.
    child = run_script(SWALLOWED_BY_A_FINALISER, signum)
    assert child.returncode == EXIT[signum], child.stdout + child.stderr
    assert "Exception ignored" in child.stderr and "tanh" in child.stdout  # swallowed; the listing went on


# -- zoo rank -------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_stops_zoo_rank_keeping_finished_runs(trap_data, tmp_path, signum):
    # Run 1 (plain embedding) finishes; run 2's test evaluation is held by the trap when the signal comes.
    db_path = tmp_path / "results.sqlite"
    zoo = Zoo(["--registry", trap_data["registry"], "rank", "embedding/tanh/last/sigmoid1",
               "trap-embedding/tanh/last/sigmoid1", "--set", f"encoder.wait_id={UNK}", "--epochs", 1,
               "--data", trap_data["archive"], *TINY, "--results", db_path], tmp_path)
    zoo.wait_in_evaluation()
    zoo.signal(signum)
    output = zoo.finish()

    assert zoo.process.returncode == EXIT[signum], output
    assert "Traceback" not in output and "Aborted" not in output
    assert "interrupted: 1 trained" in output
    runs = {r.encoder: r for r in ResultsDB(db_path).runs()}
    assert runs["embedding"].status == "finished" and Path(runs["embedding"].run_dir, "run.json").is_file()
    assert runs["trap-embedding"].status == "interrupted"
    assert Path(runs["trap-embedding"].run_dir, "run.json").is_file()  # its weights kept, as zoo train's


# -- the stop request itself ----------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_the_first_signal_is_recorded_and_the_second_stops_at_once(signum, signals_enabled):
    before = signal.getsignal(signum)
    with pytest.raises(signals.Interrupt) as stopped:
        with signals.stoppable() as should_stop:
            assert not should_stop()
            os.kill(os.getpid(), signum)  # os.kill runs the Python handler before it returns
            assert should_stop() and should_stop.exit_status == EXIT[signum]
            os.kill(os.getpid(), signal.SIGINT)
            pytest.fail("the second signal did not stop at once")
    assert stopped.value.exit_status == EXIT[signum]  # the first signal decides the status
    assert signal.getsignal(signum) == before  # the handlers are put back


def test_a_signal_in_a_block_that_cannot_check_stops_it_at_once(signals_enabled):
    with pytest.raises(signals.Interrupt) as stopped:
        with signals.stoppable() as should_stop:
            with should_stop.at_once():  # e.g. loading data
                os.kill(os.getpid(), signal.SIGTERM)
                pytest.fail("loading went on after the signal")
    assert stopped.value.exit_status == 143 and should_stop()


def test_a_signal_swallowed_during_start_up_still_stops_the_work(monkeypatch):
    request = signals.StopRequest()  # the request install() makes for the process
    monkeypatch.setattr(signals, "_installed", request)
    try:
        request.handle(signal.SIGTERM, None)  # before the work: raises at once ...
    except signals.Interrupt:
        pass  # ... but, say, inside a finaliser, which swallows it
    with pytest.raises(signals.Interrupt) as stopped:
        with signals.stoppable():
            pytest.fail("the work started although a signal had come")
    assert stopped.value.exit_status == 143
