"""A fast start and a quiet terminal (issue 10, sections 3 and 4).

Commands that only list, validate or explain must not import TensorFlow or NumPy (it
takes seconds); no command prints TensorFlow's, absl's or oneDNN's log lines
unless asked to. Both are checked on the real ``zoo`` process, since start-up
and file descriptor 2 are what is under test. Start-up *times* are measured by
``benchmarks/startup.py``, not here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.imdb_fixtures import make_imdb_tree

# Runs `zoo ARGS` in a fresh interpreter and reports, after it exits, whether
# TensorFlow, Keras, NumPy or Ray were ever imported (the component modules, which
# every command loads as plugins, must bind them lazily).
PROBE = textwrap.dedent("""
    import atexit, sys
    heavy = ("tensorflow", "keras", "numpy", "ray")
    atexit.register(lambda: print("\\nIMPORTED:", sorted(m for m in heavy if m in sys.modules),
                                  file=sys.__stdout__, flush=True))
    from zoo_core.cli import main
    sys.argv[0] = "zoo"
    main(sys.argv[1:])
""")

CHEAP_COMMANDS = [
    ["--help"],
    ["--version"],
    ["components"],
    ["components", "encoder"],
    ["components", "cell"],
    ["components", "aggregator"],
    ["components", "head"],
    ["components", "--format", "json"],
    ["models"],
    ["plugins"],
    ["train", "--help"],
    ["rank", "--help"],
    ["tune", "--help"],
    ["tune", "elman-last", "--param", "lr=0:1"],     # a bad search space (lr must be above 0)
    ["tune", "elman-last"],                           # nothing to tune
    ["train", "--cell", "gruu"],                     # unknown name
    ["train", "--set", "cell.units=-1"],            # out of range
    ["train", "--set", "encoder.dim=abc"],          # wrong type
    ["train", "no-such-model"],
    ["rank", "--preset", "no-such-preset"],
    ["rank", "--address", "auto"],                  # a Ray flag without --executor ray
    ["rank", "--executor", "ray", "--cpus-per-run", "0"],
    ["--plugins", "nomatch*", "components"],        # a plugin pattern matching nothing
    ["leaderboard"],
    ["runs"],
    ["explain", "--help"],
    ["report", "--help"],
    ["report", "-o", "no-such-report-folder"],       # no results file yet: one line, nothing written
    ["ensemble", "--help"],
    ["ensemble", "3f2a", "71c0"],                   # no results file yet
    ["ensemble", "3f2a", "--name", ""],             # an empty name
]


# The console script of the interpreter running the tests (its venv's bin may not be on PATH).
ZOO = str(Path(sys.executable).with_name("zoo")) if Path(sys.executable).with_name("zoo").exists() else "zoo"


def _environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZOO_VERBOSE")}
    return {**environ, "ZOO_RESULTS": str(tmp_path / "results.sqlite"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "XDG_DATA_HOME": str(tmp_path / "share"), **extra}


def _run_probe(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          env=_environ(tmp_path, **extra), timeout=300)


@pytest.mark.parametrize("args", CHEAP_COMMANDS, ids=" ".join)
def test_commands_that_build_no_model_never_import_tensorflow(args, tmp_path):
    result = _run_probe(args, tmp_path)
    assert "IMPORTED: []" in result.stdout, (result.stdout, result.stderr)
    assert result.returncode in (0, 2), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [
    ["train", "--data", "{absent}", "--epochs", "1"],
    ["data", "info", "--data", "{absent}"],
    ["data", "stats"],                               # $ZOO_DATA names the absent file
    ["train", "--set", "data.source={absent}"],
    ["predict", "best", ""],                         # an empty review
    ["explain", "best", ""],
    ["tune", "elman-last", "--param", "lr=1e-4:1e-2", "--data", "{absent}"],  # before Optuna (NumPy) is imported
], ids=" ".join)
def test_missing_data_and_empty_text_import_neither_tensorflow_nor_numpy(args, tmp_path):
    absent = str(tmp_path / "absent.tar.gz")
    probe = PROBE.replace('("tensorflow", "keras")', '("tensorflow", "keras", "numpy")')
    result = subprocess.run([sys.executable, "-c", probe, *(a.format(absent=absent) for a in args)],
                            capture_output=True, text=True, env=_environ(tmp_path, ZOO_DATA=absent), timeout=300)
    assert "IMPORTED: []" in result.stdout, (result.stdout, result.stderr)
    assert result.returncode == 2 and result.stderr.startswith("Error: "), result.stderr


# Looser than the filter's own pattern on purpose, so that the filter is checked, not restated.
LOG_NOISE = re.compile(r"^[IWEF]\d{4} |absl|oneDNN|cpu_feature_guard|TensorFlow binary|tensorflow/")


def _native_log_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if LOG_NOISE.search(line)]


def test_a_tiny_train_prints_no_tensorflow_absl_or_onednn_line(tmp_path):
    data = make_imdb_tree(tmp_path, n_per_class=12)
    result = subprocess.run([ZOO, "train", "--data", str(data), "--epochs", "1", "--set", "cell.units=4"],
                            capture_output=True, text=True, env=_environ(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "IMPORTED" not in result.stdout
    assert _native_log_lines(result.stdout + result.stderr) == []
    assert "epoch 1" in result.stderr  # our own progress still reaches the terminal


@pytest.mark.parametrize("args", [["--help"], ["components"]], ids=" ".join)
def test_cheap_commands_print_nothing_on_stderr(args, tmp_path):
    result = subprocess.run([ZOO, *args], capture_output=True, text=True, env=_environ(tmp_path), timeout=300)
    assert result.returncode == 0 and result.stderr == ""


# What the filter does, provoked for certain: native writes to descriptor 2
# (as TensorFlow's C++ logging makes them), mixed with lines that must survive.
NATIVE_WRITER = textwrap.dedent("""
    import os, sys
    from zoo_core.cli import quiet
    quiet.quiet_native_stderr()
    if "--verbose" in sys.argv:
        quiet.release()
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 00:00:1795957326.415932    1894 cpu_feature_guard.cc:227] This TensorFlow binary\\n")
    os.write(2, b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
                b"with the appropriate compiler flags.\\n")
    os.write(2, b"E0000 00:00:1795957400.1 2016 mkl_util.h:42] oneDNN supports DT_BOOL only on platforms with AVX-512\\n")
    os.write(2, b"2026-11-29 13:00:00.123456: W tensorflow/core/framework/op_kernel.cc:1] old style\\n")
    os.write(2, b"F0000 00:00:1.2 7 check.cc:9] Check failed: a fatal error stays visible\\n")
    os.write(2, b"a native line of another library stays\\n")
    print("python's own stderr stays", file=sys.stderr)
    os.write(2, b"no newline at the end stays")
