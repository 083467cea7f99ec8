"""The example third-party plugin, pip-installed for real, shows up everywhere and trains.

``tests/plugins/zoo-example-plugin`` is a real distribution (pyproject with an
``rnn_zoo`` entry point). The test installs it with pip into a private target
folder, so the rest of the suite does not see it, and drives ``zoo`` in a
subprocess with that folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugins" / "zoo-example-plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(PLUGIN)],
        check=True, capture_output=True, text=True,
    )
    return site


def zoo(site: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "zoo_core.cli", *args], capture_output=True, text=True,
                          env=environ, timeout=300)


def test_installed_plugin_appears_in_plugins_components_and_models(plugin_site):
    result = zoo(plugin_site, "plugins", "--format", "csv")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("example,"))
    assert row.startswith("example,0.2.0,entry point (zoo-example-plugin),loaded,")
    assert "cell: leaky" in row and "model: leaky-mean" in row

    result = zoo(plugin_site, "components", "cell", "--format", "csv")
    assert any(line.startswith("cell,leaky,example,leaky tanh RNN") and "leak=0.5 (float in [0.0, 1.0])" in line
               for line in result.stdout.splitlines()), result.stdout

    result = zoo(plugin_site, "models", "leaky-*", "--format", "csv")
    assert "leaky-mean,embedding/leaky/mean-states/sigmoid1" in result.stdout


def test_zoo_plugins_can_leave_the_installed_plugin_out(plugin_site):
    result = zoo(plugin_site, "plugins", "--format", "csv", env={"ZOO_PLUGINS": "zoo_plugins.*"})
    assert "example,0.2.0,entry point (zoo-example-plugin),disabled," in result.stdout
    result = zoo(plugin_site, "components", "cell", "--format", "csv", env={"ZOO_PLUGINS": "zoo_plugins.*"})
    assert ",leaky," not in result.stdout


def test_installed_plugin_model_trains(plugin_site, tiny_imdb_archive, tmp_path):
    result = zoo(plugin_site, "train", "leaky-mean", "--data", str(tiny_imdb_archive), "--epochs", "1",
                 "--maxlen", "30", "--num-words", "50", "--set", "cell.units=8", "--set", "encoder.dim=8",
                 env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_DATA_HOME": str(tmp_path / "share")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "embedding/leaky/mean-states/sigmoid1" in result.stdout
    assert "test" in result.stdout.lower() and "accuracy" in result.stdout.lower()


def test_installed_plugin_cell_gets_the_registry_driven_tests(plugin_site):
    """The plugin's cell is picked up by the cell and component tests without any test code of its own."""
    tests = Path(__file__).parent
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), str(tests.parent)]),
               "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-k", "leaky",
         str(tests / "test_cells.py"), str(tests / "test_components.py")],
        capture_output=True, text=True, env=environ, timeout=600, cwd=tests.parent,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 6 and "failed" not in summary, summary
