"""benchmarks/end_to_end.py runs on a tiny IMDB tree and reports both sides (timings are not checked)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_end_to_end_benchmark_runs_both_sides(tiny_imdb_tree):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "end_to_end.py"), "--data", str(tiny_imdb_tree),
                           "--limit", "30"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for line in ("data prep", "zoo train, one epoch", "keras fit, one epoch", "epoch ratio keras/zoo",
                 "zoo evaluate, test", "keras predict, test", "inference ratio keras/zoo", "load average"):
        assert line in out, out


def test_end_to_end_benchmark_refuses_a_model_without_a_gru(tiny_imdb_tree):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "end_to_end.py"), "--data", str(tiny_imdb_tree),
                           "--model", "lstm-last"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "the Keras twin is a GRU" in done.stderr