""")


def test_the_filter_drops_native_log_lines_and_keeps_everything_else(tmp_path):
    result = subprocess.run([sys.executable, "-c", NATIVE_WRITER], capture_output=True, text=True,
                            env=_environ(tmp_path), timeout=120)
    # Python's own line takes another path, so only its place among the others may vary.
    assert sorted(result.stderr.splitlines()) == sorted([
        "F0000 00:00:1.2 7 check.cc:9] Check failed: a fatal error stays visible",
        "a native line of another library stays", "python's own stderr stays", "no newline at the end stays"])


def test_verbose_lets_every_native_line_through(tmp_path):
    result = subprocess.run([sys.executable, "-c", NATIVE_WRITER, "--verbose"], capture_output=True, text=True,
                            env=_environ(tmp_path), timeout=120)
    assert len(result.stderr.splitlines()) == 9  # the 5 log lines, the fatal one and the 3 others
    assert len(_native_log_lines(result.stderr)) == 5


def test_zoo_verbose_flag_and_environment_reach_the_filter(tmp_path):
    # Both forms must switch the filter off before TensorFlow is imported.
    for args, extra in ((["--verbose", "components"], {}), (["components"], {"ZOO_VERBOSE": "1"})):
        probe = PROBE.replace("main(sys.argv[1:])", textwrap.dedent("""
            try:
                main(sys.argv[1:])
            finally:
                from zoo_core.cli import quiet
                print("PASSTHROUGH:", quiet._active.passthrough, file=sys.__stdout__)
        """))
        result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                                env=_environ(tmp_path, **extra), timeout=120)
        assert "PASSTHROUGH: True" in result.stdout, (args, extra, result.stdout, result.stderr)
