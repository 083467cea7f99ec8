"""benchmarks/end_to_end.py runs on a tiny IMDB tree and reports both sides (timings are not checked)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


def test_end_to_end_benchmark_runs_both_sides(tiny_imdb_tree):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "end_to_end.py"), "--data", str(tiny_imdb_tree),
                           "--limit", "30"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for line in ("data prep", "zoo train, one epoch", "keras fit, one epoch", "epoch ratio keras/zoo",
                 "zoo evaluate, test", "keras predict, test", "inference ratio keras/zoo", "load average"):
        assert line in out, out


def test_end_to_end_benchmark_refuses_a_model_without_a_gru(tiny_imdb_tree, monkeypatch):
    # In this process: the refusal comes before any training, so a fresh interpreter would time only imports.
    spec = importlib.util.spec_from_file_location("end_to_end_benchmark", ROOT / "benchmarks" / "end_to_end.py")
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, benchmark)  # its dataclasses look their module up there
    spec.loader.exec_module(benchmark)
    result = CliRunner().invoke(benchmark.main, ["--data", str(tiny_imdb_tree), "--model", "lstm-last"])
    assert result.exit_code == 2 and "the Keras twin is a GRU" in result.output
