"""``zoo rank --executor ray`` on a real local Ray instance (no mocks), tiny data, one epoch.

Ray starts once for the module (two CPUs, its workers reused across the
tests); the commands under test reuse it in this process or, as a driver
process of their own, connect to it with ``--address``. Failures are provoked for certain by the
test-only heads of :mod:`tests.failing_plugin`, and an interruption by the
``trap-embedding`` encoder of :mod:`tests.trap_plugin`, which holds a worker
inside its first evaluation until the test lets it go: nothing depends on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.cli_helpers import TINY_RANK, zoo
from tests.ray_cluster import TIMEOUT_S, cluster  # noqa: F401 (the fixture)
from zoo_core.results import ResultsDB

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent




def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, XDG_DATA_HOME=str(home / "share"), XDG_CACHE_HOME=str(home / "cache"),
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


# -- a Ray rank is a local rank ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ranked(request, tiny_imdb_archive, tmp_path_factory):
    """The same 2-model deterministic rank, local (its own process: determinism is process-wide) and through Ray."""
    home = tmp_path_factory.mktemp("ranked")
    args = ["rank", "elman-last", "gru-mean", *TINY_RANK, "--set", "train.deterministic=true",
            "--data", str(tiny_imdb_archive)]
    local_db, ray_db = home / "local" / "results.sqlite", home / "ray" / "results.sqlite"
    local = subprocess.Popen([sys.executable, "-m", "zoo_core.cli", *args, "--results", str(local_db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home))
    try:
        request.getfixturevalue("cluster")  # Ray starts while the local rank trains
        with pytest.MonkeyPatch.context() as env:
            env.setenv("XDG_DATA_HOME", str(home / "share"))
            env.setenv("XDG_CACHE_HOME", str(home / "cache"))
            result = zoo(*args, "--results", ray_db, "--executor", "ray")
        stderr = local.communicate(timeout=TIMEOUT_S)[1]
    finally:
        local.kill()
    assert local.returncode == 0, stderr
    return {"local": local_db, "ray": ray_db, "output": result.output, "args": [*args, "--results", ray_db]}


def _board(db_path) -> list[dict]:
    rows = json.loads(zoo("leaderboard", "--format", "json", "--results", db_path).stdout)
    return [{k: v for k, v in row.items() if k not in ("time_s", "tokens_per_s", "best_run")} for row in rows]


def _figures(db_path) -> dict:
    """Each run's metrics and curves (but its timings), by (model, seed)."""
    timings = ("seconds", "tokens_per_sec")
    return {(r.label, r.seed): (r.status, r.val_accuracy, r.val_loss, r.val_auc, r.test_accuracy, r.test_loss,
                                r.test_auc, r.best_epoch, r.params,
                                [{k: v for k, v in c.items() if k not in timings} for c in r.curves])
            for r in ResultsDB(db_path).runs()}


def test_a_ray_rank_gives_the_local_leaderboard_figure_for_figure(ranked):
    assert "2 trained, 0 skipped" in ranked["output"] and ", 0 failed, of 2 runs" in ranked["output"]
    board = _board(ranked["ray"])
    assert [row["model"] for row in board] and board == _board(ranked["local"])
    figures = _figures(ranked["ray"])
    assert set(figures) == {("elman-last", 0), ("gru-mean", 0)}
    assert figures == _figures(ranked["local"])


def test_a_ray_run_is_recorded_on_the_driver_with_its_weights_and_curves(ranked):
    db = ResultsDB(ranked["ray"])
    local = {r.label: r for r in ResultsDB(ranked["local"]).runs()}
    for record in db.runs():
        run_dir = Path(record.run_dir)
        assert run_dir.parent == ranked["ray"].parent / "runs" and (run_dir / "run.json").is_file()
        assert record.host and record.tf_version and record.data_checksum == local[record.label].data_checksum
        events = list((run_dir.parent / "tensorboard").glob(f"{record.label}-seed0-{record.id}/events.out.tfevents.*"))
        assert len(events) == 1 and events[0].stat().st_size > 0
        # The weights that came back score a review as the locally trained ones do.
        scores = [json.loads(zoo("predict", run_id, "a great and moving film", "--format", "json",
                                 "--results", path).stdout)
                  for run_id, path in ((record.id, ranked["ray"]), (local[record.label].id, ranked["local"]))]
        assert scores[0] == scores[1]
    progress = [line for line in ranked["output"].splitlines() if line.startswith("[")]
    assert sorted(line.split(": ")[1].split()[0] for line in progress) == ["completed", "completed",
                                                                          "training", "training"]


def test_rerunning_a_ray_rank_on_the_cluster_trains_nothing_and_prints_only_its_own_lines(ranked, cluster):
    before = {r.id: r.finished_at for r in ResultsDB(ranked["ray"]).runs()}
    # A driver process of its own, connecting to the running cluster as to a multi-node one.
    done = subprocess.run([sys.executable, "-m", "zoo_core.cli", *map(str, ranked["args"]), "--executor", "ray",
                           "--address", cluster["address"]],
                          capture_output=True, text=True, env=_env(ranked["ray"].parent), timeout=TIMEOUT_S,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert {r.id: r.finished_at for r in ResultsDB(ranked["ray"]).runs()} == before
    assert done.stderr.splitlines() == [
        "[1/2] elman-last seed 0: skipped, finished before or running elsewhere",
        "[2/2] gru-mean seed 0: skipped, finished before or running elsewhere",
        f"0 trained, 2 skipped (finished before or running elsewhere), 0 failed, of 2 runs; results in {ranked['ray']}"]


# -- failures -------------------------------------------------------------------------------------------
def test_a_task_that_raises_once_is_retried_and_one_that_always_raises_is_recorded_failed(
        cluster, tiny_imdb_archive, tmp_path):
    from zoo_core.executors.ray_executor import RETRIES

    marker, log, db_path = tmp_path / "flaky-built", tmp_path / "broken-builds", tmp_path / "results.sqlite"
    result = zoo("--registry", cluster["registry"], "rank", "embedding/tanh/last/flaky-sigmoid1",
                 "embedding/tanh/last/broken-sigmoid1", *TINY_RANK, "--set", f"head.marker={marker}",
                 "--set", f"head.log={log}", "--data", tiny_imdb_archive, "--results", db_path, "--executor", "ray",
                 expect=1)
    runs = {r.head: r for r in ResultsDB(db_path).runs()}
    assert marker.exists() and runs["flaky-sigmoid1"].status == "finished"  # failed once, then retried
    assert runs["broken-sigmoid1"].status == "failed"
    assert runs["broken-sigmoid1"].message == "RuntimeError: broken-sigmoid1 fails every build"
    assert log.read_text(encoding="utf-8").splitlines() == ["built"] * (1 + RETRIES)
    assert "failed: RuntimeError: broken-sigmoid1 fails every build" in result.output
    assert "1 trained, 0 skipped (finished before or running elsewhere), 1 failed, of 2 runs" in result.output


# -- Ctrl-C and resume ----------------------------------------------------------------------------------
def test_ctrl_c_cancels_the_runs_in_flight_and_a_rerun_trains_only_those(cluster, tiny_imdb_archive, tmp_path):
    db_path, trap = tmp_path / "results.sqlite", cluster["trap"]
    # The trapped run waits inside its first evaluation for `go`: cut at its end (--truncating post), every
    # review keeps its start token (id 1), so every batch there holds it. (Padding, id 0, is there only when
    # a review is shorter than maxlen, which the tiny data does not promise.)
    args = ["--registry", cluster["registry"], "rank", "embedding/tanh/last/sigmoid1",
            "trap-embedding/tanh/last/sigmoid1", *TINY_RANK, "--truncating", "post", "--set", "encoder.wait_id=1",
            "--data", tiny_imdb_archive, "--results", db_path, "--executor", "ray"]

    def ctrl_c_once_one_run_finished_and_the_other_is_held():
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if (trap / "waiting").exists() and db_path.exists() and len(ResultsDB(db_path).finished()) == 1:
                os.kill(os.getpid(), signal.SIGINT)  # zoo's own handler holds it while it ranks
                return
            time.sleep(0.1)
        (trap / "go").touch()  # never held: release the trap, so the test fails on the exit code instead of hanging

    # In this process (the driver), so that the signal reaches zoo's handler as a terminal's Ctrl-C would.
    sender = threading.Thread(target=ctrl_c_once_one_run_finished_and_the_other_is_held, daemon=True)
    sender.start()
    try:
        interrupted = zoo(*args, expect=130)
    finally:
        sender.join()
        (trap / "go").touch()  # only now: the held run must not finish before the Ctrl-C is seen
    assert "interrupted: 1 trained, 0 skipped" in interrupted.output
    runs = {r.encoder: r for r in ResultsDB(db_path).runs()}
    assert runs["embedding"].status == "finished"
    assert runs["trap-embedding"].status == "interrupted" and "Ctrl-C" in runs["trap-embedding"].message

    result = zoo(*args)  # resumes
    assert "1 trained, 1 skipped" in result.output
    db = ResultsDB(db_path)
    assert db.get(runs["embedding"].id).finished_at == runs["embedding"].finished_at  # not redone
    assert sorted(r.encoder for r in db.finished()) == ["embedding", "trap-embedding"]


# -- bad input --------------------------------------------------------------------------------------------
def test_ray_flags_and_resources_are_checked_in_one_line(cluster, tiny_imdb_archive, tmp_path):
    base = ["rank", "elman-last", *TINY_RANK, "--data", tiny_imdb_archive, "--results", tmp_path / "r.sqlite"]
    for args, expected in (
            (["--address", "auto"], "--address: only with --executor ray"),
            (["--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run"),
            (["--executor", "ray", "--gpus-per-run", "-1"], "--gpus-per-run"),
            (["--executor", "ray", "--cpus-per-run", "64"], "the Ray cluster has 2 CPU(s)")):
        result = zoo(*base, *args, expect=2)
        assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# Hides Ray from a fresh interpreter, then runs `zoo ARGS`, reporting which heavy modules it imported.
WITHOUT_RAY = textwrap.dedent("""
    import atexit, sys

    class NoRay:
        def find_spec(self, name, path=None, target=None):
            if name == "ray" or name.startswith("ray."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoRay())
    heavy = ("tensorflow", "keras", "numpy", "ray")
    atexit.register(lambda: print("IMPORTED:", sorted(m for m in heavy if m in sys.modules), file=sys.__stdout__))
    from zoo_core.cli import main
    sys.argv[0] = "zoo"
    main(sys.argv[1:])
""")


def test_without_ray_the_ray_executor_says_how_to_install_it(tiny_imdb_archive, tmp_path):
    done = subprocess.run([sys.executable, "-c", WITHOUT_RAY, "rank", "elman-last", "--executor", "ray",
                           "--data", str(tiny_imdb_archive), "--results", str(tmp_path / "r.sqlite")],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=TIMEOUT_S, check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ['Error: --executor ray needs Ray, which is not installed: pip install -e '
                                        '".[ray]" in the rnn-zoo checkout (or pip install "ray>=2.9")']
    assert "IMPORTED: []" in done.stdout
